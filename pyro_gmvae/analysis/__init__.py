"""Posterior analysis, the same calls for every model: posterior and posterior-predictive
draws, q(y | x) and its entropy, per-cluster summaries, and choosing K by held-out
log-likelihood."""

from .choosing_k import KSelection, choose_k
from .clusters import ClusterSummary, ClusterUncertainty, cluster_summaries, cluster_uncertainty
from .posterior import posterior_predictive, posterior_samples

__all__ = [
    "ClusterSummary",
    "ClusterUncertainty",
    "KSelection",
    "choose_k",
    "cluster_summaries",
    "cluster_uncertainty",
    "posterior_predictive",
    "posterior_samples",
]
