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
from ..estimators.base import LatentEstimator
from ..timeseries import ARMixture
from ..timeseries.regimes import sample_paths, series_log_emission
from ..timeseries.series import as_series
from ..training import local_seed


def _fitted_module(estimator, X) -> tuple[torch.nn.Module, torch.Tensor]:
    if not isinstance(estimator, LatentEstimator):
        raise TypeError(
            f"{type(estimator).__name__} is not one of the models with a guide (GMVAE, VAE, "
            "AE, VAEGMM, DilokthanakulGMVAE, ARMixture)"
        )
    estimator._check_fitted()
    return estimator.module_, estimator._data(X)


def module_local_params():
    """The context in which an AR mixture's Pyro parameters are its own: outside it, Pyro's
    global parameter store would hand one fit's guide parameters to another's."""
    return pyro.settings.context(module_local_params=True)


def _ar_transitions(estimator: ARMixture, X) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitted AR mixture's (x_{t-1}, x_t) pairs of ``X``, every series in order."""
    estimator._check_fitted()
    return as_series(X, estimator.n_features_in_).transitions()


def markov_paths(estimator: ARMixture, X, n_draws: int) -> torch.Tensor:
    """Draws of a Markov-switching AR mixture's regime paths from their joint posterior given
    each whole series, at the fitted globals (forward filtering, backward sampling): (n_draws,
    n_transitions), the transitions of every series in order."""
    series = as_series(X, estimator.n_features_in_)
    g = estimator.module_.point_globals()
    log_e = series_log_emission(
        series.values, series.lengths, g["transition_matrices"], g["scale_tril"]
    )
    paths = sample_paths(g["weights"].log(), g["switching"].log(), log_e, n_draws)
    return paths[:, series.mask()]


@torch.no_grad()
def _ar_posterior_samples(estimator: ARMixture, X, n_draws: int) -> dict[str, torch.Tensor]:
    series = as_series(X, estimator.n_features_in_)
    module = estimator.module_
    args = (series.values, series.lengths) if estimator.markov else series.transitions()
    out = {}
    if module.global_guide is not None:  # globals with priors: draws from their guide
        with module_local_params():
            draws = Predictive(module.global_guide, num_samples=n_draws)(*args, None)
        out.update({name: draws[name] for name in module._global_names()})
    if estimator.markov:
        out["regime"] = markov_paths(estimator, X, n_draws)
    else:
        probs = torch.from_numpy(transition_probabilities(estimator, X))
        out["regime"] = dist.Categorical(probs=probs).sample((n_draws,))
    return out


@torch.no_grad()
def _markov_predictive(estimator: ARMixture, X, n_draws: int) -> torch.Tensor:
    """x_t ~ N(Pi_{z_t} x_{t-1}, Sigma) with each path z drawn from its posterior."""
    prev, nxt = _ar_transitions(estimator, X)
    g = estimator.module_.point_globals()
    paths = markov_paths(estimator, X, n_draws)  # (n, N)
    means = torch.einsum("snij,nj->sni", g["transition_matrices"][paths], prev)
    return means + torch.randn(*means.shape, dtype=means.dtype) @ g["scale_tril"].T


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
    at the fitted globals: for i.i.d. regimes drawn from the exact posterior
    p(z_t | x_{t-1}, x_t) (``predict_proba``); for Markov-switching ones, whole paths drawn from
    their joint posterior given the series (forward filtering, backward sampling), so that the
    draws keep the regimes' dependence. With ``global_guide="normal"`` or ``"map"`` also draws
    of the globals from their guide: ``weights`` (n_draws, K), ``transition_matrices``
    (n_draws, K, d, d), ``noise_scale`` (n_draws, d), for full covariances
    ``noise_correlation`` (n_draws, d, d), and for Markov regimes ``switching`` (n_draws, K,
    K). The draws come from a generator seeded by ``seed``; the caller's random state is left
    alone.
    """
    check_positive_int("n_draws", n_draws)
    if isinstance(estimator, ARMixture):
        with local_seed(seed):
            return {k: v.numpy() for k, v in _ar_posterior_samples(estimator, X, n_draws).items()}
    module, x = _fitted_module(estimator, X)
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
    paths' posterior given the series (as in :func:`posterior_samples`), at the fitted globals.
    ``pyro.infer.Predictive`` runs the model with its observation unconditioned
    (``poutine.uncondition``) and its latents replayed from the guide. Seeded by ``seed``;
    the caller's random state is left alone.
    """
    check_positive_int("n_draws", n_draws)
    if isinstance(estimator, ARMixture) and estimator.markov:
        with local_seed(seed):
            return _markov_predictive(estimator, X, n_draws).numpy()
    if isinstance(estimator, ARMixture):
        module, args = estimator.module_, (*_ar_transitions(estimator, X), None)
    else:
        module, x = _fitted_module(estimator, X)
        args = (x,)
    with local_seed(seed):
        predictive = Predictive(
            poutine.uncondition(module.model),
            guide=module.guide,
            num_samples=n_draws,
            return_sites=["x"],
        )
        return predictive(*args)["x"].numpy()
