"""What a fitted clustering says about each point and each cluster: q(y | x), its entropy (how
sure the model is), and per-cluster summaries with the most and least typical members.

Works with every estimator that has ``predict_proba``: ``GMVAE``, ``DilokthanakulGMVAE``,
``VAEGMM``, ``VAE`` with a mixture prior, ``GibbsGMM`` (on its own features) and
``ARMixture`` (one row per transition x_{t-1} -> x_t of every series, in order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import check_positive_int
from ..disk import in_memory
from ..timeseries import ARMixture
from ..timeseries.series import as_series
from .likelihood import log_likelihood as per_point_log_likelihood
from .posterior import transition_probabilities


@dataclass(frozen=True)
class ClusterUncertainty:
    """Per point: ``probs`` (N, K) = q(y | x), ``labels`` (N,) their argmax, ``confidence``
    (N,) the largest probability and ``entropy`` (N,) of q(y | x) in nats (0 when sure, log K
    at most)."""

    probs: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray

    def most_uncertain(self, n: int = 16) -> np.ndarray:
        """Indices of the ``n`` points of highest entropy, most uncertain first."""
        check_positive_int("n", n)
        return np.argsort(-self.entropy, kind="stable")[:n]


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster: its index, ``size`` (points whose most probable cluster it is), ``share``
    of the data, ``mean`` of its members' features (NaN for an empty cluster), and the indices
    of its ``typical`` and ``atypical`` members (most and least typical first) by the
    criterion the summaries were made with."""

    cluster: int
    size: int
    share: float
    mean: np.ndarray
    typical: np.ndarray
    atypical: np.ndarray


def _probabilities(estimator, X) -> tuple[np.ndarray, np.ndarray]:
    """q(y | x) (N, K) and the rows it belongs to (N, ...): the rows of ``X``, or for the AR
    mixture its transitions' x_t (every series in order)."""
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(f"{type(estimator).__name__} gives no cluster probabilities")
    if isinstance(estimator, ARMixture):
        estimator._check_fitted()
        _, rows = as_series(X, estimator.n_features_in_).transitions()
        return transition_probabilities(estimator, X), rows.numpy()
    in_memory(X, "cluster summaries")
    probs = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    rows = np.asarray(X, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(rows):
        raise ValueError(
            f"expected one row of cluster probabilities per row of X ({len(rows)}), got an "
            f"array of shape {probs.shape}"
        )
    return probs, rows


def cluster_uncertainty(estimator, X) -> ClusterUncertainty:
    """q(y | x) of each point of ``X`` with its entropy: the points the model is unsure of."""
    probs, _ = _probabilities(estimator, X)
    logs = np.log(np.clip(probs, np.finfo(np.float64).tiny, None))
    entropy = -(probs * logs).sum(1)
    return ClusterUncertainty(probs, probs.argmax(1), probs.max(1), np.maximum(entropy, 0.0))


def cluster_summaries(
    estimator, X, n_members: int = 8, by: str = "probability", log_likelihood=None
) -> list[ClusterSummary]:
    """One :class:`ClusterSummary` per cluster of the fitted ``estimator`` on ``X``.

    Members are the points whose most probable cluster it is. They are ranked ``by``
    ``"probability"`` (q(k | x) of their cluster: typical = the surest members) or
    ``"log_likelihood"`` (typical = the best-explained members, by
    :func:`~pyro_gmvae.analysis.log_likelihood`, or by the per-point values passed as
    ``log_likelihood``, which saves recomputing them). ``n_members`` of each end are kept.
    ``mean`` is the mean of the members' rows of ``X`` in its own shape (an image for images).
    For the AR mixture the members are transitions (indices in every series' order), ranked by
    log-likelihood per transition, and ``mean`` is their x_t.
    """
    check_positive_int("n_members", n_members)
    if by not in ("probability", "log_likelihood"):
        raise ValueError(f"by must be 'probability' or 'log_likelihood', got {by!r}")
    probs, data = _probabilities(estimator, X)
    labels = probs.argmax(1)
    if by == "log_likelihood":
        if log_likelihood is None:
            log_likelihood = per_point_log_likelihood(estimator, X)
        score = np.asarray(log_likelihood, dtype=np.float64).ravel()
        if score.shape != (len(data),):
            raise ValueError(f"log_likelihood needs one value per row of X ({len(data)})")
    out = []
    for k in range(probs.shape[1]):
        members = np.flatnonzero(labels == k)
        key = probs[members, k] if by == "probability" else score[members]
        ranked = members[np.argsort(-key, kind="stable")]
        mean = data[members].mean(0) if len(members) else np.full(data.shape[1:], np.nan)
        out.append(
            ClusterSummary(
                cluster=k,
                size=len(members),
                share=len(members) / len(data),
                mean=mean,
                typical=ranked[:n_members],
                atypical=ranked[::-1][:n_members],
            )
        )
    return out
