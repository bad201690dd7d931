"""Simulated series from an autoregressive mixture with known parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import check_int, check_positive_int


@dataclass
class ARParameters:
    """Parameters of an autoregressive mixture: ``weights`` p (K,) (for the Markov variant, the
    distribution of the regime z_0 of a series' first step, which has no observation),
    ``transition_matrices`` Pi (K, d, d), ``covariance``
    Sigma (d, d) and, for the Markov variant, ``switching_matrix`` A (K, K) with
    A[i, j] = P(z_t = j | z_{t-1} = i)."""

    weights: np.ndarray
    transition_matrices: np.ndarray
    covariance: np.ndarray
    switching_matrix: np.ndarray | None = None

    def permute(self, order: np.ndarray) -> ARParameters:
        """Regime ``order[j]`` becomes regime j."""
        A = self.switching_matrix
        return ARParameters(
            self.weights[order],
            self.transition_matrices[order],
            self.covariance,
            None if A is None else A[np.ix_(order, order)],
        )


@dataclass
class ARSimulation:
    """``series`` (S, T, d), ``regimes`` (S, T - 1): z_t of the transition into step t (t >= 1),
    and the true ``parameters``."""

    series: np.ndarray
    regimes: np.ndarray
    parameters: ARParameters


def random_parameters(
    dim: int,
    n_components: int,
    rng: np.random.Generator,
    markov: bool = False,
    max_gain: float = 0.95,
    noise_scale: float = 0.5,
    stay_probability: float = 0.9,
    min_separation: float = 0.5,
) -> ARParameters:
    """Stable random parameters: each Pi_k = U diag(s) V^T with singular values s drawn in
    [0.2, ``max_gain``] (``max_gain`` < 1: every regime contracts, and so does any sequence of
    them), weights
    from a Dirichlet(5), Sigma = ``noise_scale``^2 times a random correlation-like matrix, and
    for the Markov variant a switching matrix with ``stay_probability`` on its diagonal."""
    if not 0.2 <= max_gain < 1:
        raise ValueError(f"max_gain must be in [0.2, 1) for stable regimes, got {max_gain}")
    if not 0 <= stay_probability <= 1 or noise_scale <= 0:
        raise ValueError("need 0 <= stay_probability <= 1 and noise_scale > 0")
    Pi = np.empty((n_components, dim, dim))
    for k in range(n_components):
        for _ in range(10_000):
            U, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
            V, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
            Pi[k] = U @ np.diag(rng.uniform(0.2, max_gain, dim)) @ V.T
            gaps = [np.linalg.norm(Pi[k] - Pi[j]) / np.sqrt(dim) for j in range(k)]
            if min(gaps, default=np.inf) >= min_separation:
                break
        else:
            raise ValueError(
                f"could not draw {n_components} regimes {min_separation} apart in dimension "
                f"{dim}: lower min_separation"
            )
    weights = rng.dirichlet(np.full(n_components, 5.0))
    W = rng.standard_normal((dim, dim))
    covariance = noise_scale**2 * (0.5 * np.eye(dim) + 0.5 * W @ W.T / dim)
    A = None
    if markov:
        if n_components == 1:
            A = np.ones((1, 1))
        else:
            off = rng.dirichlet(np.ones(n_components - 1), size=n_components)
            A = np.empty((n_components, n_components))
            for i in range(n_components):
                A[i, np.arange(n_components) != i] = (1 - stay_probability) * off[i]
                A[i, i] = stay_probability
    return ARParameters(weights, Pi, covariance, A)


def simulate_ar_mixture(
    n_steps: int,
    dim: int,
    n_components: int,
    seed: int = 0,
    markov: bool = False,
    n_series: int = 1,
    parameters: ARParameters | None = None,
    burn_in: int = 100,
    **parameter_options: float,
) -> ARSimulation:
    """Simulate ``n_series`` series of ``n_steps`` steps from
    z_t ~ Cat(p) (or, with ``markov``, z_t | z_{t-1} ~ Cat(A[z_{t-1}])) and
    x_t | x_{t-1}, z_t ~ N(Pi_{z_t} x_{t-1}, Sigma).

    The parameters are ``parameters`` or drawn by :func:`random_parameters` (its options, e.g.
    ``max_gain``, ``noise_scale``, ``stay_probability``, are passed on). Each series starts at 0
    and runs ``burn_in`` steps before the ones returned, so it starts near its stationary
    distribution (for the Markov variant, p is then the distribution of the regime at the start
    of the burn-in, and the first returned regimes are close to the chain's stationary
    distribution). Same seed, same series and parameters."""
    check_int("n_steps", n_steps, 2)
    check_positive_int("dim", dim)
    check_positive_int("n_components", n_components)
    check_positive_int("n_series", n_series)
    check_int("burn_in", burn_in, 0)
    check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    if parameters is None:
        parameters = random_parameters(dim, n_components, rng, markov, **parameter_options)
    elif parameter_options:
        raise ValueError(f"{sorted(parameter_options)} apply only without parameters")
    _check_parameters(parameters, dim, n_components, markov)
    p, Pi = parameters.weights, parameters.transition_matrices
    chol = np.linalg.cholesky(parameters.covariance)
    total = n_steps + burn_in
    noise = rng.standard_normal((n_series, total, dim)) @ chol.T
    regimes = np.empty((n_series, total), dtype=np.int64)
    if markov:
        A = parameters.switching_matrix
        regimes[:, 0] = rng.choice(n_components, size=n_series, p=p)
        for t in range(1, total):  # inverse CDF of each series' row of A
            u = rng.random(n_series)
            regimes[:, t] = (np.cumsum(A[regimes[:, t - 1]], 1) < u[:, None]).sum(1)
        regimes = np.minimum(regimes, n_components - 1)
    else:
        regimes[:] = rng.choice(n_components, size=(n_series, total), p=p)
    x = np.zeros((n_series, total, dim))
    for t in range(1, total):
        x[:, t] = np.einsum("sij,sj->si", Pi[regimes[:, t]], x[:, t - 1]) + noise[:, t]
    return ARSimulation(x[:, burn_in:], regimes[:, burn_in + 1 :], parameters)


def _check_parameters(P: ARParameters, dim: int, K: int, markov: bool) -> None:
    shapes = {
        "weights": (np.shape(P.weights), (K,)),
        "transition_matrices": (np.shape(P.transition_matrices), (K, dim, dim)),
        "covariance": (np.shape(P.covariance), (dim, dim)),
    }
    if markov:
        if P.switching_matrix is None:
            raise ValueError("markov=True needs parameters with a switching_matrix")
        shapes["switching_matrix"] = (np.shape(P.switching_matrix), (K, K))
    for name, (shape, expected) in shapes.items():
        if shape != expected:
            raise ValueError(f"parameters.{name} has shape {shape}, expected {expected}")
    if np.linalg.eigvalsh(P.covariance).min() <= 0:
        raise ValueError("parameters.covariance must be positive definite")
