"""Swappable parts of the models: priors on z, likelihoods for x, ways to treat a discrete y."""

from .discrete import DiscreteStrategy, Enumerate, GumbelSoftmaxCategorical, Relaxed, make_discrete
from .likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
    make_likelihood,
)
from .priors import LearnedMixturePrior, StandardNormalPrior

__all__ = [
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "GaussianLikelihood",
    "DiscreteStrategy",
    "Enumerate",
    "GumbelSoftmaxCategorical",
    "LearnedMixturePrior",
    "Likelihood",
    "Relaxed",
    "StandardNormalPrior",
    "make_discrete",
    "make_likelihood",
]
