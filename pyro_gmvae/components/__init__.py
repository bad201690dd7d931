"""Swappable parts of the models: priors on z, likelihoods for x, ways to treat a discrete y."""

from .discrete import DiscreteStrategy, Enumerate, GumbelSoftmaxCategorical, Relaxed, make_discrete
from .likelihoods import BernoulliLikelihood, Likelihood, make_likelihood
from .priors import LearnedMixturePrior

__all__ = [
    "BernoulliLikelihood",
    "DiscreteStrategy",
    "Enumerate",
    "GumbelSoftmaxCategorical",
    "LearnedMixturePrior",
    "Likelihood",
    "Relaxed",
    "make_discrete",
    "make_likelihood",
]
