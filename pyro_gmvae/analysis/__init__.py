"""Posterior analysis, the same calls for every model: posterior and posterior-predictive
draws, q(y | x) and its entropy, per-cluster summaries, the log-likelihood of every point,
choosing K by held-out log-likelihood, and ArviZ InferenceData (with NUTS for the AR
mixture's globals)."""

from .choosing_k import KSelection, choose_k, combine_selections
from .clusters import ClusterSummary, ClusterUncertainty, cluster_summaries, cluster_uncertainty
from .inference_data import ar_nuts, to_inference_data
from .likelihood import log_likelihood
from .posterior import posterior_predictive, posterior_samples

__all__ = [
    "ClusterSummary",
    "ClusterUncertainty",
    "KSelection",
    "ar_nuts",
    "choose_k",
    "cluster_summaries",
    "cluster_uncertainty",
    "combine_selections",
    "log_likelihood",
    "posterior_predictive",
    "posterior_samples",
    "to_inference_data",
]
