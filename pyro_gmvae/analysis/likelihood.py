"""The log-likelihood of every point, the same call for every model: the yardstick of
``choose_k``, of the ``log_likelihood`` groups and of ranking a cluster's members."""

from __future__ import annotations

import numpy as np
import torch

from ..estimators.base import LatentEstimator
from ..gmm import GibbsGMM
from ..timeseries import ARMixture
from ..timeseries.regimes import (
    emission_log_probs,
    one_step_predictions,
    series_log_emission,
)
from ..timeseries.series import Series, as_series


def log_likelihood(estimator, X, n_samples: int = 1000, seed: int = 0) -> np.ndarray:
    """log p(x) of every point of ``X`` under the fitted ``estimator``:

    * the amortized models (GMVAE, VAE, AE, VAEGMM, DilokthanakulGMVAE): the importance-weighted
      estimate with ``n_samples`` draws from the guide (``estimator.log_likelihood``; seeded
      by ``seed``), a lower bound that tightens as ``n_samples`` grows;
    * ``GibbsGMM``: the posterior predictive density, averaged over the kept draws
      (``score_samples``);
    * ``ARMixture``: one value per transition x_{t-1} -> x_t (every series in order) at the
      fitted globals: log p(x_t | x_{t-1}) for i.i.d. regimes, the one-step
      log p(x_t | x_1..t-1) for Markov-switching ones (their sum is the series'
      log-likelihood);
    * another estimator: its own ``log_likelihood(X)`` or ``score_samples(X)``.
    """
    if isinstance(estimator, LatentEstimator):
        return np.asarray(estimator.log_likelihood(X, n_samples=n_samples, seed=seed))
    if isinstance(estimator, ARMixture):
        estimator._check_fitted()
        series = as_series(X, estimator.n_features_in_)
        with torch.no_grad():
            g = estimator.module_.point_globals()
            return ar_transition_terms(g, series, estimator.markov)[0].numpy()
    if isinstance(estimator, GibbsGMM):
        return np.asarray(estimator.score_samples(X))
    for method in ("log_likelihood", "score_samples"):  # another estimator of the same shape
        if hasattr(estimator, method):
            return np.asarray(getattr(estimator, method)(X))
    raise TypeError(
        f"{type(estimator).__name__} has no per-point log-likelihood (no log_likelihood or "
        "score_samples method)"
    )


def transition_log_joint(weights, Pi, tril, prev, nxt) -> tuple[torch.Tensor, torch.Tensor]:
    """log p_k + log N(x_t | Pi_k x_{t-1}, Sigma) (N, K) and its most probable regimes (N,)."""
    joint = weights.log() + emission_log_probs(prev, nxt, Pi, tril)
    return joint, joint.argmax(-1)


def ar_transition_terms(g: dict, series: Series, markov: bool):
    """At the AR mixture's globals ``g`` (``weights``, ``transition_matrices``, ``scale_tril``
    and, for Markov regimes, ``switching``): the log-likelihood of every transition (see
    :func:`log_likelihood`), its most probable regime given all the data, and the regime's
    distribution before x_t is seen (N, K); transitions of every series in order."""
    if not markov:
        prev, nxt = series.transitions()
        joint, labels = transition_log_joint(
            g["weights"], g["transition_matrices"], g["scale_tril"], prev, nxt
        )
        return joint.logsumexp(-1), labels, g["weights"].expand(len(prev), -1)
    log_e = series_log_emission(
        series.values, series.lengths, g["transition_matrices"], g["scale_tril"]
    )
    log_p, log_A, mask = g["weights"].log(), g["switching"].log(), series.mask()
    predicted, step, smoothed = one_step_predictions(log_p, log_A, log_e)
    return step[mask], smoothed[mask].argmax(-1), predicted[mask].exp()
