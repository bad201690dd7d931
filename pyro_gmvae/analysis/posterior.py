"""Posterior and posterior-predictive draws of the amortized models, through
``pyro.infer.Predictive`` over each fitted module's own model and guide.

Every estimator of the VAE family (``GMVAE``, ``VAE``, ``AE``, ``VAEGMM``,
``DilokthanakulGMVAE``) keeps its Pyro pair in ``module_``: ``module_.model(x)`` and
``module_.guide(x)`` take the data as a float tensor of shape (N, n_features) and can be handed
to any Pyro tool, e.g.
``Predictive(est.module_.model, guide=est.module_.guide, num_samples=10)(x)``. The functions here
do exactly that, seeded, and return NumPy arrays.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Predictive

from ..checks import check_positive_int
from ..disk import in_memory
from ..estimators.base import LatentEstimator
from ..timeseries import ARMixture
from ..timeseries.regimes import sample_paths, series_log_emission
from ..timeseries.series import as_series
from ..training import local_seed
from .likelihood import transition_log_joint


def fitted_module(estimator, X) -> tuple[torch.nn.Module, torch.Tensor]:
    if not isinstance(estimator, LatentEstimator):
        raise TypeError(
            f"{type(estimator).__name__} is not one of the models with a guide (GMVAE, VAE, "
            "AE, VAEGMM, DilokthanakulGMVAE, ARMixture)"
        )
    estimator._check_fitted()
    in_memory(X, "posterior analysis")
    return estimator.module_, estimator._data(X)


def module_local_params():
    """The context in which an AR mixture's Pyro parameters are its own: outside it, Pyro's
    global parameter store would hand one fit's guide parameters to another's."""
    return pyro.settings.context(module_local_params=True)


def globals_of_draws(module, draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An AR module's globals (``weights``, ``transition_matrices``, ``scale_tril`` and, for
    Markov regimes, ``switching``) from draws of its sample sites, with their leading axis,
    computed as the model computes them."""
    with torch.no_grad(), module_local_params(), poutine.condition(data=draws):
        return module.globals()


def _point_batch(module) -> dict[str, torch.Tensor]:
    return {name: value[None] for name, value in module.point_globals().items()}


def regime_draws(g: dict[str, torch.Tensor], series, markov: bool, n_paths: int) -> torch.Tensor:
    """Draws of the regimes of every transition (series in order) from their posterior given
    the data, for each set of globals in ``g`` (leading axis B): Bayes' rule per transition
    for i.i.d. regimes, whole paths by forward filtering, backward sampling for Markov ones.
    Returns (n_paths * B, n_transitions), ``n_paths`` draws for each set, draw-major."""
    B = g["weights"].shape[0]
    sets = range(B)
    if not markov:
        prev, nxt = series.transitions()
        logits = torch.stack(
            [
                transition_log_joint(
                    g["weights"][b], g["transition_matrices"][b], g["scale_tril"][b], prev, nxt
                )[0]
                for b in sets
            ]
        )
        return dist.Categorical(logits=logits).sample((n_paths,)).reshape(n_paths * B, -1)
    log_e = torch.stack(  # (B, S, T, K)
        [
            series_log_emission(
                series.values, series.lengths, g["transition_matrices"][b], g["scale_tril"][b]
            )
            for b in sets
        ]
    )
    S = log_e.shape[1]
    paths = sample_paths(
        g["weights"].log().repeat_interleave(S, 0),
        g["switching"].log().repeat_interleave(S, 0),
        log_e.flatten(0, 1),
        n_paths,
    )  # (n_paths, B * S, T)
    return paths.reshape(n_paths * B, S, -1)[:, series.mask()]


def _fitted_series(estimator: ARMixture, X):
    estimator._check_fitted()
    return as_series(X, estimator.n_features_in_)


@torch.no_grad()
def _ar_posterior_samples(estimator: ARMixture, X, n_draws: int) -> dict[str, torch.Tensor]:
    series = _fitted_series(estimator, X)
    module = estimator.module_
    if module.global_guide is None:  # the fitted globals: n_draws regimes given them
        return {"regime": regime_draws(_point_batch(module), series, module.markov, n_draws)}
    args = (series.values, series.lengths) if module.markov else series.transitions()
    with module_local_params():  # globals with priors: draws from their guide
        draws = Predictive(module.global_guide, num_samples=n_draws)(*args, None)
    out = {name: draws[name] for name in module._global_names()}
    # each draw's regimes given that draw's globals: row i of every site is one joint draw
    out["regime"] = regime_draws(globals_of_draws(module, out), series, module.markov, 1)
    return out


@torch.no_grad()
def _markov_predictive(estimator: ARMixture, X, n_draws: int) -> torch.Tensor:
    """x_t ~ N(Pi_{z_t} x_{t-1}, Sigma) with each path z drawn from its posterior."""
    series = _fitted_series(estimator, X)
    prev, _ = series.transitions()
    g = _point_batch(estimator.module_)
    paths = regime_draws(g, series, True, n_draws)  # (n, N)
    return ar_replicates(g["transition_matrices"][0], g["scale_tril"][0], paths, prev)


def ar_replicates(Pi: torch.Tensor, scale_tril: torch.Tensor, regimes, prev) -> torch.Tensor:
    """x_t ~ N(Pi_{z_t} x_{t-1}, Sigma) for every transition, given its regime: ``regimes``
    (..., N) and ``prev`` (N, d) give (..., N, d)."""
    means = (Pi[regimes] @ prev.unsqueeze(-1)).squeeze(-1)
    return means + torch.randn_like(means) @ scale_tril.T


def transition_probabilities(estimator: ARMixture, X) -> np.ndarray:
    """The AR mixture's ``predict_proba`` as one (n_transitions, K) array: the transitions of
    every series in order, as ``Series.transitions`` lists them."""
    per_series = estimator.predict_proba(X)
    if not isinstance(per_series, list):  # one series (T-1, K) or several of one length
        per_series = list(np.reshape(per_series, (-1, *np.shape(per_series)[-2:])))
    return np.concatenate(per_series).astype(np.float64)


@torch.no_grad()
def posterior_samples(estimator, X, n_draws: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """``n_draws`` draws of every latent variable of each point from the fitted guide q(. | x).

    Returns ``{site: array}`` with shape (n_draws, N, *event): ``z`` (n_draws, N, latent_dim)
    for every model; ``w`` (n_draws, N, w_dim) for ``DilokthanakulGMVAE``; and for the models
    with clusters, ``cluster`` (n_draws, N) of integers. For ``GMVAE`` the clusters are the
    guide's draws of y (under the ``"relaxed"`` strategy the guide's y is a relaxed vector and
    ``cluster`` its largest entry); for ``DilokthanakulGMVAE``, whose guide has no y, they are
    drawn from the exact p(y | w, z) at each draw of (w, z); for ``VAEGMM`` and a ``VAE`` with
    a mixture prior, from the prior's p(c | z) at each draw of z. An ``AE``'s guide is a point mass,
    so its draws are all equal.

    ``ARMixture``: ``regime`` (n_draws, n_transitions), transitions of every series in order,
    drawn from their posterior given the data: for i.i.d. regimes p(z_t | x_{t-1}, x_t) by
    Bayes' rule; for Markov-switching ones whole paths from their joint posterior given each
    series (forward filtering, backward sampling), so that the draws keep the regimes'
    dependence. With point estimates of the globals the regimes are drawn at them
    (``predict_proba`` is their average). With ``global_guide="normal"`` or ``"map"`` the
    globals are drawn from their guide too, and row i of ``regime`` is drawn given row i's
    globals (one joint draw per row): ``weights`` (n_draws, K; for Markov regimes the
    distribution of the unobserved z_0), ``transition_matrices`` (n_draws, K, d, d),
    ``noise_scale`` (n_draws, d), for full covariances ``noise_correlation`` (n_draws, d, d),
    the lower Cholesky factor of the noise's correlation matrix (Sigma = diag(s) C C^T
    diag(s)), and for Markov regimes ``switching`` (n_draws, K, K). The draws come from a
    generator seeded by ``seed``; the caller's random state is left alone.
    """
    check_positive_int("n_draws", n_draws)
    if isinstance(estimator, ARMixture):
        with local_seed(seed):
            return {k: v.numpy() for k, v in _ar_posterior_samples(estimator, X, n_draws).items()}
    module, x = fitted_module(estimator, X)
    with local_seed(seed):
        draws = Predictive(module.guide, num_samples=n_draws)(x)
        out = {name: value for name, value in draws.items() if name != "x"}
        if "y" in out:  # the guide's one-hot (or relaxed) y
            out["cluster"] = out.pop("y").argmax(-1)
        elif hasattr(module, "cluster_log_posterior"):  # y summed out: draw it given (w, z)
            log_r = module.cluster_log_posterior(module.prior_z(out["w"]), out["z"])
            out["cluster"] = dist.Categorical(logits=log_r).sample()
        elif hasattr(module.prior, "responsibilities"):  # a mixture prior: its p(c | z)
            probs = module.prior.responsibilities(out["z"])
            out["cluster"] = dist.Categorical(probs=probs).sample()
    return {name: value.numpy() for name, value in out.items()}


@torch.no_grad()
def posterior_predictive(estimator, X, n_draws: int = 10, seed: int = 0) -> np.ndarray:
    """``n_draws`` replicates of each point drawn from the posterior predictive,
    x_rep ~ p(x | z) with z ~ q(z | x): shape (n_draws, N, n_features).

    These are draws of x, not decoder means (``reconstruct`` gives those): binary images under
    a Bernoulli likelihood, noisy values under a Gaussian one. For ``ARMixture`` they are
    one-step replicates of each transition given the observed x_{t-1}, shape
    (n_draws, n_transitions, d). With i.i.d. regimes z_t is drawn as the fit treats it: from
    the weights p when it is summed out (``discrete="marginal"``: the regime is replicated
    too, x_t ~ sum_k p_k N(Pi_k x_{t-1}, Sigma)), from the neural guide q(z_t | x_{t-1}, x_t)
    otherwise (which has seen x_t, like the amortized models' q(z | x); ``"relaxed"`` mixes
    the matrices). With Markov-switching regimes each replicate follows a path drawn from the
    paths' posterior given the whole series (as in :func:`posterior_samples`), at the fitted
    globals: the regimes have seen x_t and the steps after it, so these replicates sit closer
    to the data than a forecast would. (The ``posterior_predictive`` group of
    :func:`~pyro_gmvae.analysis.to_inference_data` is the one-step forecast instead: z_t from
    p(z_t | x_1..t-1), matching its ``log_likelihood``.)
    ``pyro.infer.Predictive`` runs the model with its observation unconditioned
    (``poutine.uncondition``) and its latents replayed from the guide. Seeded by ``seed``;
    the caller's random state is left alone.
    """
    check_positive_int("n_draws", n_draws)
    if isinstance(estimator, ARMixture) and estimator.markov:
        with local_seed(seed):
            return _markov_predictive(estimator, X, n_draws).numpy()
    if isinstance(estimator, ARMixture):
        module, args = estimator.module_, (*_fitted_series(estimator, X).transitions(), None)
        with local_seed(seed):
            predictive = Predictive(
                poutine.uncondition(module.model),
                guide=module.guide,
                num_samples=n_draws,
                return_sites=["x"],
            )
            return predictive(*args)["x"].numpy()
    module, x = fitted_module(estimator, X)
    with local_seed(seed):
        return guide_draws_and_replicates(module, x, n_draws)[1].numpy()


def guide_draws_and_replicates(module, x: torch.Tensor, n_draws: int):
    """``n_draws`` draws of every latent from the amortized ``module``'s guide, and one
    replicate of x from the model given each draw: replicate i is decoded from draw i."""
    draws = Predictive(module.guide, num_samples=n_draws)(x)
    latent = {name: value for name, value in draws.items() if name != "x"}
    predictive = Predictive(
        poutine.uncondition(module.model), posterior_samples=latent, return_sites=["x"]
    )
    return latent, predictive(x)["x"]
