"""pyro-gmvae: Gaussian-mixture variational autoencoders in Pyro."""

from .data import (
    Dataset,
    load_array,
    load_dataset,
    load_digits,
    load_idx,
    load_mnist_test,
    make_mixture_1d,
)
from .disk import DiskData
from .estimators import (
    AE,
    GMVAE,
    VAE,
    VAEGMM,
    ClusterCollapseWarning,
    DilokthanakulGMVAE,
    NotFittedError,
)
from .gmm import GibbsGMM
from .metrics import (
    cluster_accuracy,
    clustering_scores,
    majority_label_accuracy,
    most_probable_point_accuracy,
)
from .timeseries import ARMixture, simulate_ar_mixture

__version__ = "0.1.0"

__all__ = [
    "AE",
    "ARMixture",
    "GMVAE",
    "VAE",
    "VAEGMM",
    "ClusterCollapseWarning",
    "DilokthanakulGMVAE",
    "GibbsGMM",
    "Dataset",
    "DiskData",
    "NotFittedError",
    "cluster_accuracy",
    "clustering_scores",
    "majority_label_accuracy",
    "most_probable_point_accuracy",
    "load_array",
    "load_dataset",
    "load_digits",
    "load_idx",
    "load_mnist_test",
    "make_mixture_1d",
    "simulate_ar_mixture",
]
