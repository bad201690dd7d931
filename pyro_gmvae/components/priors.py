"""Priors on the continuous latent z.

A prior is a module with ``n_clusters`` (the number of values of a discrete y it is conditioned
on, or ``None`` when the model has no y), ``forward(y)`` giving the distribution of z (given y
when there is one; one event of ``latent_dim`` values) and ``marginal()`` giving p(z) with y
summed out (used by importance-weighted likelihoods and by sampling). A user-defined prior
only needs these three things; see :class:`StandardNormalPrior` for the smallest example.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I): the plain VAE's prior. No discrete y."""

    n_clusters = None

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("zero", torch.zeros(()))  # follows the module's device and dtype

    def forward(self, y: torch.Tensor | None = None) -> dist.Distribution:
        return dist.Normal(self.zero.expand(self.latent_dim), 1.0).to_event(1)

    def marginal(self) -> dist.Distribution:
        return self()


class LearnedMixturePrior(nn.Module):
    """p(z | y) = N(mu(y), diag(var(y))) with mu, var affine in onehot(y) (var through softplus),
    and p(y) uniform over ``n_clusters`` values.

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

    def marginal(self) -> dist.Distribution:
        eye = torch.eye(self.n_clusters, device=self.loc.weight.device)
        mixing = dist.Categorical(logits=eye.new_zeros(self.n_clusters))
        return dist.MixtureSameFamily(mixing, self(eye))
