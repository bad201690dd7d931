"""One training engine for every Pyro model/guide pair: SVI inside a Lightning module.

A model object passed here needs ``model(x)``, ``guide(x)`` and a ``discrete`` strategy (or an
``elbo()`` method) that names its ELBO. Schedules are callbacks; Lightning provides the progress
bar, CSV logging, checkpoints, device placement and data-parallel strategies.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from pyro.infer import ELBO
from torch.utils.data import DataLoader, Sampler, TensorDataset

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


def make_loader(
    tensors: torch.Tensor | tuple[torch.Tensor, ...],
    batch_size: int,
    seed: int,
    drop_last: bool = False,
) -> DataLoader:
    """Shuffled batches of one tensor (or of aligned tensors), reproducible from ``seed``."""
    tensors = tensors if isinstance(tensors, tuple) else (tensors,)
    if drop_last and len(tensors[0]) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} samples, got {len(tensors[0])}")
    return DataLoader(
        TensorDataset(*tensors),
        batch_size=batch_size,
        drop_last=drop_last,
        sampler=EpochShuffleSampler(len(tensors[0]), seed),
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
        loss = self.loss_fn(x, *rest)
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.module.parameters(), lr=self.lr)

    # A resumed run must draw the same noise as an uninterrupted one.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pyro_gmvae"] = {"config": self.config, "torch_rng": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("pyro_gmvae")
        if saved is None:
            raise ValueError("this checkpoint was not written by pyro-gmvae")
        if saved["config"] != self.config:
            raise ValueError(
                f"the checkpoint is of another configuration: {saved['config']} != {self.config}"
            )
        torch.set_rng_state(saved["torch_rng"])


def svi_loss(module: torch.nn.Module, elbo: ELBO) -> Callable[[torch.Tensor], torch.Tensor]:
    """The negative ELBO per data point of ``module.model`` / ``module.guide``."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        return elbo.differentiable_loss(module.model, module.guide, x) / x.shape[0]

    return loss


class DiscreteScheduleCallback(Callback):
    """Advances the discrete strategy's schedule (e.g. the Gumbel-softmax temperature)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        discrete = getattr(pl_module.module, "discrete", None)
        if discrete is not None:
            discrete.on_epoch_end(trainer.current_epoch + 1)
            if hasattr(discrete, "temperature"):
                pl_module.log("temperature", float(discrete.temperature))


class EpochMetricsCallback(Callback):
    """Logs each ELBO term on the training data, and ACC/NMI/ARI when labels are given."""

    def __init__(
        self,
        X: torch.Tensor,
        labels: np.ndarray | None,
        evaluate: Callable[[torch.nn.Module, torch.Tensor], dict],
    ) -> None:
        self.X, self.labels, self.evaluate = X, labels, evaluate

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        result = self.evaluate(pl_module.module, self.X.to(pl_module.device))
        for name, value in result["terms"].items():
            pl_module.log(name, value)
        if self.labels is not None and result["labels"] is not None:
            for name, value in clustering_scores(self.labels, result["labels"]).items():
                pl_module.log(name, value, prog_bar=name == "acc")


class HistoryCallback(Callback):
    """Keeps every epoch's logged metrics in memory (for plots and notebooks)."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        self.history.append(row)


def train(
    plan: TrainingPlan,
    loader: DataLoader,
    epochs: int,
    *,
    callbacks: list[Callback],
    run_dir: str | Path | None = None,
    ckpt_path: str | Path | None = None,
    progress_bar: bool = True,
    accelerator: str = "auto",
    devices: Any = "auto",
    strategy: Any = "auto",
    **trainer_kwargs: Any,
) -> L.Trainer:
    """Fit ``plan`` for ``epochs`` epochs; with ``run_dir``, log CSV and checkpoint every epoch."""
    callbacks = list(callbacks)
    logger: Any = False
    if run_dir is not None:
        run_dir = Path(run_dir)
        logger = CSVLogger(save_dir=str(run_dir), name="", version="")
        callbacks.append(
            ModelCheckpoint(
                dirpath=str(run_dir / "checkpoints"), save_last=True, save_top_k=0, every_n_epochs=1
            )
        )
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=run_dir is not None,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, len(loader)),
        **trainer_kwargs,
    )
    earlier = _read_csv(run_dir / "metrics.csv") if run_dir and ckpt_path else []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Previous log files in this directory.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(
            plan,
            train_dataloaders=loader,
            ckpt_path=str(ckpt_path) if ckpt_path is not None else None,
        )
    if earlier:  # Lightning's CSV logger starts a fresh file: keep the epochs before the resume
        _write_csv(run_dir / "metrics.csv", earlier + _read_csv(run_dir / "metrics.csv"))
    return trainer


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    keys = sorted(set().union(*rows))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
