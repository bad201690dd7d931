"""Comparing a fit with the parameters that generated the data: regimes matched by permutation,
parameter errors, and the accuracy of the Bayes classifier that knows the true parameters."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .regimes import log_posteriors
from .series import as_series
from .simulate import ARParameters


def match_regimes(fitted: ARParameters, true: ARParameters) -> np.ndarray:
    """``order`` such that fitted regime ``order[k]`` is true regime k: the Hungarian
    assignment on the squared distances between transition matrices."""
    cost = ((fitted.transition_matrices[:, None] - true.transition_matrices[None]) ** 2).sum(
        (-1, -2)
    )
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(cols), dtype=np.int64)
    order[cols] = rows
    return order


def parameter_errors(fitted: ARParameters, true: ARParameters) -> dict[str, float]:
    """Max absolute errors after matching the regimes: ``transition_matrices`` (Pi),
    ``covariance`` (Sigma), and ``weights`` (p) for i.i.d. regimes or ``switching_matrix`` (A)
    for Markov ones (there p is the distribution of the unobserved z_0, which each series
    informs only once)."""
    matched = fitted.permute(match_regimes(fitted, true))
    markov = matched.switching_matrix is not None and true.switching_matrix is not None
    out = {} if markov else {"weights": float(np.abs(matched.weights - true.weights).max())}
    out |= {
        "transition_matrices": float(
            np.abs(matched.transition_matrices - true.transition_matrices).max()
        ),
        "covariance": float(np.abs(matched.covariance - true.covariance).max()),
    }
    if markov:
        out["switching_matrix"] = float(
            np.abs(matched.switching_matrix - true.switching_matrix).max()
        )
    return out


def regime_posteriors(parameters: ARParameters, X) -> list[np.ndarray]:
    """p(z_t = k | data) of every transition under ``parameters`` (Bayes' rule, or
    forward-backward when they have a switching matrix): one (T_i - 1, K) array per series."""
    series = as_series(X)
    P = {k: torch.as_tensor(v).double() for k, v in vars(parameters).items() if v is not None}
    A = P.get("switching_matrix")
    log_post = log_posteriors(
        series.values, series.lengths, P["weights"].log(), P["transition_matrices"],
        torch.linalg.cholesky(P["covariance"]), None if A is None else A.log(),
    )  # fmt: skip
    return series.unpad(log_post.exp())


def regime_accuracy(predicted, regimes, order: np.ndarray | None = None) -> float:
    """Share of transitions whose regime is right; ``order`` (from :func:`match_regimes`)
    maps the fitted regimes onto the true ones first."""
    predicted = np.concatenate([np.ravel(p) for p in np.atleast_1d(predicted)])
    regimes = np.concatenate([np.ravel(r) for r in np.atleast_1d(regimes)])
    if order is not None:
        to_true = np.empty_like(order)
        to_true[order] = np.arange(len(order))
        predicted = to_true[predicted]
    return float((predicted == regimes).mean())


def oracle_accuracy(true: ARParameters, X, regimes) -> float:
    """The accuracy of the Bayes classifier that knows the true parameters (the most probable
    regime of each transition under them): the ceiling that the regimes' overlap sets."""
    predicted = [p.argmax(-1) for p in regime_posteriors(true, X)]
    return regime_accuracy(predicted, regimes)
