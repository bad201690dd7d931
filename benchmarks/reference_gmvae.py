"""Runs the reference GMVAE implementation (jariasf/GMVAE, its ``pytorch/`` folder) from a
checkout the user names, on the same tensors as this project's benchmark. The project contains
none of its code: this module only builds its ``args`` (the reference's ``main.py`` defaults,
CPU), its data loaders, and times its own ``train``/``train_epoch``.

The reference's model is ``GMVAE(args)`` with ``train(train_loader, val_loader)`` (100 epochs,
Adam 1e-3, batch 64, Gumbel-softmax annealed 1.0 -> 0.5, ACC on ``val_loader`` after every
epoch), ``train_epoch(optimizer, loader)`` and ``network(x, temperature, hard)`` returning a
dict with the logits of q(y|x).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import random
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

# The reference's main.py defaults, on the CPU and quiet.
REFERENCE_ARGS = {
    "epochs": 100,
    "cuda": 0,
    "verbose": 0,
    "batch_size": 64,
    "batch_size_val": 200,
    "learning_rate": 1e-3,
    "decay_epoch": -1,
    "lr_decay": 0.5,
    "num_classes": 10,
    "gaussian_size": 64,
    "input_size": 784,
    "init_temp": 1.0,
    "decay_temp": 1,
    "hard_gumbel": 0,
    "min_temp": 0.5,
    "decay_temp_rate": 0.013862944,
    "w_gauss": 1.0,
    "w_categ": 1.0,
    "w_rec": 1.0,
    "rec_type": "bce",
}
PACKAGES = ("model", "networks", "losses", "metrics")  # the reference's top-level packages


class Reference:
    """The reference's ``GMVAE`` class, imported from a checkout (the repository's root or its
    ``pytorch/`` folder)."""

    def __init__(self, path: str | Path) -> None:
        root = Path(path).expanduser().resolve()
        folder = root / "pytorch" if (root / "pytorch" / "model" / "GMVAE.py").exists() else root
        source = folder / "model" / "GMVAE.py"
        if not source.exists():
            raise SystemExit(
                f"--reference {path}: no model/GMVAE.py there or in its pytorch/ folder "
                "(expected a checkout of jariasf/GMVAE)"
            )
        # which code ran: the hash of its model, networks and losses, stored with each row
        digest = hashlib.sha256()
        for part in ("model/GMVAE.py", "networks/Networks.py", "networks/Layers.py",
                     "losses/LossFunctions.py"):  # fmt: skip
            file = folder / part
            digest.update(file.read_bytes() if file.exists() else b"")
        self.code_sha256 = digest.hexdigest()[:16]
        # The reference imports its packages by their bare names (model, networks, ...): import
        # them from its folder, keep the class, and leave sys.modules and sys.path as they were
        # (a later import of another "model" must not find the reference's).
        saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] in PACKAGES}
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, str(folder))
        try:
            self.model_class = importlib.import_module("model.GMVAE").GMVAE
        finally:
            sys.path.remove(str(folder))
            for name in [n for n in sys.modules if n.split(".")[0] in PACKAGES]:
                del sys.modules[name]
            sys.modules.update(saved)

    def build(self, seed: int, **overrides):
        """A fresh reference model, seeded as its ``main.py`` seeds."""
        np.random.seed(seed)
        random.seed(seed)
        torch.manual_seed(seed)
        return self.model_class(Namespace(**{**REFERENCE_ARGS, **overrides}))

    @staticmethod
    def loader(X: torch.Tensor, y: np.ndarray, batch_size: int, seed: int | None) -> DataLoader:
        """Flattened images and labels; shuffled (seeded) when ``seed`` is given."""
        data = TensorDataset(X.reshape(len(X), -1), torch.as_tensor(y))
        if seed is None:
            return DataLoader(data, batch_size=batch_size, shuffle=False)
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)

    def predict(self, model, X: torch.Tensor) -> np.ndarray:
        """The argmax of the reference's q(y|x) logits, as its ``test`` takes them."""
        model.network.eval()
        with torch.no_grad():
            out = model.network(X.reshape(len(X), -1), model.gumbel_temp, model.hard_gumbel)
        return out["logits"].argmax(1).numpy()

    def fit(
        self,
        X_train: torch.Tensor,
        y_train: np.ndarray,
        monitor: np.ndarray,
        seed: int,
        epochs: int = REFERENCE_ARGS["epochs"],
    ) -> tuple[object, float, list[float]]:
        """Train as its ``main.py`` does, the per-epoch validation on the ``monitor`` rows of the
        training images (as this project's estimators monitor 2,000 training images). Returns
        the model, the seconds ``train`` took, and the monitored ACC after each epoch."""
        model = self.build(seed, epochs=epochs)
        train = self.loader(X_train, y_train, REFERENCE_ARGS["batch_size"], seed)
        val = self.loader(
            X_train[monitor], y_train[monitor], REFERENCE_ARGS["batch_size_val"], None
        )
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per epoch
            history = model.train(train, val)
        seconds = time.perf_counter() - start
        return model, seconds, [acc / 100 for acc in history["val_history_acc"]]

    def images_per_second(
        self,
        X: torch.Tensor,
        y: np.ndarray,
        epochs: int,
        seed: int,
        monitor: np.ndarray | None = None,
    ) -> float:
        """Training throughput of ``epochs`` of its ``train_epoch`` (construction, optimiser and
        the per-epoch temperature decay included), images per second. With ``monitor`` (rows
        of ``X``): its whole ``train`` loop instead, each epoch's validation on those rows
        included, as ``fit`` runs it."""
        start = time.perf_counter()
        model = self.build(seed, epochs=epochs)
        train = self.loader(X, y, REFERENCE_ARGS["batch_size"], seed)
        if monitor is not None:
            val = self.loader(X[monitor], y[monitor], REFERENCE_ARGS["batch_size_val"], None)
            with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per epoch
                model.train(train, val)
            return epochs * len(X) / (time.perf_counter() - start)
        optimizer = torch.optim.Adam(model.network.parameters(), lr=REFERENCE_ARGS["learning_rate"])
        for epoch in range(1, epochs + 1):
            model.train_epoch(optimizer, train)
            model.gumbel_temp = max(
                model.init_temp * np.exp(-model.decay_temp_rate * epoch), model.min_temp
            )
        return epochs * len(X) / (time.perf_counter() - start)
