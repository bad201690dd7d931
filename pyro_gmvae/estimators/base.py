"""What every estimator shares: parameters in scikit-learn's style, input checks, fitting through
the training engine, scoring, and the random-state rules.

An estimator's configuration is its constructor parameters (``get_params``); ``configuration()``
is the same as plain data, with components passed as objects described by their type.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin

from ..checks import NotFittedError, check_int, check_positive_int
from ..components import make_likelihood
from ..components.likelihoods import BernoulliLikelihood
from ..components.priors import PRIORS, make_prior
from ..data import as_data_tensor
from ..disk import DiskData, rows_within, support_rows
from ..models import importance_log_likelihood
from ..pretrain import check_embedding
from ..training import (
    DiscreteScheduleCallback,
    EpochMetricsCallback,
    TrainingPlan,
    check_strategy,
    is_global_zero,
    local_seed,
    make_loader,
    monitor_indices,
    monitor_terms,
    svi_loss,
    train,
)

# Parameters that change how a fit runs, not the model it fits: a checkpoint may be resumed
# with other values of these (more epochs, another device).
FIT_SETTINGS = (
    "epochs", "progress_bar", "accelerator", "devices", "strategy", "num_nodes", "monitor_size"
)  # fmt: skip

COMMON_DOC = """
    latent_dim : size of z.
    hidden_dims : hidden layer sizes of every encoder and (reversed) of the decoder.
    likelihood : ``"bernoulli"``, ``"continuous-bernoulli"``, ``"gaussian"`` or a
        ``Likelihood`` instance (copied: the fitted one is in ``module_``).
    epochs, batch_size, lr : optimisation (Adam).
    binarize : draw x ~ Bernoulli(pixels) afresh for every batch (dynamic binarization).
    seed : seeds every random draw of ``fit``; same seed, same numbers. The caller's random
        state is restored afterwards.
    accelerator, devices, strategy : passed to ``lightning.Trainer``: the accelerator
        (``"auto"``, ``"cpu"``, ``"gpu"``), the devices and the strategy: one device (``1`` or
        ``[index]``) with ``"auto"``, or several with ``"ddp"`` (data-parallel: one process per
        device, each ``batch_size`` points of every global batch; from a script, not Jupyter).
    num_nodes : machines of a data-parallel run (Lightning's ``num_nodes``; ``"ddp"``), each
        with ``devices`` devices; the script runs on every machine with ``NODE_RANK``,
        ``MASTER_ADDR`` and ``MASTER_PORT`` set (see the README).
    progress_bar : report progress: a bar per training phase on a terminal or in Jupyter, one
        line per epoch elsewhere.
    monitor_size : the per-epoch log is computed on a fixed random subset of this many
        training points (all when None): ACC/NMI/ARI when labels are given on all of them, the
        ELBO terms on 500 of them (random too; they cost K decoder passes per point). It draws
        from a generator of its own, so it never changes the fitted model. 0: no per-epoch
        monitor (the log keeps the training loss; on MNIST-test the monitor costs about a tenth
        of a relaxed-y epoch).

    Fitted attributes end in ``_``: ``module_`` (the Pyro model/guide with the fitted prior,
    guide and networks; components passed in stay as they were), ``history_`` (one dict of
    logged metrics per epoch), ``start_metrics_`` (the monitor's figures before the first
    epoch, after pre-training where it ran; None without a monitor or for a resumed fit),
    ``n_features_in_``, ``image_shape_``, ``pretrain_seconds_``.
"""


class ClusterCollapseWarning(UserWarning):
    """A fit left a cluster almost empty or put almost all the data in one cluster."""


def cluster_weights(labels: np.ndarray, n_clusters: int, stacklevel: int = 4) -> np.ndarray:
    """The share of the data in each cluster, with a ``ClusterCollapseWarning`` when a cluster
    is almost empty or holds almost everything (``stacklevel``: the user's call)."""
    w = np.bincount(labels, minlength=n_clusters) / len(labels)
    if w.max() > 0.9 or w.min() < 0.1 / n_clusters:
        warnings.warn(
            f"cluster collapse: cluster sizes range from {w.min():.1%} to {w.max():.1%} of "
            "the data; try another seed, more epochs or fewer clusters",
            ClusterCollapseWarning,
            stacklevel=stacklevel,
        )
    return w


def describe(value: Any) -> Any:
    """A parameter as plain data: numbers (NumPy's as Python's), strings and sequences of them as
    they are (a sequence as a list), any other object (a prior, guide factory or likelihood passed
    in) as ``{"object": its type}``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        items = [describe(v) for v in value]
        if not any(is_object(v) or isinstance(v, list) for v in items):
            return items
    kind = value if isinstance(value, type) else getattr(value, "func", type(value))
    return {"object": f"{kind.__module__}.{kind.__qualname__}"}


def is_object(described: Any) -> bool:
    return isinstance(described, dict) and set(described) == {"object"}


class LatentEstimator(TransformerMixin, BaseEstimator):
    """Shared machinery of the estimators. Subclasses define ``_build(x_dim)`` (the Pyro module)
    and their ``__init__`` (every parameter stored as given, so that scikit-learn's ``clone``,
    ``get_params`` and ``set_params`` work); models that pre-train set ``_pretrain`` and
    ``_prior_has_y``, and may extend ``_check_params``, ``_data`` and ``_after_fit``; settings
    left to the data come from ``_choose_from_data`` and reach ``_build(x_dim, **chosen)``."""

    _pretrain: Callable | None = None  # a pyro_gmvae.pretrain function, in models that pre-train
    _prior_has_y = False  # whether the model's named priors are conditioned on a y

    def __init__(
        self,
        *,
        latent_dim: int,
        hidden_dims: Sequence[int],
        likelihood: Any,
        epochs: int,
        batch_size: int,
        lr: float,
        binarize: bool,
        seed: int,
        accelerator: str,
        devices: Any,
        strategy: Any,
        num_nodes: int,
        progress_bar: bool,
        monitor_size: int | None,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.likelihood = likelihood
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.binarize = binarize
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.num_nodes = num_nodes
        self.progress_bar = progress_bar
        self.monitor_size = monitor_size
        self._check_params()

    # --------------------------------------------------------------------------- parameters
    def _check_params(self) -> None:
        """Raise a clear error for a bad parameter (at construction and again at ``fit``, after
        any ``set_params``)."""
        for name in ("latent_dim", "epochs", "batch_size"):
            check_positive_int(name, getattr(self, name))
        if not isinstance(self.seed, int | np.integer) or isinstance(self.seed, bool):
            raise TypeError(f"seed must be an integer, got {self.seed!r}")
        hidden = self.hidden_dims
        if (
            not isinstance(hidden, Sequence)
            or not hidden
            or any(not isinstance(h, int | np.integer) or h < 1 for h in hidden)
        ):
            raise ValueError(f"hidden_dims must be a sequence of positive sizes, got {hidden!r}")
        if not isinstance(self.lr, int | float | np.number) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.monitor_size is not None:
            check_int("monitor_size", self.monitor_size, 0)
        check_strategy(self.devices, self.strategy, self.num_nodes)
        make_likelihood(self.likelihood)  # fails now on a bad likelihood, not after loading data

    def _check_prior(self) -> None:
        """A named prior must exist and suit the model (with or without y)."""
        if not isinstance(self.prior, str):
            return
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}; choose one of {', '.join(PRIORS)}")
        if PRIORS[self.prior][0] != self._prior_has_y:
            other = "GMVAE" if PRIORS[self.prior][0] else "VAE"
            raise ValueError(
                f"the {self.prior!r} prior {'has' if PRIORS[self.prior][0] else 'has no'} y: "
                f"use {other}"
            )

    def _placeable(self) -> bool:
        """Whether pre-training can place the prior's components."""
        raise NotImplementedError

    def _check_init(self) -> None:
        if self.init not in ("auto", "pretrain", "random"):
            raise ValueError(f"init must be 'auto', 'pretrain' or 'random', got {self.init!r}")
        check_positive_int("pretrain_epochs", self.pretrain_epochs)
        check_embedding(self.pretrain_embedding)
        if self.init == "pretrain" and not self._placeable():
            name = repr(self.prior) if isinstance(self.prior, str) else type(self.prior).__name__
            raise ValueError(
                f"init='pretrain' places a mixture prior's components (set_components) at "
                f"clusters of pre-trained codes; the {name} prior has none: pass init='random'"
            )

    def resolved_init(self) -> str:
        """``init`` with ``"auto"`` resolved: pre-training for a named prior that can be placed
        (a learned mixture); a prior passed as a module starts as given, since pre-training
        would overwrite its components (``init="pretrain"`` asks for that)."""
        if self.init != "auto":
            return self.init
        return "pretrain" if isinstance(self.prior, str) and self._placeable() else "random"

    def configuration(self, fit_settings: bool = True) -> dict[str, Any]:
        """The parameters as plain data (``describe``), with the model's name; without
        ``fit_settings``, only those that define the fitted model (what a checkpoint carries)."""
        out: dict[str, Any] = {"model": type(self).__name__}
        for name, value in self.get_params(deep=False).items():
            if fit_settings or name not in FIT_SETTINGS:
                out[name] = describe(value)
        return out

    # --------------------------------------------------------------------------- building
    def _build(self, x_dim: int) -> torch.nn.Module:
        raise NotImplementedError

    def _make_prior(self, x_dim: int, n_components: int) -> torch.nn.Module:
        """A named prior built now (from the fit's seed), or a copy of the user's module, so
        that fitting never trains the object the user passed (the fitted one is
        ``module_.prior``)."""
        if isinstance(self.prior, str):
            return make_prior(self.prior, n_components, self.latent_dim, x_dim)
        return copy.deepcopy(self.prior)

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit or load")

    def _data(self, X, fitting: bool = False) -> torch.Tensor | DiskData:
        X, image_shape = as_data_tensor(X, None if fitting else self.n_features_in_)
        support = support_rows(X)  # the data, or each feature's range of data on disk
        if fitting:
            self.n_features_in_, self.image_shape_ = X.shape[1], image_shape
            if self.binarize and not bool(((support >= 0) & (support <= 1)).all()):
                raise ValueError(
                    "binarize=True draws x ~ Bernoulli(value) and needs values in [0, 1]; "
                    f"this data spans [{float(support.min()):.3g}, {float(support.max()):.3g}] "
                    "(pass binarize=False)"
                )
        make_likelihood(self.likelihood).validate(support)
        return X

    # --------------------------------------------------------------------------- fitting
    def fit(
        self, X, y=None, *, run_dir: str | Path | None = None, ckpt_path: str | Path | None = None
    ):
        """Fit the model to ``X`` (labels ``y``, if given, are only used to log ACC/NMI/ARI).

        ``X``: an array or tensor shaped (N, D), (N, H, W) or (N, 1, H, W), or data on disk that
        stay there (a ``np.memmap`` such as ``np.load(path, mmap_mode="r")``, a torch
        ``Dataset`` such as a torchvision dataset, or a :class:`~pyro_gmvae.disk.DiskData`):
        read a batch at a time, as every other method reads them.

        With ``run_dir`` the metrics of every epoch go to ``run_dir/metrics.csv`` and a
        checkpoint to ``run_dir/checkpoints/last.ckpt``; ``ckpt_path`` resumes from such a
        checkpoint (it must come from the same configuration; only ``epochs`` and the other
        fit settings may differ).
        """
        self._check_params()
        X = self._data(X, fitting=True)
        chosen = self._choose_from_data(X)  # set with module_, once the fit has succeeded
        labels = self._labels(X, y)
        self._check_run_dir(run_dir, ckpt_path)
        devices = self._devices()
        with local_seed(self.seed):
            module = self._build(X.shape[1], **chosen)
            start = time.perf_counter()
            if ckpt_path is None and self.resolved_init() == "pretrain":
                self._run_pretrain(module, X)
            self.pretrain_seconds_ = time.perf_counter() - start
            plan = TrainingPlan(
                module,
                self._loss(module),
                lr=self.lr,
                binarize=self.binarize,
                config={**self.configuration(fit_settings=False), **self._resolved(chosen)},
            )
            callbacks = [DiscreteScheduleCallback()]
            monitor = None
            if self.monitor_size != 0:
                X_monitor, labels_monitor = self._monitor_data(X, labels)
                monitor = EpochMetricsCallback(
                    X_monitor, labels_monitor, monitor_terms, seed=self.seed
                )
                callbacks.append(monitor)
            history = train(
                plan,
                make_loader(X, self.batch_size, self.seed),
                self.epochs,
                callbacks=callbacks,
                run_dir=run_dir,
                ckpt_path=ckpt_path,
                **devices,
            )
        self.module_ = module.cpu().eval()
        for name, value in chosen.items():
            setattr(self, name, value)
        self.history_ = history
        self.start_metrics_ = None if monitor is None else monitor.start
        self._after_fit(X)
        return self

    # the fitted attributes that _choose_from_data returns (saved; loading builds with them)
    _chosen_from_data: tuple[str, ...] = ()

    def _choose_from_data(self, X: torch.Tensor) -> dict[str, Any]:
        """Settings that a parameter leaves to the data (e.g. ``"auto"``), by the name of the
        fitted attribute that records them: ``fit`` builds the module with them
        (``_build(x_dim, **chosen)``), records those that differ from their parameter in the
        checkpoint's configuration, and sets them with ``module_`` once the fit has
        succeeded."""
        return {}

    def _resolved(self, chosen: dict[str, Any]) -> dict[str, Any]:
        """The chosen settings that differ from their parameter (``discrete_`` where
        ``discrete="auto"``): what a checkpoint must record beyond the configuration, so that a
        resume on data that would choose otherwise is refused, while checkpoints written before
        such choices existed still resume."""
        params = self.get_params()
        return {k: v for k, v in chosen.items() if v != params.get(k.rstrip("_"))}

    def _loss(self, module: torch.nn.Module) -> Callable[..., torch.Tensor]:
        """The training loss per data point: the negative ELBO of the module's pair."""
        return svi_loss(module, module.elbo())

    def _run_pretrain(self, module: torch.nn.Module, X: torch.Tensor) -> np.ndarray:
        """Pre-train ``module`` on ``X`` in place with ``_pretrain`` (Adam at 1e-3 for
        ``pretrain_epochs``); returns the clusters' responsibilities (N, K)."""
        return self._pretrain(
            module,
            X,
            seed=self.seed,
            batch_size=self.batch_size,
            lr=1e-3,
            binarize=self.binarize,
            autoencoder_epochs=self.pretrain_epochs,
            embedding=self.pretrain_embedding,
            **self._devices(),
        )

    def _devices(self) -> dict[str, Any]:
        """The settings passed on to every training phase."""
        return {
            "accelerator": self.accelerator,
            "devices": self.devices,
            "strategy": self.strategy,
            "num_nodes": self.num_nodes,
            "progress_bar": self.progress_bar,
        }

    def _labels(self, X: torch.Tensor, y) -> np.ndarray | None:
        if y is None:
            return None
        labels = np.asarray(y).ravel()
        if len(labels) != len(X):
            raise ValueError(f"{len(labels)} labels for {len(X)} samples")
        return labels

    def _check_run_dir(self, run_dir, ckpt_path) -> None:
        """A resume needs its checkpoint; a new run needs a folder that holds no run."""
        if ckpt_path is not None and not Path(ckpt_path).exists():
            raise FileNotFoundError(f"no checkpoint at {ckpt_path}")
        # by the writer alone: another machine's process trains in the folder the first
        # writes (a replaced run's staging folder there), whatever it holds now
        if run_dir is not None and ckpt_path is None and is_global_zero():
            found = [n for n in ("metrics.csv", "checkpoints") if (Path(run_dir) / n).exists()]
            if found:
                raise FileExistsError(
                    f"{run_dir} already holds a run ({', '.join(found)}); resume it with "
                    "ckpt_path=..., or choose another run_dir"
                )

    def _monitor_data(
        self, X: torch.Tensor, labels: np.ndarray | None
    ) -> tuple[torch.Tensor, np.ndarray | None]:
        """The fixed subset the per-epoch log is computed on (one fixed binarisation of it when
        training binarises), drawn from a generator of its own."""
        if self.monitor_size is None and isinstance(X, DiskData):
            raise ValueError(
                "monitor_size=None watches every sample in memory; data on disk need a "
                "bounded monitor_size (the default 2,000), or 0 for none"
            )
        generator = torch.Generator().manual_seed(self.seed)
        monitor = monitor_indices(len(X), self.monitor_size, generator)
        X_monitor = X[monitor]
        if self.binarize:  # the data the model is fitted to: one fixed binarisation
            X_monitor = torch.bernoulli(X_monitor, generator=generator)
        return X_monitor, None if labels is None else labels[monitor]

    def _after_fit(self, X: torch.Tensor) -> None:
        """Hook for fitted attributes computed from the data."""

    # --------------------------------------------------------------------------- inference
    @torch.no_grad()
    def _batched(self, fn, X: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return torch.cat([fn(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])

    def transform(self, X) -> np.ndarray:
        """Latent means E_q[z | x], shape (N, latent_dim)."""
        self._check_fitted()
        return self._batched(self.module_.latent_mean, self._data(X)).numpy()

    def reconstruct(self, X) -> np.ndarray:
        """Reconstructions: the mean of p(x | z) at the guide's point estimate of z."""
        self._check_fitted()
        return self._batched(self.module_.reconstruct, self._data(X)).numpy()

    def likelihood_note(self, X) -> str | None:
        """What ``score`` and ``log_likelihood`` compute on ``X`` when it is not a
        log-probability: with a Bernoulli likelihood on grey levels (non-binary data) they are
        cross-entropies, not log-likelihoods. None when they are log-probabilities or
        log-densities."""
        self._check_fitted()
        if isinstance(self.module_.likelihood, BernoulliLikelihood) and not _binary(self._data(X)):
            return (
                "the data is not binary: a Bernoulli likelihood on grey levels is not a "
                "normalised density, so this is a cross-entropy, not a log-likelihood comparable "
                "with binarised-data results (binarise the data, e.g. torch.bernoulli(X))"
            )
        return None

    def score_samples(self, X) -> np.ndarray:
        """The ELBO of each sample in nats: a lower bound on log p(x), or on a cross-entropy
        with a Bernoulli likelihood on grey levels (see :meth:`likelihood_note`). Discrete y is
        summed out exactly; for the GMVAE and the VAEs one draw of z per point with KL(z)
        analytic where torch has it, for ``DilokthanakulGMVAE`` the mean of 10 importance
        weights log p(x, w, z) - log q(w, z | x). The draws come from a generator seeded by
        ``seed``: the same model and data give the same numbers, and the caller's random state
        is left alone."""
        self._check_fitted()
        X = self._data(X)
        with local_seed(self.seed):
            return self._batched(self._elbo, X, self._scoring_rows(X)).numpy()

    def _scoring_rows(self, X) -> int:
        """Rows per batch of the ELBO: 1,000, fewer where its (K, rows, D) temporaries (y summed
        out: K decoder passes) would pass 2^23 values (32 MB) each. A 4.5 GiB fit of 48 x 48
        images under a 1.5 GiB limit was killed scoring 1,000 rows at a time."""
        k = getattr(self, "n_clusters", 1) or 1
        return rows_within(2**23, X.shape[1] * k, at_most=1000)

    def _elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The ELBO per point of one batch: minus the sum of the module's terms."""
        return -sum(self.module_.elbo_terms(x).values())

    def score(self, X, y=None) -> float:
        """The mean ELBO per sample (higher is better)."""
        return float(self.score_samples(X).mean())

    def log_likelihood(self, X, n_samples: int = 1000, seed: int = 0) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per sample with ``n_samples`` draws from the
        guide (y summed out where the model has one): the common yardstick across priors. The
        draws come from a generator seeded by ``seed``; the caller's random state is left alone.

        With a Bernoulli likelihood the number is a log-probability only for binary data: on
        grey levels it is a cross-entropy, not comparable with published log-likelihoods
        (which use binarised images), and a warning says so."""
        self._check_fitted()
        check_positive_int("n_samples", n_samples)
        X = self._data(X)
        note = self.likelihood_note(X)
        if note is not None:
            warnings.warn(note, UserWarning, stacklevel=2)
        with local_seed(seed):
            return self._batched(
                lambda x: self._importance_log_likelihood(x, n_samples),
                X,
                batch_size=max(1, 20000 // n_samples),
            ).numpy()

    def _importance_log_likelihood(self, x: torch.Tensor, n_samples: int) -> torch.Tensor:
        return importance_log_likelihood(self.module_, x, n_samples)

    def _check_n_samples(self, n_samples: int) -> None:
        self._check_fitted()
        check_positive_int("n_samples", n_samples)

    # --------------------------------------------------------------------------- persistence
    def _fitted_state(self) -> dict[str, Any]:
        """The fitted attributes (except ``module_``, saved as weights) as plain data."""
        return {
            k: v.tolist() if isinstance(v, np.ndarray) else v
            for k, v in vars(self).items()
            if k.endswith("_") and not k.startswith("_") and k != "module_"
        }

    def _restore_fitted(self, fitted: dict[str, Any]) -> None:
        """Set the fitted attributes saved by :meth:`_fitted_state`."""
        for k, v in fitted.items():
            records = isinstance(v, list) and v and isinstance(v[0], dict)  # e.g. history_
            setattr(self, k, np.asarray(v) if isinstance(v, list) and not records else v)
        self.image_shape_ = tuple(fitted["image_shape_"])
        self.start_metrics_ = fitted.get("start_metrics_")  # files saved before it existed

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Save the fitted model (parameters, weights, fitted attributes) to ``path``; an
        existing file is replaced only with ``overwrite=True``, and only once the new one is
        completely written. In data-parallel training (``strategy="ddp"``, which runs the
        script once per process) only the first process writes; the others hold the same
        weights and write nothing."""
        from .persistence import save

        if not is_global_zero():
            return Path(path)
        return save(self, path, overwrite)

    @classmethod
    def load(cls, path: str | Path, **components: Any):
        """Load a model saved by :meth:`save`. Components that were passed as objects (a prior,
        a guide factory, a likelihood) must be passed again by name; change fit settings such
        as ``progress_bar`` afterwards with ``set_params``."""
        from .persistence import load

        return load(cls, path, components)


class ClusteringEstimator(ClusterMixin, LatentEstimator):
    """An estimator whose module gives cluster probabilities (``module_.cluster_probs``) over
    ``n_clusters`` clusters: the K-versus-N check, the training labels, ``predict``."""

    has_clusters = True  # predict / predict_proba assign samples to the K clusters

    def _data(self, X, fitting: bool = False) -> torch.Tensor:
        X = super()._data(X, fitting)
        if fitting and self.n_clusters > X.shape[0]:
            raise ValueError(
                f"n_clusters={self.n_clusters} is larger than the number of samples ({X.shape[0]})"
            )
        return X

    def _after_fit(self, X: torch.Tensor) -> None:
        self.labels_ = self.predict(X)  # scikit-learn's clusterers keep the training labels
        self.cluster_weights_ = cluster_weights(self.labels_, self.n_clusters)

    def predict_proba(self, X) -> np.ndarray:
        """The posterior probability of each cluster, shape (N, K), rows sum to 1."""
        self._check_fitted()
        return self._batched(self.module_.cluster_probs, self._data(X)).numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable cluster of each sample."""
        return self.predict_proba(X).argmax(1)

    @torch.no_grad()
    def _sample(
        self,
        n_samples: int,
        cluster: int | None,
        seed: int | None,
        cluster_logits: torch.Tensor,
        generate: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` clusters drawn from ``cluster_logits`` (or all ``cluster``) and
        ``generate(clusters)``; with ``seed``, from a generator of their own (the caller's
        random state is left alone), else from torch's global one. Returns ``(X, clusters)``."""
        self._check_n_samples(n_samples)
        if cluster is not None and not 0 <= cluster < self.n_clusters:
            raise ValueError(f"cluster must be in [0, {self.n_clusters - 1}], got {cluster}")
        with local_seed(seed) if seed is not None else contextlib.nullcontext():
            if cluster is None:
                clusters = torch.distributions.Categorical(logits=cluster_logits).sample(
                    (n_samples,)
                )
            else:
                clusters = torch.full((n_samples,), int(cluster))
            X = generate(clusters)
        return X.numpy(), clusters.numpy()


def _binary(X: torch.Tensor | DiskData) -> bool:
    if isinstance(X, DiskData):
        return X.binary
    return bool(((X == 0) | (X == 1)).all())


# The base's parameters, which each estimator's __init__ passes on by keyword.
BASE_PARAMS = tuple(inspect.signature(LatentEstimator.__init__).parameters)[1:]


def base_params(values: dict[str, Any]) -> dict[str, Any]:
    """The base's parameters picked by name from an ``__init__``'s ``locals()``."""
    return {name: values[name] for name in BASE_PARAMS}
