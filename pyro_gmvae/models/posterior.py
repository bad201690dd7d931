"""Quantities computed from any model's prior, guide and likelihood."""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, kl_divergence


def kl_or_estimate(q: Distribution, p: Distribution, z: torch.Tensor) -> torch.Tensor:
    """KL(q || p): analytic when torch has it registered, else log q(z) - log p(z) at ``z ~ q``."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return q.log_prob(z) - p.log_prob(z)


@torch.no_grad()
def importance_log_likelihood(
    module, x: torch.Tensor, n_samples: int = 1000, chunk: int = 100
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) per point, shape (N,).

    log p(x) ~= log (1/S) sum_s p(x | z_s) p(z_s) / q(z_s | x), z_s ~ q(z | x), with any discrete
    y summed out exactly in both p(z) and q(z | x). It lower-bounds log p(x) in expectation and
    tightens as S grows (Burda et al., 2016). S=1 estimates the ELBO of the marginal pair
    p(x, z), q(z | x): for a VAE that is the model's ELBO; for a GMVAE, whose ELBO (``score``)
    keeps y in q(y, z | x), it is higher by E_q[KL(q(y | x, z) || p(y | x, z))] >= 0.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    prior = module.prior.marginal()
    log_w = []
    for start in range(0, n_samples, chunk):
        z, log_q = module.sample_posterior(x, min(chunk, n_samples - start))
        log_p = prior.log_prob(z) + module.likelihood(module.decoder(z)).log_prob(x)
        log_w.append(log_p - log_q)
    return torch.logsumexp(torch.cat(log_w), 0) - math.log(n_samples)
