"""Exact posteriors of the regimes given the parameters: Bayes' rule for i.i.d. regimes, the
forward-backward recursions and Viterbi's algorithm for Markov-switching ones.

The recursions are vectorized over series and regimes, with one Python step per time step:
Pyro's ``infer_discrete`` on the step-by-step model (``ARMixtureModule.markov_model``) gives the
same MAP path (the tests check it) but takes about 40 s for one series of 5,000 steps, against
well under a second here.

Conventions (as in ``DiscreteHMM``): the regime z_0 of a series' first step is drawn from the
initial distribution and has no observation; transition t (x_{t-1} -> x_t, t >= 1) has regime
z_t ~ A[z_{t-1}] and emission log-density ``log_emission[..., t - 1, k]``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch


def emission_log_probs(
    prev: torch.Tensor, nxt: torch.Tensor, Pi: torch.Tensor, scale_tril: torch.Tensor
) -> torch.Tensor:
    """log N(x_t | Pi_k x_{t-1}, Sigma) for every transition and regime k, (..., K), with
    Sigma = scale_tril scale_tril^T; ``prev`` and ``nxt`` are (..., d)."""
    residuals = nxt.unsqueeze(-2) - torch.einsum("kij,...j->...ki", Pi, prev)  # (..., K, d)
    eye = torch.eye(scale_tril.shape[-1], dtype=scale_tril.dtype, device=scale_tril.device)
    white = residuals @ torch.linalg.solve_triangular(scale_tril, eye, upper=False).T
    d = prev.shape[-1]
    log_det = scale_tril.diagonal().log().sum()
    return -0.5 * white.square().sum(-1) - log_det - 0.5 * d * math.log(2 * math.pi)


def series_log_emission(values, lengths, Pi, scale_tril) -> torch.Tensor:
    """(S, T-1, K) log-densities of every transition of padded series ``values`` (S, T, d)
    under every regime, 0 after each series' end (``lengths``, (S,))."""
    log_e = emission_log_probs(values[:, :-1], values[:, 1:], Pi, scale_tril)
    inside = torch.arange(1, values.shape[1]) < lengths.unsqueeze(1)
    return log_e * inside.unsqueeze(-1)


def log_posteriors(values, lengths, log_weights, Pi, scale_tril, log_A=None) -> torch.Tensor:
    """log p(z_t = k | data) for every transition of padded series (S, T-1, K): Bayes' rule
    for i.i.d. regimes, the smoothed posterior when ``log_A`` is given."""
    log_e = series_log_emission(values, lengths, Pi, scale_tril)
    if log_A is None:
        return iid_posterior(log_weights, log_e)
    return forward_backward(log_weights, log_A, log_e)[0]


def iid_posterior(log_weights: torch.Tensor, log_emission: torch.Tensor) -> torch.Tensor:
    """log p(z_t = k | x_{t-1}, x_t) for i.i.d. regimes: (..., K)."""
    joint = log_weights + log_emission
    return joint - joint.logsumexp(-1, keepdim=True)


def _log_matvec(log_alpha: torch.Tensor, log_A: torch.Tensor) -> torch.Tensor:
    """log sum_i exp(log_alpha[..., i] + log_A[..., i, j]), (..., K)."""
    return (log_alpha.unsqueeze(-1) + log_A).logsumexp(-2)


def _filtered(log_initial, log_A, log_emission) -> tuple[torch.Tensor, torch.Tensor]:
    """Filtered log p(z_t | x_1..t) (S, T, K) and the one-step log p(x_t | x_1..t-1) (S, T),
    the filter's normalisers (0 at padded steps). ``log_A`` is (K, K) or one per series
    (S, K, K), ``log_initial`` (K,) or (S, K)."""
    S, T, K = log_emission.shape
    log_alpha, alphas, norms = log_initial.expand(S, K), [], []
    for t in range(T):
        log_alpha = _log_matvec(log_alpha, log_A) + log_emission[:, t]
        norm = log_alpha.logsumexp(-1, keepdim=True)
        log_alpha = log_alpha - norm
        alphas.append(log_alpha)
        norms.append(norm)
    return torch.stack(alphas, 1), torch.cat(norms, -1)


def forward_backward(
    log_initial: torch.Tensor, log_A: torch.Tensor, log_emission: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smoothed log p(z_t = k | all of the series) for every transition, (S, T, K), and each
    series' log-likelihood (S,). ``log_emission`` is (S, T, K); padded steps after a series'
    end must have log-emission 0 (they then change nothing before them)."""
    log_alpha, norms = _filtered(log_initial, log_A, log_emission)
    return _smoothed(log_alpha, log_A, log_emission), norms.sum(-1)


def _smoothed(log_alpha, log_A, log_emission) -> torch.Tensor:
    """The backward pass: smoothed log posteriors from the filtered ones."""
    S, T, K = log_emission.shape
    log_beta = log_alpha.new_zeros(S, K)
    betas = [log_beta]
    for t in range(T - 1, 0, -1):  # log p(x_{t+1}..T | z_t), up to a constant per step
        log_beta = (log_A + (log_emission[:, t] + log_beta).unsqueeze(-2)).logsumexp(-1)
        log_beta = log_beta - log_beta.amax(-1, keepdim=True)  # no overflow on long series
        betas.append(log_beta)
    log_post = log_alpha + torch.stack(betas[::-1], 1)
    return log_post - log_post.logsumexp(-1, keepdim=True)


def sample_paths(
    log_initial: torch.Tensor, log_A: torch.Tensor, log_emission: torch.Tensor, n_draws: int
) -> torch.Tensor:
    """``n_draws`` regime paths z_1..T of each series from their joint posterior given the
    whole series (forward filtering, backward sampling), (n_draws, S, T): z_T from the filtered
    p(z_T | x_1..T), then z_t from p(z_t | x_1..t, z_{t+1}) proportional to
    p(z_t | x_1..t) A[z_t, z_{t+1}]. Padded steps (log-emission 0) are unobserved regimes:
    summing over them leaves the draws of the observed ones exact. ``log_A`` is (K, K) or one
    per series (S, K, K), ``log_initial`` (K,) or (S, K)."""
    log_alpha, _ = _filtered(log_initial, log_A, log_emission)  # (S, T, K)
    S, T, K = log_alpha.shape
    into = log_A.expand(S, K, K).transpose(-1, -2)  # into[s, j, i] = log A[i, j]
    series = torch.arange(S, device=log_alpha.device)
    z = dist.Categorical(logits=log_alpha[:, -1]).sample((n_draws,))  # (n, S)
    path = [z]
    for t in range(T - 2, -1, -1):
        z = dist.Categorical(logits=log_alpha[:, t] + into[series, z]).sample()  # (n, S)
        path.append(z)
    return torch.stack(path[::-1], -1)


def one_step_predictions(
    log_initial: torch.Tensor, log_A: torch.Tensor, log_emission: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one-step-ahead view of each series, with the smoothed posterior from the same
    forward pass: log p(z_t | x_1..t-1) (S, T, K), the regime's distribution before x_t is
    seen; log p(x_t | x_1..t-1) (S, T), whose sum over t is the series' log-likelihood (0 at
    padded steps); and log p(z_t | all of the series) (S, T, K), as :func:`forward_backward`."""
    S, T, K = log_emission.shape
    log_alpha, norms = _filtered(log_initial, log_A, log_emission)
    before = torch.cat([log_initial.expand(S, K).unsqueeze(1), log_alpha[:, :-1]], 1)
    predicted = _log_matvec(before, log_A.unsqueeze(-3) if log_A.ndim == 3 else log_A)
    return predicted, norms, _smoothed(log_alpha, log_A, log_emission)


def viterbi(
    log_initial: torch.Tensor,
    log_A: torch.Tensor,
    log_emission: torch.Tensor,
    inside: torch.Tensor | None = None,
) -> torch.Tensor:
    """The most probable regime path z_1..T of each series, (S, T), with the unobserved z_0
    summed out. ``inside``
    (S, T) marks the transitions within each series: after a series' end its path stays put
    (a maximum, unlike a sum, would otherwise be pulled by the padded steps' transitions)."""
    S, T, K = log_emission.shape
    # z_0 has no observation: summed out, so the path is that of the observed transitions' regimes
    score = _log_matvec(log_initial.expand(S, K), log_A) + log_emission[:, 0]
    stay = torch.arange(K).expand(S, K)
    back = []
    for t in range(1, T):
        candidates = score.unsqueeze(-1) + log_A  # (S, from, to)
        best, argbest = candidates.max(-2)
        best = best + log_emission[:, t]
        if inside is not None:
            keep = inside[:, t].unsqueeze(-1)
            best, argbest = torch.where(keep, best, score), torch.where(keep, argbest, stay)
        back.append(argbest)
        score = best
    path = [score.argmax(-1)]
    for argbest in reversed(back):
        path.append(argbest.gather(-1, path[-1].unsqueeze(-1)).squeeze(-1))
    return torch.stack(path[::-1], 1)
