"""One training engine for every Pyro model/guide pair: SVI inside a Lightning module.

A model object passed here needs ``model(x)``, ``guide(x)`` and a ``discrete`` strategy (or an
``elbo()`` method) that names its ELBO. Schedules are callbacks; Lightning provides the progress
bar, checkpoints and device placement: one device, or data-parallel processes with
``strategy="ddp"`` (:func:`check_strategy`), each taking its share of every global batch
(:class:`EpochBatches`) and training only the parameters its phase's loss reaches
(:func:`_frozen_unused`).

The loss is the negative ELBO of a batch divided by its size: the per-point mean, an unbiased
estimate of the data set's negative ELBO divided by N, and under DDP the processes' averaged
gradients are those of the global batch's mean. That is right while the models have only local
latent variables (one y and z per point), which holds for every model trained here; a model
with global latent variables must scale its local terms with
``pyro.plate(..., size=N, subsample=...)`` instead (the AR mixture divides by its number of
transitions, and trains on one process).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyro
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from pyro.infer import ELBO
from pyro.infer.util import is_validation_enabled
from torch.utils.data import BatchSampler, DataLoader, Sampler

from . import files
from .checks import check_positive_int
from .metrics import clustering_scores


class EpochShuffleSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), so a resumed run sees the same batches."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at each epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _data_parallel(strategy: Any) -> bool:
    """Whether ``strategy`` is Lightning's DDP (by name, or a ``DDPStrategy``)."""
    from lightning.pytorch.strategies import DDPStrategy

    return strategy == "ddp" or isinstance(strategy, DDPStrategy)


def check_strategy(devices: Any, strategy: Any, num_nodes: int = 1) -> None:
    """Raise a ``ValueError`` unless the fit can run with these Lightning settings: one device
    with ``strategy="auto"``, or any number with ``"ddp"`` (or a ``DDPStrategy`` that starts
    its processes from the script, Lightning's default), on ``num_nodes`` machines (more than
    one with ``"ddp"`` only). Strategies that start processes by spawning or forking
    (``"ddp_spawn"``, ``"ddp_fork"``, ``"ddp_notebook"``) are refused: what a fit learns besides
    the weights (the history, the temperature, a Gibbs phase's state) would stay in those
    processes."""
    check_positive_int("num_nodes", num_nodes)
    one_device = (isinstance(devices, int) and devices == 1) or (
        isinstance(devices, list | tuple) and len(devices) == 1
    )
    # "ddp" names the script-starting launcher; a DDPStrategy object says which it uses
    if _data_parallel(strategy) and getattr(strategy, "_start_method", "popen") == "popen":
        return
    if strategy == "auto" and one_device and num_nodes == 1:
        return
    raise ValueError(
        f"devices={devices!r}, strategy={strategy!r}, num_nodes={num_nodes!r}: train on one "
        "device (devices=1 or [index], strategy='auto', one node) or data-parallel with "
        "strategy='ddp', which runs the script once per device (from a script or the "
        "pyro-gmvae command, not in Jupyter); spawned or forked processes ('ddp_spawn', "
        "'ddp_fork', 'ddp_notebook') are not supported"
    )


def node_rank() -> int:
    """This machine's place in a data-parallel run over several (Lightning's ``NODE_RANK``, or
    ``GROUP_RANK``; 0 on one machine)."""
    return int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")))


def is_global_zero() -> bool:
    """Whether this process writes files: the first process of a data-parallel run, or the
    only one. Lightning's own record of the rank (read from the variables its launcher sets
    for the processes it starts, and set by its DDP strategy), on the first machine: the
    process a user starts on another machine counts as rank 0 of its own until its fit
    starts."""
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0 and node_rank() == 0


class EpochBatches(BatchSampler):
    """Batches of an :class:`EpochShuffleSampler`'s indices; passes the epoch on to it.

    Data-parallel training: ``batch_size`` is each process's batch. Every process draws the
    same permutation (same seed and epoch) and cuts it into global batches of ``batch_size``
    times the number of processes; each takes every ``world_size``-th point of each global
    batch from its ``rank`` on. The processes thus see different points, and together one
    process's batches of the global size, so their averaged gradients are that process's
    (where the processes' shares are equal: the last, smaller global batch gives a mean of the
    processes' means). ``rank`` and ``world_size`` (0 and 1: one process) are set by
    :func:`train` from the Trainer once its processes exist.

    A last global batch too small to give every process two points (one where ``batch_size``
    is 1) joins the one before: batch norm needs two points to train on, and every process
    must take the same number of steps."""

    def __init__(
        self,
        sampler: EpochShuffleSampler,
        batch_size: int,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _check_processes(self) -> None:
        if len(self.sampler) < self.world_size:
            raise ValueError(
                f"data-parallel training on {self.world_size} processes needs at least one "
                f"sample (a transition, or a series for Markov regimes) per process; the data "
                f"have {len(self.sampler)}: train on fewer devices"
            )

    def _too_small(self, left: int) -> bool:
        """Whether a last global batch of ``left`` points (fewer than a whole one) would give
        some process no point, or one point where the batches have more."""
        return 0 < left < min(2, self.batch_size) * self.world_size

    def _global_batches(self) -> list[list[int]]:
        size = self.batch_size * self.world_size
        order = list(self.sampler)
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        if len(batches) > 1 and self._too_small(len(order) % size):
            batches[-2].extend(batches.pop())
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        self._check_processes()
        for batch in self._global_batches():
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        self._check_processes()
        full, left = divmod(len(self.sampler), self.batch_size * self.world_size)
        return full + (left > 0) - (full > 0 and self._too_small(left))


class _Rows(torch.utils.data.Dataset):
    """Aligned row sources (tensors, or data on disk) indexed together by a batch of indices."""

    def __init__(self, *sources: Any) -> None:
        self.sources = sources

    def __getitem__(self, index: list[int]) -> tuple[torch.Tensor, ...]:
        return tuple(source[index] for source in self.sources)

    def __len__(self) -> int:
        return len(self.sources[0])


def make_loader(tensors: Any, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches of one tensor (or of aligned tensors; data on disk too:
    :class:`~pyro_gmvae.disk.DiskData`), reproducible from ``seed``. Each batch is taken with
    one indexing operation per tensor (the sampler yields whole batches of indices), not
    gathered point by point."""
    tensors = tensors if isinstance(tensors, tuple) else (tensors,)
    batches = EpochBatches(EpochShuffleSampler(len(tensors[0]), seed), batch_size, False)
    return DataLoader(
        _Rows(*tensors),
        sampler=batches,
        batch_size=None,  # the sampler's index lists index the tensors directly
        generator=torch.Generator().manual_seed(seed),
    )


class TrainingPlan(L.LightningModule):
    """Minimises ``loss_fn(*batch)`` (a mean loss per data point) over ``module``'s parameters
    with Adam. For SVI the loss is ``ELBO.differentiable_loss(model, guide, x) / len(x)``
    (see :func:`svi_loss`); pre-training phases pass other losses through the same engine."""

    def __init__(
        self,
        module: torch.nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        lr: float = 1e-3,
        binarize: bool = False,
        config: dict | None = None,
    ) -> None:
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn
        self.lr = lr
        self.binarize = binarize
        self.config = config or {}

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, *rest = batch
        if self.binarize:  # dynamic binarization: a fresh Bernoulli draw of the pixels each time
            x = torch.bernoulli(x)
        # Pyro's argument checks run on the first step of a fit (not of a resumed one), where a
        # model/guide mismatch shows; after it they cost 10-15 % of a step, and a loss that
        # turns NaN is caught at the epoch's end (DivergenceCheck).
        with pyro.validation_enabled(is_validation_enabled() and self.global_step == 0):
            loss = self.loss_fn(x, *rest)
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def on_fit_start(self) -> None:
        # Every process of a data-parallel fit starts from the same seed; the others move to
        # their own stream, or their points would get the same noise as the first process's
        # (not where a resume gave each its own saved stream).
        if self.global_rank > 0 and not getattr(self, "_own_stream_restored", False):
            # (NumPy takes seeds below 2**32)
            pyro.set_rng_seed((torch.initial_seed() + 1_000_003 * self.global_rank) % 2**32)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        parameters = list(self.module.parameters())
        # the fused kernel updates all parameters in one pass: a third of a CPU step otherwise
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)
        return torch.optim.Adam(parameters, lr=self.lr, fused=fused)

    # A resumed run must draw the same noise as an uninterrupted one: keep every random state.
    # Every process runs this; the first writes the file. Data-parallel runs keep each
    # process's random state, so that a resume on as many processes repeats the interrupted run.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = [_rng_state()]
        if self.trainer.world_size > 1:
            states = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(states, _rng_state())
        checkpoint["pyro_gmvae"] = {"config": self.config, "rng": states[0]}
        if len(states) > 1:
            checkpoint["pyro_gmvae"]["rng_per_process"] = states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint["pyro_gmvae"]  # train() checked the configuration
        states = saved.get("rng_per_process", [saved["rng"]])
        self._own_stream_restored = len(states) == self.trainer.world_size
        _set_rng_state(states[self.global_rank] if self._own_stream_restored else saved["rng"])


def _rng_state() -> dict[str, Any]:
    """torch's (CPU, and each CUDA device once CUDA is in use), NumPy's and Python's random
    states, as tensors and plain data (checkpoints are read with ``weights_only=True``)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "random": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
    }
    if torch.cuda.is_initialized():  # never start CUDA just to read its state
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():  # the devices this machine has
        for device, device_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, device)


def check_checkpoint(ckpt_path: str | Path, config: dict) -> int:
    """Raise a ``ValueError`` unless ``ckpt_path`` is a pyro-gmvae checkpoint written with the
    same ``config``; the message names each setting that differs (saved -> now). Returns the
    number of epochs the checkpoint has finished (Lightning's end-of-epoch checkpoint stores
    that count as ``epoch``)."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = checkpoint["pyro_gmvae"]["config"]
    except Exception as err:  # torch raises many kinds for a file that is not its own
        raise ValueError(f"{ckpt_path} is not a pyro-gmvae checkpoint ({err})") from err
    if saved != config:
        changed = "; ".join(
            f"{k}: {saved.get(k, '(unset)')!r} -> {config.get(k, '(unset)')!r}"
            for k in sorted(set(saved) | set(config))
            if saved.get(k) != config.get(k)
        )
        raise ValueError(f"{ckpt_path} was written with other settings: {changed}")
    return int(checkpoint["epoch"])


def svi_loss(module: torch.nn.Module, elbo: ELBO) -> Callable[[torch.Tensor], torch.Tensor]:
    """The negative ELBO per data point of ``module.model`` / ``module.guide``; a batch's
    further tensors (e.g. data indices) are passed on to both."""

    def loss(x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        return elbo.differentiable_loss(module.model, module.guide, x, *args) / x.shape[0]

    return loss


class DiscreteScheduleCallback(Callback):
    """Advances the discrete strategy's schedule (e.g. the Gumbel-softmax temperature)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        discrete = getattr(pl_module.module, "discrete", None)
        if discrete is not None:
            discrete.on_epoch_end(trainer.current_epoch + 1)
            if hasattr(discrete, "temperature"):
                pl_module.log("temperature", float(discrete.temperature), sync_dist=True)


class DivergenceCheck(Callback):
    """Stops the fit with a ``FloatingPointError`` naming the epoch whose mean loss is NaN or
    infinite. The first callback of every fit: it runs before the monitor and the checkpoint,
    which would otherwise evaluate or save the diverged model."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        loss = trainer.callback_metrics.get("loss")
        if loss is not None and not torch.isfinite(loss):
            raise FloatingPointError(
                f"the training loss is {float(loss)} after epoch {trainer.current_epoch + 1}: "
                "the optimisation diverged (try a lower lr, or standardise the data)"
            )


class EpochMetricsCallback(Callback):
    """Logs each ELBO term on the monitored training points (the first 500: see
    :func:`monitor_terms`), and ACC/NMI/ARI on all of them when labels are given.

    Its Monte Carlo noise comes from a generator of its own (seeded by ``seed`` each epoch), so
    the monitor neither moves the training's random state nor depends on how many points it
    watches. With ``record_start``, ``start`` holds the same figures for the model before its
    first epoch (None for a resumed fit): where pre-training ran, what it alone reached."""

    def __init__(
        self,
        X: torch.Tensor,
        labels: np.ndarray | None,
        evaluate: Callable[[torch.nn.Module, torch.Tensor], dict],
        seed: int = 0,
        record_start: bool = True,
    ) -> None:
        self.X, self.labels, self.evaluate, self.seed = X, labels, evaluate, seed
        self.record_start = record_start
        self.start: dict[str, float] | None = None

    def _figures(self, pl_module: TrainingPlan) -> dict[str, float]:
        with local_seed(self.seed):
            result = self.evaluate(pl_module.module, self.X.to(pl_module.device))
        figures = dict(result["terms"])
        if self.labels is not None and result["labels"] is not None:
            figures.update(clustering_scores(self.labels, result["labels"]))
        return figures

    def on_train_start(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        # every process watches the same points with the same weights: nothing to synchronise
        fresh = self.record_start and trainer.current_epoch == 0  # (a resume: not the start)
        self.start = {k: float(v) for k, v in self._figures(pl_module).items()} if fresh else None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        for name, value in self._figures(pl_module).items():
            pl_module.log(name, value, prog_bar=name == "acc", sync_dist=True)


@contextlib.contextmanager
def local_seed(seed: int) -> Iterator[None]:
    """Seed torch (CPU and CUDA), NumPy and Python's ``random`` with ``seed`` inside the block,
    and give the caller's random states back untouched afterwards."""
    state = _rng_state()
    try:
        pyro.set_rng_seed(seed)
        yield
    finally:
        _set_rng_state(state)


def monitor_indices(n: int, size: int | None, generator: torch.Generator) -> torch.Tensor:
    """The rows the per-epoch monitor watches: ``size`` of ``range(n)`` (all when None) drawn
    at random, in random order, so that any first few of them (what :func:`monitor_terms`
    scores the ELBO on) are a random subset too."""
    return torch.randperm(n, generator=generator)[:size]


@torch.no_grad()
def monitor_terms(
    module: torch.nn.Module,
    X: torch.Tensor,
    batch_size: int = 1000,
    terms_size: int | None = 500,
) -> dict:
    """Mean ELBO terms over the first ``terms_size`` rows of ``X`` (all when None; the
    estimators' monitor rows come in random order, :func:`monitor_indices`) and, for models
    with clusters, the predicted clusters of every row. The negative sum of the terms
    is logged as ``train_elbo``, or under the module's own ``terms_total`` name where the terms
    add up to something else.

    Why a smaller subset for the terms: exact in y they cost K decoder passes per point, a
    fifth of a relaxed-mode epoch on 2,000 points, while the clusters need one encoder pass;
    the same points every epoch keep the curve smooth."""
    was_training = module.training
    module.eval()
    n_terms = len(X) if terms_size is None else min(terms_size, len(X))
    sums: dict[str, float] = {}
    labels = []
    for i in range(0, len(X), batch_size):
        x = X[i : i + batch_size]
        if i < n_terms:
            for name, value in module.elbo_terms(x[: n_terms - i]).items():
                sums[name] = sums.get(name, 0.0) + float(value.sum())
        if hasattr(module, "cluster_probs"):
            labels.append(module.cluster_probs(x).argmax(-1).cpu())
    module.train(was_training)
    terms = {f"train_{k}": v / n_terms for k, v in sums.items()}
    terms[f"train_{getattr(module, 'terms_total', 'elbo')}"] = -sum(terms.values())
    return {"terms": terms, "labels": torch.cat(labels).numpy() if labels else None}


class HistoryCallback(Callback):
    """Keeps every epoch's logged metrics (``history``, one dict per finished epoch, numbered
    from 1) and, with ``path``, writes them all to that CSV file after each epoch, replacing it
    in one step. ``earlier`` rows (of a resumed run) come first."""

    def __init__(self, path: Path | None = None, earlier: list[dict] | None = None) -> None:
        self.path = path
        self.history: list[dict[str, float]] = list(earlier or [])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        self.history.append(row)
        if self.path is not None and trainer.is_global_zero:
            files.write_text(self.path, _csv_text(self.history))


def _csv_text(rows: list[dict]) -> str:
    keys = ["epoch", *sorted(set().union(*rows) - {"epoch"})]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def read_history(path: Path, epochs: int) -> list[dict[str, float]]:
    """The rows of a metrics file for the first ``epochs`` epochs (what a checkpoint has done)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return [row for row in rows if row["epoch"] <= epochs]


class PhaseProgressBar(TQDMProgressBar):
    """Lightning's progress bar, labelled with the training phase and the epoch count."""

    def __init__(self, phase: str) -> None:
        super().__init__()
        self.phase = phase

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        epoch = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        self.train_progress_bar.set_description(f"{self.phase}, {epoch}")


class EpochLinePrinter(Callback):
    """One line per epoch on standard error: the progress report where no terminal redraws a
    bar (logs, CI)."""

    def __init__(self, phase: str) -> None:
        self.phase = phase

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        if not trainer.is_global_zero:
            return
        shown = ("loss", "acc", "temperature")
        metrics = trainer.callback_metrics
        values = ", ".join(f"{k} {float(metrics[k]):.4g}" for k in shown if k in metrics)
        epoch = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        print(f"{self.phase}, {epoch}: {values}", file=sys.stderr, flush=True)


def progress(items: Iterable, total: int, phase: str, enabled: bool = True) -> Iterator:
    """``items`` with progress shown for a loop outside Lightning (e.g. Gibbs sweeps): a bar
    named ``phase`` on a terminal or in Jupyter, otherwise one line when the phase ends (in
    the first process of a data-parallel run only)."""
    if not enabled or not is_global_zero():
        yield from items
        return
    if _interactive():
        from tqdm.auto import tqdm

        yield from tqdm(items, total=total, desc=phase, leave=False)
        return
    start, count = time.perf_counter(), 0
    for item in items:
        count += 1
        yield item
    seconds = time.perf_counter() - start
    print(f"{phase}: {count}/{total} in {seconds:.1f} s", file=sys.stderr, flush=True)


def _interactive() -> bool:
    """Whether progress can be drawn as a bar: a terminal, or a Jupyter kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's banners (accelerator lines, tips, "stopped" notices) and warnings that do not
    apply to in-memory tensors stay out of the user's output."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in (
                ".*does not have many workers.*",
                ".*LeafSpec.*is deprecated.*",
                ".*Checkpoint directory .* exists and is not empty.*",
                ".*The dirpath has changed from.*",  # a run folder moved into place
            ):
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class _Shards(Callback):
    """Tells the loader's :class:`EpochBatches` which process this is, once the Trainer has
    started its processes (before it counts the batches)."""

    def __init__(self, loader: DataLoader) -> None:
        self.batches = loader.sampler

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if isinstance(self.batches, EpochBatches):
            self.batches.rank, self.batches.world_size = trainer.global_rank, trainer.world_size


@contextlib.contextmanager
def _frozen_unused(plan: TrainingPlan, loader: DataLoader) -> Iterator[None]:
    """Inside the block, the parameters that the plan's loss does not reach (no gradient on
    the loader's first batch) do not require gradients: a phase trains only its own
    parameters (the autoencoder pre-training neither q(y | x) nor the prior, the classifier
    phase q(y | x) alone). Data-parallel training needs it: it waits for a gradient of every
    parameter that requires one. The probe's random draws and any buffer its loss moved are
    given back, so the training is what it would be without it."""
    parameters = [p for p in plan.module.parameters() if p.requires_grad]
    if not parameters:
        yield
        return
    x, *rest = next(iter(loader))
    state = _rng_state()
    buffers = {name: b.detach().clone() for name, b in plan.module.named_buffers()}
    try:
        with torch.enable_grad():
            x = torch.bernoulli(x) if plan.binarize else x
            loss = plan.loss_fn(x, *rest)
            grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    finally:  # a loss may move buffers, e.g. a score-function estimator's baseline
        _set_rng_state(state)
        with torch.no_grad():
            for name, b in plan.module.named_buffers():
                b.copy_(buffers[name])
    unused = [p for p, g in zip(parameters, grads, strict=True) if g is None]
    for p in unused:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in unused:
            p.requires_grad_(True)


def train(
    plan: TrainingPlan,
    loader: DataLoader,
    epochs: int,
    *,
    callbacks: list[Callback],
    phase: str = "SVI",
    run_dir: str | Path | None = None,
    ckpt_path: str | Path | None = None,
    progress_bar: bool = True,
    accelerator: str = "auto",
    devices: Any = 1,
    strategy: Any = "auto",
    num_nodes: int = 1,
    **trainer_kwargs: Any,
) -> list[dict[str, float]]:
    """Fit ``plan`` for ``epochs`` epochs (in all, counting those of a resumed checkpoint) and
    return the history of logged metrics, one dict per epoch.

    Progress is one bar labelled ``phase`` on a terminal and one line per epoch elsewhere. With
    ``run_dir``, ``run_dir/metrics.csv`` and ``run_dir/checkpoints/last.ckpt`` are replaced after
    every epoch; ``ckpt_path`` resumes a checkpoint, which must carry ``plan.config``; it is
    checked before anything is written, and a refused or interrupted resume leaves every earlier
    file as it was.
    """
    earlier: list[dict] = []
    if ckpt_path is not None:
        done = check_checkpoint(ckpt_path, plan.config)
        if run_dir is not None:
            earlier = read_history(Path(run_dir) / "metrics.csv", done)
    history = HistoryCallback(Path(run_dir) / "metrics.csv" if run_dir else None, earlier)
    # the check first; the history last but the printer: it records what the others logged
    callbacks = [DivergenceCheck(), *callbacks, history]
    if progress_bar and _interactive():
        callbacks.append(PhaseProgressBar(phase))
    elif progress_bar:
        callbacks.append(EpochLinePrinter(phase))
    if run_dir is not None:
        callbacks.append(
            ModelCheckpoint(
                dirpath=str(Path(run_dir) / "checkpoints"),
                save_last=True,
                save_top_k=0,
                every_n_epochs=1,
                # always last.ckpt, also in a run folder that was moved or copied (Lightning
                # would otherwise count up to last-v1.ckpt and leave last.ckpt behind)
                enable_version_counter=False,
            )
        )
    # one process needs no freezing (and a parameter that a first batch misses still trains)
    frozen = _frozen_unused(plan, loader) if _data_parallel(strategy) else contextlib.nullcontext()
    callbacks.append(_Shards(loader))
    with _quiet_lightning(), frozen:
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_nodes=num_nodes,
            logger=False,
            callbacks=callbacks,
            enable_checkpointing=run_dir is not None,
            enable_progress_bar=progress_bar and _interactive(),
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=max(1, len(loader)),
            use_distributed_sampler=False,  # EpochBatches gives each process its share
            **trainer_kwargs,
        )
        trainer.fit(
            plan,
            train_dataloaders=loader,
            ckpt_path=str(ckpt_path) if ckpt_path is not None else None,
        )
    return history.history
