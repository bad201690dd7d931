"""Choosing the number of clusters K by held-out log-likelihood, several seeds per K.

Procedure (:func:`choose_k`): hold out part of the data (or take the held-out set given);
for every K and seed, fit a copy of the given estimator with that K and seed on the rest; score
each fit by its mean log-likelihood per held-out point: the importance-weighted estimate
(``log_likelihood``) for the amortized models, ``score_samples`` for the others (the Gibbs GMM's
posterior predictive density, the AR mixture's exact likelihood per transition). Models with
global parameters sampled by MCMC (``GibbsGMM``) are also scored by PSIS-LOO on the training
points (``az.loo`` on their draws). More clusters rarely score much worse, since a surplus
cluster can stay empty or split one in two, so the pick is the smallest K whose mean is within
one standard error of the best mean (the "one-standard-error rule"; the standard error over
the seeds).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from ..checks import check_positive_int
from ..estimators.base import LatentEstimator
from ..training import _interactive


@dataclass
class KSelection:
    """The result of :func:`choose_k`: ``scores[i, j]`` is the mean held-out log-likelihood
    per point (nats) of the fit with K = ``ks[i]`` and seed ``seeds[j]``; ``best_k`` the pick
    by the one-standard-error rule; for models with global parameters (``GibbsGMM``),
    ``loo[i, j]`` is the PSIS-LOO estimate of the expected log predictive density per training
    point (``az.loo`` on the fit's draws) and ``best_k_loo`` its pick by the same rule, else
    both are None; ``models`` the fitted copies, keyed by (K, seed), when kept."""

    ks: list[int]
    seeds: list[int]
    scores: np.ndarray
    best_k: int
    loo: np.ndarray | None = None
    best_k_loo: int | None = None
    models: dict = field(default_factory=dict, repr=False)

    @property
    def means(self) -> np.ndarray:
        return self.scores.mean(1)

    @property
    def standard_errors(self) -> np.ndarray:
        """The standard error of each K's mean over the seeds (0 with one seed)."""
        return standard_errors(self.scores)

    def table(self) -> list[dict]:
        """One row per K: its mean, standard error, the seeds' scores, and whether it is the
        pick."""
        return [
            {
                "k": k,
                "mean": float(m),
                "standard_error": float(se),
                "scores": row.tolist(),
                "chosen": k == self.best_k,
                **({} if self.loo is None else {"loo_mean": float(self.loo[i].mean())}),
            }
            for i, (k, m, se, row) in enumerate(
                zip(self.ks, self.means, self.standard_errors, self.scores, strict=True)
            )
        ]

    def plot(self, path: str | Path | None = None, title: str | None = None):
        """The criterion against K: every seed's score, the mean with its standard error, the
        threshold of the one-standard-error rule and the pick."""
        from ..plots import plot_k_selection

        return plot_k_selection(self, path=path, title=title)


def standard_errors(scores: np.ndarray) -> np.ndarray:
    """The standard error of each row's mean over its columns (the seeds; 0 with one)."""
    n = scores.shape[1]
    return scores.std(1, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(len(scores))


def one_standard_error_pick(ks: Sequence[int], scores: np.ndarray) -> int:
    """The smallest K whose mean score is within one standard error of the best mean."""
    means, se = scores.mean(1), standard_errors(scores)
    best = int(np.argmax(means))
    threshold = means[best] - se[best]
    return int(min(k for k, m in zip(ks, means, strict=True) if m >= threshold))


def _size_param(estimator) -> str:
    params = estimator.get_params()
    for name in ("n_clusters", "n_components"):
        if name in params:
            return name
    raise TypeError(f"{type(estimator).__name__} has no number of clusters to choose")


def _loo_per_point(model, X_train) -> float:
    """PSIS-LOO's expected log predictive density per point, from the fit's posterior draws."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # ArviZ's refactor notice
        import arviz as az
    return float(az.loo(model.to_inference_data(X_train)).elpd_loo) / len(X_train)


def _held_out_score(model, X_test, n_samples: int, seed: int) -> float:
    if isinstance(model, LatentEstimator):
        return float(np.mean(model.log_likelihood(X_test, n_samples=n_samples, seed=seed)))
    return float(np.mean(model.score_samples(X_test)))


def choose_k(
    estimator,
    X,
    ks: Iterable[int] = range(2, 11),
    seeds: Sequence[int] = (0, 1, 2),
    X_test=None,
    test_size: float = 0.2,
    split_seed: int = 0,
    n_samples: int = 100,
    keep_models: bool = False,
    progress_bar: bool = True,
) -> KSelection:
    """Fit copies of ``estimator`` for every K in ``ks`` and seed in ``seeds`` and pick K by
    held-out log-likelihood (see the module's docstring for the procedure).

    ``estimator`` is a template (``GMVAE``, ``VAEGMM``, ``DilokthanakulGMVAE``, ``VAE`` with a
    mixture prior, ``GibbsGMM``, ``ARMixture``): it is cloned with each K (``n_clusters`` or
    ``n_components``) and seed, and never fitted or changed itself. The held-out points are
    ``X_test`` when given (do this for time series: e.g. a later stretch, or another series),
    otherwise a random ``test_size`` share of the rows of ``X`` (seeded by ``split_seed``).
    ``n_samples`` importance samples per point for the amortized models. The fits are kept in
    ``models`` with ``keep_models=True``.
    """
    size_param = _size_param(estimator)
    ks = sorted({int(k) for k in ks})
    seeds = [int(s) for s in seeds]
    if not ks:
        raise ValueError("the range of K is empty: give at least one K")
    if not seeds:
        raise ValueError("give at least one seed")
    if ks[0] < 1:
        raise ValueError(f"K must be at least 1, got {ks[0]}")
    check_positive_int("n_samples", n_samples)
    if X_test is None:
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be in (0, 1), got {test_size}")
        X_train, X_test = train_test_split(
            np.asarray(X), test_size=test_size, random_state=split_seed
        )
    else:
        X_train = X
    if ks[-1] > len(X_train):
        raise ValueError(
            f"K up to {ks[-1]} but only {len(X_train)} training points: K cannot exceed N"
        )
    quiet = {"progress_bar": False} if "progress_bar" in estimator.get_params() else {}
    scores = np.empty((len(ks), len(seeds)))
    with_globals = hasattr(estimator, "to_inference_data")
    loo = np.empty_like(scores) if with_globals else None
    models = {}
    bar = tqdm(
        total=len(ks) * len(seeds),
        desc="choosing K",
        disable=not (progress_bar and _interactive()),
        leave=False,
    )
    for i, k in enumerate(ks):
        for j, seed in enumerate(seeds):
            model = clone(estimator).set_params(**{size_param: k, "seed": seed}, **quiet)
            model.fit(X_train)
            scores[i, j] = _held_out_score(model, X_test, n_samples, seed)
            if loo is not None:
                loo[i, j] = _loo_per_point(model, X_train)
            if keep_models:
                models[k, seed] = model
            bar.update()
            if progress_bar and not _interactive():
                print(f"choosing K: K={k}, seed {seed}: {scores[i, j]:.4f}", file=sys.stderr)
    bar.close()
    best_loo = None if loo is None else one_standard_error_pick(ks, loo)
    return KSelection(ks, seeds, scores, one_standard_error_pick(ks, scores), loo, best_loo, models)
