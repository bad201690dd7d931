"""Expectation-maximisation for a mixture of linear regressions: the maximum-likelihood fit of
the i.i.d.-regime autoregressive mixture, the baseline its variational fits are compared with.

Each iteration: responsibilities r_tk = p(z_t = k | x_{t-1}, x_t) under the current parameters,
then p_k = mean_t r_tk, Pi_k by least squares weighted by r_tk, and Sigma as the
responsibility-weighted covariance of the residuals. The log-likelihood never decreases.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import check_positive_int
from .regimes import emission_log_probs, iid_posterior
from .simulate import ARParameters


@dataclass
class EMResult:
    """The best restart: its ``parameters``, ``log_likelihood`` (total, in nats), iterations
    and whether it converged; ``restart_log_likelihoods`` of every restart."""

    parameters: ARParameters
    log_likelihood: float
    n_iter: int
    converged: bool
    restart_log_likelihoods: list[float]


def _m_step(prev, nxt, resp, covariance_type: str, ridge: float, floor: torch.Tensor):
    N, d = prev.shape
    counts = resp.sum(0)  # (K,)
    weights = counts / N
    weighted = resp.T.unsqueeze(-1) * prev  # (K, N, d): r_tk x_{t-1}
    xx = weighted.transpose(-1, -2) @ prev + ridge * torch.eye(d, dtype=prev.dtype)
    xy = weighted.transpose(-1, -2) @ nxt  # sum_t r_tk x_{t-1} x_t^T
    Pi = torch.linalg.solve(xx, xy).transpose(-1, -2)  # (xx^-1 xy)^T = yx xx^-1
    residuals = nxt.unsqueeze(1) - torch.einsum("kij,nj->nki", Pi, prev)  # (N, K, d)
    flat = residuals.reshape(-1, d)
    covariance = (resp.reshape(-1, 1) * flat).T @ flat / N + floor
    if covariance_type == "diag":
        covariance = torch.diag(covariance.diagonal())
    return weights, Pi, covariance


def fit_em(
    prev: torch.Tensor,
    nxt: torch.Tensor,
    n_components: int,
    covariance_type: str = "full",
    n_init: int = 10,
    max_iter: int = 1000,
    tol: float = 1e-8,
    seed: int = 0,
) -> EMResult:
    """EM from ``n_init`` random starts (responsibilities drawn from a Dirichlet(1) per
    transition); the start reaching the highest log-likelihood wins. ``prev`` and ``nxt`` are
    the transitions' x_{t-1} and x_t, (N, d). Stops when the log-likelihood per transition
    improves by less than ``tol`` (EM converges slowly where regimes overlap: 1e-8 ends within
    about 1e-6 nats per transition of the maximum in the benchmark's problems). Sigma gets a
    floor of 1e-6 times each dimension's variance, so that a regime fitted to a few points
    never makes it singular."""
    check_positive_int("n_init", n_init)
    check_positive_int("max_iter", max_iter)
    prev, nxt = prev.double(), nxt.double()
    generator = torch.Generator().manual_seed(seed)
    ridge = 1e-9 * float(prev.square().sum()) / max(1, prev.numel())
    # as scikit-learn's reg_covar: a floor on Sigma, relative to each dimension's variance
    floor = torch.diag(1e-6 * nxt.var(0) + 1e-12)
    best, finals = None, []
    for _ in range(n_init):
        exponential = -torch.rand(len(prev), n_components, generator=generator).double().log()
        resp = exponential / exponential.sum(1, keepdim=True)  # a Dirichlet(1) draw per row
        last, converged, n_iter = -torch.inf, False, 0
        while n_iter < max_iter:
            n_iter += 1
            weights, Pi, covariance = _m_step(prev, nxt, resp, covariance_type, ridge, floor)
            log_emission = emission_log_probs(prev, nxt, Pi, torch.linalg.cholesky(covariance))
            log_weights = weights.clamp_min(1e-300).log()
            log_lik = float((log_weights + log_emission).logsumexp(1).sum())
            resp = iid_posterior(log_weights, log_emission).exp()
            if log_lik - last < tol * len(prev):
                converged = True
                break
            last = log_lik
        finals.append(log_lik)
        if best is None or log_lik > best[1]:
            params = ARParameters(weights.numpy(), Pi.numpy(), covariance.numpy())
            best = (params, log_lik, n_iter, converged)
    return EMResult(*best, finals)
