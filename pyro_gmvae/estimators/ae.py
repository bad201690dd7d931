"""``AE``: the deterministic autoencoder baseline, as an estimator over the same parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..models import AEModule
from .base import COMMON_DOC, LatentEstimator, base_params


class AE(LatentEstimator):
    __doc__ = (
        """Deterministic autoencoder (the baseline without a latent distribution): maximises
    log p(x | decoder(encoder(x))). ``score`` is the mean reconstruction log-likelihood; an AE
    defines no density of x, so ``log_likelihood`` raises and there is nothing to sample.

    Parameters
    ----------
    """
        + COMMON_DOC
    )

    has_clusters = False

    def __init__(
        self,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        likelihood: Any = "bernoulli",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        binarize: bool = False,
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = 1,
        strategy: Any = "auto",
        num_nodes: int = 1,
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        super().__init__(**base_params(locals()))

    def resolved_init(self) -> str:
        return "random"

    def log_likelihood(self, X, n_samples: int = 1000, seed: int = 0) -> np.ndarray:
        """Undefined: an autoencoder defines no density of x (raises ``ValueError``)."""
        raise ValueError("an autoencoder defines no density of x: it has no log-likelihood")

    def _build(self, x_dim: int) -> AEModule:
        return AEModule(x_dim, self.latent_dim, tuple(self.hidden_dims), likelihood=self.likelihood)
