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
    Sigma_k) (``log_probs``, (C, K, N), float32 or float64: see :func:`assignment_log_probs`)
    and the log joint log p(Z, c, params) (``log_joint``, (C,))."""

    params: cj.Parameters
    assignments: torch.Tensor
    log_probs: torch.Tensor
    log_joint: torch.Tensor


# Shifted log-probabilities below this are raised to it before the exponential: exp runs about
# ten times slower where its float32 result is subnormal or zero (below about -87), which is where
# most of a well-separated mixture's log-probabilities lie (float64 has no such cost above -708;
# one floor serves both). The clusters raised sum to at most K e^-80 (K 1.8e-35) of the largest
# term, far below the smallest nonzero uniform (2^-24 of the total in float32, 2^-53 in float64),
# so no probability a draw can resolve changes; a draw can differ from the unfloored one only
# where a last-bit rounding tie in the cumulative sum meets one exact value of the uniform.
LOG_PROB_FLOOR = -80.0


def sample_assignments(
    log_probs: torch.Tensor, uniform: torch.Tensor | None = None
) -> torch.Tensor:
    """Draw c_n with probabilities proportional to exp(``log_probs``) ((C, K, N), one column
    per point) by inverting the cumulative sum with one uniform per point (cheaper than a Gumbel
    per point and cluster): c_n is the first cluster whose cumulative sum reaches u_n, with
    u_n = (1 - ``uniform``) * total in (0, total], so a cluster of zero probability, whose
    interval is empty, is never drawn. ``uniform`` ((C, 1, N), values in [0, 1) as
    ``torch.rand`` gives them) is drawn when not given. Returns the draws, (C, N)."""
    shifted = (log_probs - log_probs.amax(-2, keepdim=True)).clamp_min_(LOG_PROB_FLOOR)
    cumulative = shifted.exp_().cumsum_(-2)
    total = cumulative[:, -1:]
    if total.isnan().any():  # a NaN, +inf or all -inf column: no distribution to draw from
        raise FloatingPointError(
            "the Gibbs assignment step got log-probabilities that are NaN, +inf or -inf for every "
            "cluster: the parameters or the points hold non-finite values"
        )
    if uniform is None:
        uniform = torch.rand_like(total)
    u = (1.0 - uniform) * total
    return (cumulative < u).sum(-2)


# The assignment step's densities are one (K, F) x (F, N) product, the sweep's largest read of
# memory. In float32 it reads half as much, and its rounding error in the density of cluster k at
# z is at most g sum_f |c_kf x_f(z)|, g = n u / (1 - n u), n = F + 2 (u = 2^-24: F products and
# sums, and the rounding of coefficients and features to float32, in any order of summation),
# where
# sum_f |c_kf x_f(z)| <= |c_k0| + |Lambda_k mu_k| |z| + |Lambda_k|_abs |z|^2 / 2 (Cauchy-Schwarz;
# |Lambda_k|_abs is the largest row sum of |Lambda_k|, a bound on the spectral norm of the
# entrywise absolute matrix). The sweep checks this bound at the largest |z| every time and uses
# float64 where it exceeds the tolerance (a cluster far from the data's centre and narrow, where
# the expanded quadratic form cancels): a density off by at most 0.01 nats, so each assignment
# probability is off by at most about 2 % of itself (e^0.02 - 1). The log joint stays exact.
DENSITY_TOLERANCE = 1e-2  # nats


def density_error_bound(params: cj.Parameters, coefficients: torch.Tensor, radius: float) -> float:
    """The largest rounding error of a float32 density of any cluster of any chain at points
    no further than ``radius`` from the origin, given the clusters' ``coefficients`` (C, K, F)
    (see :data:`DENSITY_TOLERANCE`)."""
    D, lam = params.means.shape[-1], params.precisions
    spectral = lam.abs().sum(-1).amax(-1) if params.full else lam.amax(-1)
    lam_mu = coefficients[..., 1 : 1 + D]  # the coefficients' linear part is Lambda mu
    terms = coefficients[..., 0].abs() + lam_mu.norm(dim=-1) * radius + 0.5 * spectral * radius**2
    n_u = (coefficients.shape[-1] + 2) * 2.0**-24
    return n_u / (1 - n_u) * float(terms.max())


def ieee_float32_products() -> bool:
    """Whether float32 matrix products run in IEEE float32, as the bound assumes (not in TF32
    or bfloat16, which ``torch.set_float32_matmul_precision`` or a backend's
    ``fp32_precision`` may allow)."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    settings = [getattr(torch.backends, "fp32_precision", None)]
    for backend in ("cuda", "mkldnn"):
        matmul = getattr(getattr(torch.backends, backend, None), "matmul", None)
        settings.append(getattr(matmul, "fp32_precision", None))
    return all(setting in (None, "none", "ieee") for setting in settings)


def assignment_log_probs(
    params: cj.Parameters,
    coefficients: torch.Tensor,
    feats_t: torch.Tensor,
    feats32_t: torch.Tensor | None,
    radius: float,
) -> torch.Tensor:
    """log pi_k + log N(z_n | mu_k, Sigma_k), (C, K, N), from the clusters' ``coefficients``
    (C, K, F) and the features transposed (F, N): in float32 (``feats32_t``; None: never) when
    :func:`density_error_bound` for points within ``radius`` (the largest |z_n|) is within
    :data:`DENSITY_TOLERANCE`, otherwise in float64 (``feats_t``)."""
    if feats32_t is not None:
        if density_error_bound(params, coefficients, radius) <= DENSITY_TOLERANCE:
            return coefficients.float() @ feats32_t
    return coefficients @ feats_t


def gibbs_sweeps(
    z: torch.Tensor,
    prior: cj.MixturePrior,
    params: cj.Parameters,
    n_sweeps: int,
    float32: bool = True,
) -> Iterator[Sweep]:
    """Blocked Gibbs sampling of (c, pi, mu, Lambda) from ``params`` (one per chain) given the
    points ``z`` (N, D), float64: each sweep draws every assignment given the parameters, then
    the parameters given the assignments from their conjugate posterior. An empty cluster's
    parameters are drawn from the prior. ``float32`` allows float32 densities where
    :func:`assignment_log_probs` finds them precise enough."""
    full, K = params.full, params.means.shape[-2]
    feats_t = cj.features(z, "full" if full else "diag").T  # float64, for imprecise float32
    feats32_t = feats_t.float().contiguous() if float32 and ieee_float32_products() else None
    radius = float(z.norm(dim=1).max())
    points = cj.gram_points(z.detach().cpu())  # what the statistics read, built once
    log_normaliser = prior.log_normaliser(K)
    previous, gram = None, None
    for sweep in range(n_sweeps):
        coefficients = cj.coefficients(params)
        log_probs = assignment_log_probs(params, coefficients, feats_t, feats32_t, radius)
        assignments = sample_assignments(log_probs)
        current = assignments.cpu()  # the statistics are summed on the CPU
        moved = None if previous is None else previous != current
        if moved is not None and sweep % FRESH_EVERY and _few(moved):
            gram = cj.moved_grams(gram, points, previous, current, moved)
        else:
            gram = cj.grams(points, current, K)
        previous = current.clone()  # the caller may keep or change its own
        stats = cj.split_grams(gram, full)
        # log p(Z, c | params) in float64 whatever the densities' precision: the densities are
        # linear in the features, so it is each cluster's coefficients against its points' sums
        log_lik = (coefficients * cj.feature_sums(*stats)).sum((-1, -2))
        log_joint = log_lik + cj.log_prior(prior, params, log_normaliser)
        yield Sweep(params, assignments, log_probs, log_joint)
        params = cj.draw(cj.posterior(prior, *stats))


# The statistics are updated from the last sweep's where at most this share of the assignments
# changed, and summed afresh otherwise: moving 5 % of 10,000 points (a settled chain on the
# benchmark's latents moves about 5 %) took a third to a half of the time of a fresh sum, moving
# 13-17 % as long. Every FRESH_EVERY sweeps they are summed afresh all the same, which bounds the
# rounding that moves accumulate (about 1e-13 of the largest entry after 3,000 sweeps).
MOVED_SHARE = 0.125
FRESH_EVERY = 256


def _few(moved: torch.Tensor) -> bool:
    return int(moved.sum()) <= MOVED_SHARE * moved.numel()


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
