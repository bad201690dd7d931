"""Pyro model/guide pairs assembled from components."""

from .gmvae import GMVAEModule
from .posterior import importance_log_likelihood
from .vae import AEModule, VAEModule
from .vae_gmm import VAEGMMModule

__all__ = ["AEModule", "GMVAEModule", "VAEGMMModule", "VAEModule", "importance_log_likelihood"]
