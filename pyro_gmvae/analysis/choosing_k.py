"""Choosing the number of clusters K by held-out log-likelihood, several seeds per K.

Procedure (:func:`choose_k`): hold out part of the data (or take the held-out set given; time
series must give one, e.g. a later stretch); for every K and seed, fit a copy of the given
estimator with that K and seed on the rest; score each fit by the log-likelihood of every
held-out point: the importance-weighted estimate (``log_likelihood``) for the amortized models,
the posterior predictive density (``score_samples``) for the Gibbs GMM, the exact density of
each transition given the fitted globals for the AR mixture (for Markov regimes the one-step
log p(x_t | x_1..t-1)). Models with sampled globals (``GibbsGMM`` and
``ARMixture(global_guide="normal")``) are also scored by PSIS-LOO on the training points
(``az.loo`` on their draws; for the AR mixture, per transition, under its variational
posterior, with the caveat for Markov regimes given in
:mod:`~pyro_gmvae.analysis.inference_data`).

More clusters rarely score much worse, since a surplus cluster can stay empty or split one in
two, so the pick is the smallest K whose mean score is within one standard error of the best
K's: the standard error of the difference of the two means, which combines the held-out
sampling error (the points' differences, paired, as ``az.compare`` does) and the spread over
the seeds of both (the "one-standard-error rule"). The steps of a series are not independent,
so for the AR mixture the paired term comes from the means of consecutive blocks of about
sqrt(n) transitions (batch means), for PSIS-LOO as for the held-out score. A fit whose score
is not finite (a diverged fit) is left out of its K's statistics, with a warning.
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
from ..disk import in_memory
from ..gmm import GibbsGMM
from ..timeseries import ARMixture
from ..timeseries.series import as_series
from ..training import _interactive
from .inference_data import to_inference_data
from .likelihood import log_likelihood


@dataclass
class KSelection:
    """The result of :func:`choose_k`: ``pointwise[i, j]`` holds the held-out log-likelihood
    of every held-out point (nats) under the fit with K = ``ks[i]`` and seed ``seeds[j]``
    (NaN for a fit left out), ``scores[i, j]`` its mean; ``best_k`` the pick by the
    one-standard-error rule. For models with sampled globals (see the module),
    ``loo_pointwise[i, j]`` holds PSIS-LOO's expected log predictive density of every training
    point (transition, for the AR mixture), ``loo`` their mean per fit, and ``best_k_loo`` the
    pick by the same rule, else all three are None; ``models`` the fitted copies, keyed by
    (K, seed), when kept. ``series``: the points are steps of series (the AR mixture), so the
    paired standard errors come from batch means over blocks of ``block_size`` points."""

    ks: list[int]
    seeds: list[int]
    pointwise: np.ndarray
    loo_pointwise: np.ndarray | None = None
    models: dict = field(default_factory=dict, repr=False)
    series: bool = False

    @property
    def block_size(self) -> int:
        return _series_block(self.pointwise.shape[-1]) if self.series else 1

    @property
    def best_k(self) -> int:
        return one_standard_error_pick(self.ks, self.pointwise, self.block_size)

    @property
    def best_k_loo(self) -> int | None:
        if self.loo_pointwise is None:
            return None
        block = _series_block(self.loo_pointwise.shape[-1]) if self.series else 1
        return one_standard_error_pick(self.ks, self.loo_pointwise, block)

    @property
    def loo(self) -> np.ndarray | None:
        return None if self.loo_pointwise is None else self.loo_pointwise.mean(-1)

    def _checked(self) -> KSelection:
        """Itself, once a pick exists (a ValueError when every fit diverged)."""
        self.best_k  # noqa: B018
        return self

    @property
    def scores(self) -> np.ndarray:
        return self.pointwise.mean(-1)

    @property
    def means(self) -> np.ndarray:
        """Each K's mean score over its seeds (-inf when every fit was left out)."""
        return _nan_means(self.scores)

    @property
    def standard_errors(self) -> np.ndarray:
        """The standard error of each K's difference from the best K (the rule's yardstick)."""
        return difference_standard_errors(self.pointwise, self.block_size)

    def table(self) -> list[dict]:
        """One row per K: its mean, the standard error of its difference from the best, the
        seeds' scores, and whether it is the pick."""
        return [
            {
                "k": k,
                "mean": float(m),
                "standard_error": float(se),
                "scores": row.tolist(),
                "chosen": k == self.best_k,
                **({} if self.loo is None else {"loo_mean": float(np.nanmean(self.loo[i]))}),
            }
            for i, (k, m, se, row) in enumerate(
                zip(self.ks, self.means, self.standard_errors, self.scores, strict=True)
            )
        ]

    def plot(self, path: str | Path | None = None, title: str | None = None):
        """The criterion against K: every seed's score, the mean with the standard error of
        its difference from the best, and the pick."""
        from ..plots import plot_k_selection

        return plot_k_selection(self, path=path, title=title)


def combine_selections(selections: Sequence[KSelection]) -> KSelection:
    """One selection from several runs of :func:`choose_k` over disjoint seeds (e.g. run in
    parallel processes or on several machines) with the same K range and the same held-out
    points (the same ``X_test``, or the same data and ``split_seed``): their fits side by side,
    with the picks made again on all of them."""
    selections = list(selections)
    if not selections:
        raise ValueError("give at least one selection to combine")
    first = selections[0]
    seeds = [s for sel in selections for s in sel.seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the selections share seeds: {seeds}")
    for sel in selections[1:]:
        if sel.ks != first.ks:
            raise ValueError(f"the selections cover different K: {first.ks} and {sel.ks}")
        if sel.pointwise.shape[-1] != first.pointwise.shape[-1]:
            raise ValueError("the selections scored different held-out points")
        if (sel.loo is None) != (first.loo is None):
            raise ValueError("only some of the selections have PSIS-LOO scores")
        if sel.series != first.series:
            raise ValueError("only some of the selections scored steps of series")
    pointwise = np.concatenate([sel.pointwise for sel in selections], axis=1)
    loo = None
    if first.loo_pointwise is not None:
        loo = np.concatenate([sel.loo_pointwise for sel in selections], axis=1)
    models = {key: m for sel in selections for key, m in sel.models.items()}
    return KSelection(first.ks, seeds, pointwise, loo, models, first.series)._checked()


def _nan_means(per_fit: np.ndarray) -> np.ndarray:
    """Mean over the seeds of each row, leaving NaN out; -inf where all are NaN."""
    counts = np.isfinite(per_fit).sum(1)
    sums = np.where(np.isfinite(per_fit), per_fit, 0.0).sum(1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)


def _seed_variances(per_fit: np.ndarray) -> np.ndarray:
    """The variance of each row's mean over its finite seeds (0 with fewer than two)."""
    out = np.zeros(len(per_fit))
    for i, row in enumerate(per_fit):
        row = row[np.isfinite(row)]
        if len(row) > 1:
            out[i] = row.var(ddof=1) / len(row)
    return out


def difference_standard_errors(pointwise: np.ndarray, block_size: int = 1) -> np.ndarray:
    """For (K, seeds, points) held-out log-likelihoods: the standard error of each K's mean
    score minus the best K's, sqrt(paired^2 + seeds_K^2 + seeds_best^2), where "paired" is the
    standard error of the mean of the points' differences (their seed averages) and "seeds"
    the standard error of a K's mean over its seeds; 0 for the best K against itself. With
    ``block_size`` > 1 the paired term comes from the means of consecutive blocks of that many
    points (batch means), for points that are not independent, such as the steps of a series."""
    per_fit = pointwise.mean(-1)
    means = _nan_means(per_fit)
    best = int(np.argmax(means))
    per_point = np.nanmean(np.where(np.isfinite(per_fit)[..., None], pointwise, np.nan), 1)
    diff = per_point[best] - per_point  # (K, points)
    n_blocks = pointwise.shape[-1] // block_size
    if block_size > 1 and n_blocks > 1:  # the remainder joins the last block
        diff = np.stack([b.mean(-1) for b in np.array_split(diff, n_blocks, axis=-1)], -1)
    n = diff.shape[-1]
    paired = np.zeros(len(means))
    if n > 1:
        finite = np.isfinite(diff).all(1)
        paired[finite] = diff[finite].std(1, ddof=1) / math.sqrt(n)
    seeds = _seed_variances(per_fit)
    se = np.sqrt(paired**2 + seeds + seeds[best])
    se[best] = 0.0
    return se


def one_standard_error_pick(ks: Sequence[int], pointwise: np.ndarray, block_size: int = 1) -> int:
    """The smallest K whose mean is within one standard error (of the difference) of the best
    mean; ``pointwise`` is (K, seeds, points) (for a plain per-fit criterion, (K, seeds, 1));
    ``block_size`` as in :func:`difference_standard_errors`."""
    means = _nan_means(pointwise.mean(-1))
    if not np.isfinite(means).any():
        raise ValueError("no fit gave a finite score: every K diverged")
    se = difference_standard_errors(pointwise, block_size)
    best = means.max()
    return int(min(k for k, m, e in zip(ks, means, se, strict=True) if best - m <= e))


def _series_block(n: int) -> int:
    """Batch-means block for n steps of series: about sqrt(n), so that blocks and their count
    both grow with n."""
    return math.ceil(math.sqrt(n))


def _size_param(estimator) -> str:
    params = estimator.get_params()
    for name in ("n_clusters", "n_components"):
        if name in params:
            return name
    raise TypeError(f"{type(estimator).__name__} has no number of clusters to choose")


def _has_sampled_globals(estimator) -> bool:
    if isinstance(estimator, ARMixture):
        return estimator.global_guide == "normal"
    return isinstance(estimator, GibbsGMM)


def _loo_pointwise(model, X_train, seed: int) -> np.ndarray:
    """PSIS-LOO's expected log predictive density of every training point (transition, for
    the AR mixture), from the fit's posterior draws."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # ArviZ's refactor notice
        import arviz as az
    if isinstance(model, ARMixture):
        idata = to_inference_data(model, X_train, seed=seed)
    else:
        idata = model.to_inference_data(X_train, predictive=False)  # LOO needs no replicates
    return np.asarray(az.loo(idata, pointwise=True).loo_i, dtype=np.float64)


def _check_data(estimator, X, X_test, test_size, split_seed):
    """The training and held-out data, and the training set's size (transitions for series)."""
    in_memory(X, "choose_k")
    if isinstance(estimator, ARMixture):
        if X_test is None:
            raise ValueError(
                "time series need a held-out stretch: pass X_test (e.g. the last 20% of each "
                "series, or other series); a random split of the steps would break them up"
            )
        train = as_series(X)
        as_series(X_test, train.dim)  # the same dimension, at least two steps
        return X, X_test, train.n_transitions
    if X_test is None:
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be in (0, 1), got {test_size}")
        X_train, X_test = train_test_split(
            np.asarray(X), test_size=test_size, random_state=split_seed
        )
    else:
        X_train = X
        train_shape, test_shape = np.shape(X_train)[1:], np.shape(X_test)[1:]
        if train_shape != test_shape:
            raise ValueError(
                f"X_test's rows have shape {test_shape}, the training rows {train_shape}"
            )
    return X_train, X_test, len(X_train)


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
    for name, values in (("ks", ks), ("seeds", seeds)):
        if not isinstance(values, Iterable) or isinstance(values, str):
            raise TypeError(f"{name} must be a sequence of integers, got {values!r}")
    ks, seeds = list(ks), list(seeds)
    for name, values in (("K", ks), ("seed", seeds)):
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer)]
        if bad:
            raise TypeError(f"every {name} must be an integer, got {bad[0]!r}")
    if not ks:
        raise ValueError("the range of K is empty: give at least one K")
    if not seeds:
        raise ValueError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds repeat: {seeds}")
    ks = sorted({int(k) for k in ks})
    if ks[0] < 1:
        raise ValueError(f"K must be at least 1, got {ks[0]}")
    check_positive_int("n_samples", n_samples)
    X_train, X_test, n_train = _check_data(estimator, X, X_test, test_size, split_seed)
    if ks[-1] > n_train:
        what = "transitions" if isinstance(estimator, ARMixture) else "training points"
        raise ValueError(f"K up to {ks[-1]} but only {n_train} {what}: K cannot exceed N")
    quiet = {"progress_bar": False} if "progress_bar" in estimator.get_params() else {}
    pointwise, loo, models = None, None, {}
    with_globals = _has_sampled_globals(estimator)
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
            values = log_likelihood(model, X_test, n_samples=n_samples, seed=seed)
            if pointwise is None:
                pointwise = np.full((len(ks), len(seeds), len(values)), np.nan)
                loo = [[None] * len(seeds) for _ in ks] if with_globals else None
            if np.isfinite(values).all():
                pointwise[i, j] = values
            else:
                warnings.warn(
                    f"K={k}, seed {seed}: the held-out score is not finite (a diverged fit); "
                    "this fit is left out",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if loo is not None:
                loo[i][j] = _loo_pointwise(model, X_train, seed)
            if keep_models:
                models[k, seed] = model
            bar.update()
            if progress_bar and not _interactive():
                print(f"choosing K: K={k}, seed {seed}: {values.mean():.4f}", file=sys.stderr)
    bar.close()
    if loo is not None:
        loo = np.array(loo, dtype=np.float64)  # (K, seeds, training points)
    series = isinstance(estimator, ARMixture)  # its points are steps of series
    return KSelection(ks, seeds, pointwise, loo, models, series)._checked()
