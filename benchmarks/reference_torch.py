"""A plain-PyTorch GMVAE step with the same networks and the same enumerated loss as the Pyro
model (exact sum over y, one reparameterized z per cluster, Monte Carlo log-densities of z),
used to measure Pyro's overhead as a ratio of images per second."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from pyro_gmvae.models import GMVAEModule


def enumerated_loss(net: GMVAEModule, x: torch.Tensor) -> torch.Tensor:
    """Negative ELBO summed over the batch, written by hand (Bernoulli likelihood)."""
    K = net.n_clusters
    logits = net.y_encoder(x)
    log_q_y = F.log_softmax(logits, -1)  # (N, K)
    y = torch.eye(K, dtype=x.dtype).unsqueeze(1)  # (K, 1, K)
    loc, var = net.z_encoder(x, y)  # (K, N, D)
    std = var.sqrt()
    z = loc + std * torch.randn_like(loc)
    p_loc, p_var = net.prior.params(y)  # (K, 1, D)
    log_q_z = _normal_log_prob(z, loc, var).sum(-1)
    log_p_z = _normal_log_prob(z, p_loc, p_var).sum(-1)
    out = net.decoder(z)
    log_p_x = -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)
    per_k = log_p_x + log_p_z - log_q_z + (-math.log(K)) - log_q_y.T  # (K, N)
    return -(log_q_y.exp().T * per_k).sum()


def _normal_log_prob(z, loc, var):
    return -0.5 * (math.log(2 * math.pi) + var.log() + (z - loc) ** 2 / var)
