"""Pyro model/guide pairs assembled from components."""

from .gmvae import GMVAEModule

__all__ = ["GMVAEModule"]
