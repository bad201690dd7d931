"""Autoregressive mixtures of Gaussians for time series, and their Markov-switching variant."""

from .em import EMResult, fit_em
from .estimator import ARMixture, Forecast
from .simulate import ARParameters, ARSimulation, simulate_ar_mixture

__all__ = [
    "ARMixture",
    "ARParameters",
    "ARSimulation",
    "EMResult",
    "Forecast",
    "fit_em",
    "simulate_ar_mixture",
]
