"""Priors on the continuous latent z."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F


class LearnedMixturePrior(nn.Module):
    """p(z | y) = N(mu(y), diag(var(y))) with mu, var affine in onehot(y) (var through softplus).

    With a one-hot y each cluster gets its own learned mean and variance; with a relaxed
    (soft) y the parameters interpolate between clusters, as in the Gumbel-softmax GMVAE.
    """

    def __init__(self, n_clusters: int, latent_dim: int, min_var: float = 1e-6) -> None:
        super().__init__()
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.loc = nn.Linear(n_clusters, latent_dim)
        self.var = nn.Linear(n_clusters, latent_dim)
        self.min_var = min_var

    def params(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of p(z | y) for a one-hot (or relaxed) y."""
        return self.loc(y), F.softplus(self.var(y)) + self.min_var

    @torch.no_grad()
    def set_components(self, means: torch.Tensor, variances: torch.Tensor) -> None:
        """Set cluster k's mean and variance to ``means[k]``, ``variances[k]`` (shape (K, D))."""
        self.loc.weight.copy_(means.T)
        self.loc.bias.zero_()
        # inverse softplus, so that softplus(weight) + min_var == variance
        target = (variances - self.min_var).clamp_min(1e-8)
        self.var.weight.copy_((target + torch.log(-torch.expm1(-target))).T)
        self.var.bias.zero_()

    def forward(self, y: torch.Tensor) -> dist.Distribution:
        loc, var = self.params(y)
        return dist.Normal(loc, var.sqrt()).to_event(1)
