"""Bayesian Gaussian mixtures fitted by Gibbs sampling: the conjugate updates
(:mod:`~pyro_gmvae.gmm.conjugate`), the sweep and relabelling (:mod:`~pyro_gmvae.gmm.sampler`) and
the estimator :class:`GibbsGMM`."""

from .estimator import ChainDisagreementWarning, GibbsGMM

__all__ = ["ChainDisagreementWarning", "GibbsGMM"]
