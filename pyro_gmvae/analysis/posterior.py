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
    if estimator.markov:
        raise ValueError(
            "posterior draws per transition need i.i.d. regimes: a Markov-switching model's "
            "regimes are drawn jointly (use predict_proba for their smoothed posterior)"
        )
    return as_series(X, estimator.n_features_in_).transitions()


@torch.no_grad()
def _ar_posterior_samples(estimator: ARMixture, X, n_draws: int) -> dict[str, torch.Tensor]:
    prev, nxt = _ar_transitions(estimator, X)
    module = estimator.module_
    out = {}
    if module.global_guide is not None:  # globals with priors: draws from their guide
        with module_local_params():
            draws = Predictive(module.global_guide, num_samples=n_draws)(prev, nxt, None)
        out.update({name: draws[name] for name in module._global_names()})
    probs = torch.from_numpy(transition_probabilities(estimator, X))
    out["regime"] = dist.Categorical(probs=probs).sample((n_draws,))
    return out


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

    ``ARMixture`` (i.i.d. regimes): ``regime`` (n_draws, n_transitions), drawn from the exact
    posterior p(z_t | x_{t-1}, x_t) at the fitted globals (``predict_proba``), transitions of
    every series in order; with ``global_guide="normal"`` or ``"map"`` also draws of the
    globals from their guide: ``weights`` (n_draws, K), ``transition_matrices``
    (n_draws, K, d, d), ``noise_scale`` (n_draws, d) and, for full covariances,
    ``noise_correlation`` (n_draws, d, d). The draws come from a generator seeded by ``seed``;
    the caller's random state is left alone.
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
    a Bernoulli likelihood, noisy values under a Gaussian one. For ``ARMixture`` (i.i.d.
    regimes) they are one-step replicates of each transition given the observed x_{t-1}, shape
    (n_draws, n_transitions, d), with z_t drawn as the fit treats it: from the weights p when
    it is summed out (``discrete="marginal"``: the regime is replicated too, x_t ~ sum_k p_k
    N(Pi_k x_{t-1}, Sigma)), from the neural guide q(z_t | x_{t-1}, x_t) otherwise (which
    has seen x_t, like the amortized models' q(z | x); ``"relaxed"`` mixes the matrices).
    ``pyro.infer.Predictive`` runs the model with its observation unconditioned
    (``poutine.uncondition``) and its latents replayed from the guide. Seeded by ``seed``;
    the caller's random state is left alone.
    """
    check_positive_int("n_draws", n_draws)
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
