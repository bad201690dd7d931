"""Swappable parts of the models: priors on z, guides for z, likelihoods for x, and ways to
treat a discrete y."""

from .discrete import (
    DiscreteStrategy,
    Enumerate,
    GumbelSoftmaxCategorical,
    Relaxed,
    ScoreFunction,
    make_discrete,
)
from .guides import (
    DiagonalNormalGuide,
    FlowGuide,
    FullNormalGuide,
    LowRankNormalGuide,
    make_z_guide,
)
from .likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
    make_likelihood,
)
from .priors import (
    FixedMixturePrior,
    GaussianMixturePrior,
    LearnedFullMixturePrior,
    LearnedMixturePrior,
    MixturePrior,
    StandardNormalPrior,
    VampPrior,
)

__all__ = [
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "DiagonalNormalGuide",
    "DiscreteStrategy",
    "Enumerate",
    "FixedMixturePrior",
    "FlowGuide",
    "FullNormalGuide",
    "GaussianLikelihood",
    "GaussianMixturePrior",
    "GumbelSoftmaxCategorical",
    "LearnedFullMixturePrior",
    "LearnedMixturePrior",
    "Likelihood",
    "LowRankNormalGuide",
    "MixturePrior",
    "Relaxed",
    "ScoreFunction",
    "StandardNormalPrior",
    "VampPrior",
    "make_discrete",
    "make_likelihood",
    "make_z_guide",
]
