"""The blocked Gibbs sweep and the undoing of label switching."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from . import conjugate as cj


@dataclass
class Sweep:
    """What one sweep drew, for every chain: the parameters it started from (``params``), the
    assignments drawn given them (``assignments``, (C, N)), log pi_k + log N(z_n | mu_k,
    Sigma_k) (``log_probs``, (C, K, N)) and the log joint log p(Z, c, params) (``log_joint``,
    (C,))."""

    params: cj.Parameters
    assignments: torch.Tensor
    log_probs: torch.Tensor
    log_joint: torch.Tensor


def sample_assignments(log_probs: torch.Tensor) -> torch.Tensor:
    """Draw c_n with probabilities proportional to exp(``log_probs``) ((C, K, N), one column
    per point) by inverting the cumulative sum with one uniform per point (cheaper than a Gumbel
    per point and cluster). Returns the draws, (C, N)."""
    cumulative = (log_probs - log_probs.amax(-2, keepdim=True)).exp_().cumsum_(-2)
    u = torch.rand_like(cumulative[:, -1:]) * cumulative[:, -1:]
    return (cumulative < u).sum(-2).clamp_max_(log_probs.shape[-2] - 1)


def gibbs_sweeps(
    feats: torch.Tensor,
    prior: cj.MixturePrior,
    params: cj.Parameters,
    n_sweeps: int,
) -> Iterator[Sweep]:
    """Blocked Gibbs sampling of (c, pi, mu, Lambda) from ``params`` (one per chain): each sweep
    draws every assignment given the parameters, then the parameters given the assignments from
    their conjugate posterior. An empty cluster's parameters are drawn from the prior.
    ``feats`` are the points' :func:`~pyro_gmvae.gmm.conjugate.features`."""
    C, K, D = params.means.shape
    full = params.full
    feats_t = feats.T.contiguous()
    # the statistics' index_add reads one row per (chain, point)
    feats_chains = feats if C == 1 else feats.repeat(C, 1)
    log_normaliser = prior.log_normaliser(K)
    for _ in range(n_sweeps):
        log_probs = cj.log_joint_terms(feats_t, params)
        assignments = sample_assignments(log_probs)
        log_lik = log_probs.gather(-2, assignments.unsqueeze(-2)).sum((-1, -2))
        log_joint = log_lik + cj.log_prior(prior, params, log_normaliser)
        yield Sweep(params, assignments, log_probs, log_joint)
        stats = cj.statistics(feats_chains, assignments, K, D, full)
        params = cj.draw(cj.posterior(prior, *stats))


def match_labels(
    assignments: torch.Tensor, reference: torch.Tensor, n_clusters: int
) -> torch.Tensor:
    """For each chain's assignments (C, N), the order of its clusters that best agrees with
    ``reference`` ((N,), or (C, N): one per chain): ``order[c, j]`` is the cluster of chain c
    that becomes j (the Hungarian algorithm on the K x K table of co-assigned points). Applied
    to every kept draw, this undoes label switching."""
    C = assignments.shape[0]
    pairs = reference * n_clusters + assignments  # (C, N): (reference label, draw label)
    offsets = torch.arange(C).unsqueeze(1) * n_clusters * n_clusters
    counts = torch.bincount((pairs + offsets).reshape(-1), minlength=C * n_clusters**2)
    counts = counts.reshape(C, n_clusters, n_clusters).numpy()
    order = np.empty((C, n_clusters), dtype=np.int64)
    for chain in range(C):  # K x K problems, one per chain: negligible beside a sweep
        rows, cols = linear_sum_assignment(counts[chain], maximize=True)
        order[chain, rows] = cols
    return torch.from_numpy(order)
