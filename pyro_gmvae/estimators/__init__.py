"""User-facing estimators in the style of scikit-learn's ``GaussianMixture``: one file per
estimator over a shared base (``base``) and persistence (``persistence``)."""

from .ae import AE
from .base import ClusterCollapseWarning, LatentEstimator, NotFittedError
from .dilokthanakul import DilokthanakulGMVAE
from .gmvae import GMVAE
from .vae import VAE
from .vae_gmm import VAEGMM

__all__ = [
    "AE",
    "GMVAE",
    "VAE",
    "ClusterCollapseWarning",
    "DilokthanakulGMVAE",
    "LatentEstimator",
    "NotFittedError",
    "VAEGMM",
]
