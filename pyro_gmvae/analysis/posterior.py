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
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Predictive

from ..checks import check_positive_int
from ..estimators.base import LatentEstimator
from ..training import local_seed


def _fitted_module(estimator, X) -> tuple[torch.nn.Module, torch.Tensor]:
    if not isinstance(estimator, LatentEstimator):
        raise TypeError(
            f"{type(estimator).__name__} is not one of the amortized models (GMVAE, VAE, AE, "
            "VAEGMM, DilokthanakulGMVAE)"
        )
    estimator._check_fitted()
    return estimator.module_, estimator._data(X)


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
    so its draws are all equal. The draws come from a generator seeded by ``seed``; the
    caller's random state is left alone.
    """
    check_positive_int("n_draws", n_draws)
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
    a Bernoulli likelihood, noisy values under a Gaussian one. ``pyro.infer.Predictive`` runs
    the model with its observation unconditioned (``poutine.uncondition``) and its latents
    replayed from the guide. Seeded by ``seed``; the caller's random state is left alone.
    """
    check_positive_int("n_draws", n_draws)
    module, x = _fitted_module(estimator, X)
    with local_seed(seed):
        predictive = Predictive(
            poutine.uncondition(module.model),
            guide=module.guide,
            num_samples=n_draws,
            return_sites=["x"],
        )
        return predictive(x)["x"].numpy()
