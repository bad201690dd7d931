"""Pyro model/guide pairs assembled from components."""

from .gmvae import GMVAEModule
from .posterior import importance_log_likelihood
from .vae import AEModule, VAEModule

__all__ = ["AEModule", "GMVAEModule", "VAEModule", "importance_log_likelihood"]
