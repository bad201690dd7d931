"""``DilokthanakulGMVAE``: Dilokthanakul et al.'s GMVAE as a scikit-learn-style clusterer."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..models.dilokthanakul import DilokthanakulModule
from .base import COMMON_DOC, ClusteringEstimator, base_params, check_positive_int

OBJECTIVES = ("paper", "elbo")
ELBO_DRAWS = 10  # draws of (w, z) per point in score_samples


class DilokthanakulGMVAE(ClusteringEstimator):
    __doc__ = (
        """Dilokthanakul et al.'s Gaussian-mixture VAE (arXiv 1611.02648): a noise latent w, a
    cluster y and z | w, y ~ N(mu_y(w), sigma_y(w)^2) from K prior networks
    (see :mod:`pyro_gmvae.models.dilokthanakul`).

    Parameters
    ----------
    n_clusters : K (>= 2 and <= the number of samples).
    latent_dim : size of z; ``w_dim``: size of w.
    n_samples : M, the draws of (w, z) per point in the paper's bound.
    threshold : lambda, the y-prior term's threshold (max(lambda, its batch mean), in nats);
        used by ``objective="paper"`` only.
    objective : ``"paper"`` (default): the paper's objective with the threshold (its terms
        are logged per epoch: ``train_reconstruction``, ``train_conditional_prior``,
        ``train_kl_w``, ``train_y_prior``, and their total ``train_paper_bound``);
        ``"elbo"``: the exact ELBO with y summed out in the model (``TraceEnum_ELBO``), no
        threshold. ``score`` reports the exact ELBO either way.
    """
        + COMMON_DOC
        + """
    Also ``labels_`` and ``cluster_weights_``. Clusters are predicted by
    q(y | x) = E_q(z | x)[p(y | w, z)] at w = E_q[w] (32 draws of z with fixed noise: a
    point's probabilities do not depend on the call or on the other points).
    """
    )

    _prior_has_y = True

    def __init__(
        self,
        n_clusters: int = 10,
        latent_dim: int = 200,
        w_dim: int = 150,
        hidden_dims: Sequence[int] = (500, 500),
        n_samples: int = 1,
        threshold: float = 0.5,
        objective: str = "paper",
        likelihood: Any = "bernoulli",
        epochs: int = 100,
        batch_size: int = 50,
        lr: float = 1e-4,
        binarize: bool = False,
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = 1,
        strategy: Any = "auto",
        num_nodes: int = 1,
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        self.n_clusters = n_clusters
        self.w_dim = w_dim
        self.n_samples = n_samples
        self.threshold = threshold
        self.objective = objective
        super().__init__(**base_params(locals()))

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("n_clusters", "w_dim", "n_samples"):
            check_positive_int(name, getattr(self, name))
        if self.n_clusters < 2:
            raise ValueError(f"n_clusters must be at least 2, got {self.n_clusters}")
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, numbers.Real)
            or not math.isfinite(self.threshold)
            or self.threshold < 0
        ):
            raise ValueError(f"threshold must be a finite number >= 0, got {self.threshold!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be 'paper' or 'elbo', got {self.objective!r}")

    def resolved_init(self) -> str:
        return "random"  # the paper starts from random weights

    def _build(self, x_dim: int) -> DilokthanakulModule:
        module = DilokthanakulModule(
            x_dim, self.n_clusters, self.latent_dim, self.w_dim, tuple(self.hidden_dims),
            self.likelihood, self.n_samples, self.threshold,
        )  # fmt: skip
        return module

    def _loss(self, module: DilokthanakulModule):
        if self.objective == "paper":
            return module.loss  # the paper's bound, thresholded
        return super()._loss(module)

    def _elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The ELBO per point, y summed out in p(z | w): the mean over 10 draws (w, z) ~ q of
        log p(x, w, z) - log q(w, z | x), the quantity ``objective="elbo"`` maximises (the
        paper's objective, whose terms ``history_`` logs, is another quantity)."""
        return self.module_.log_importance_weights(x, ELBO_DRAWS).mean(0)

    def _importance_log_likelihood(self, x: torch.Tensor, n_samples: int) -> torch.Tensor:
        """log-mean-exp of the importance weights of (w, z) ~ q(w | x) q(z | x), y summed out
        (in chunks of 100 draws, to bound memory)."""
        log_w = torch.cat(
            [self.module_.log_importance_weights(x, min(100, n_samples - start))
             for start in range(0, n_samples, 100)]
        )  # fmt: skip
        return torch.logsumexp(log_w, 0) - math.log(n_samples)

    def predict_proba(self, X) -> np.ndarray:
        """q(y | x) = E_q(z | x)[p(y | w, z)] at w = E_q[w], shape (N, K) (32 draws of z with
        fixed noise: a point's probabilities do not depend on the call or on the other
        points)."""
        return super().predict_proba(X)

    @torch.no_grad()
    def sample(
        self,
        n_samples: int = 1,
        cluster: int | None = None,
        w: np.ndarray | None = None,
        seed: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples``: y uniform (or ``cluster``), w ~ N(0, I) (or the rows of ``w``,
        (n_samples, w_dim): the same w under different clusters shows what each decides),
        z ~ p(z | w, y), and the mean of p(x | z). Returns ``(X, clusters)``."""
        self._check_fitted()
        if w is not None:
            w = torch.as_tensor(np.asarray(w, dtype=np.float32))
            if w.shape != (n_samples, self.w_dim):
                raise ValueError(
                    f"w must have shape ({n_samples}, {self.w_dim}), got {tuple(w.shape)}"
                )
            if not torch.isfinite(w).all():
                raise ValueError("w contains NaN or infinite values")
        uniform = torch.zeros(self.n_clusters)  # p(y) = 1/K
        return self._sample(
            n_samples, cluster, seed, uniform, lambda clusters: self.module_.generate(clusters, w)
        )
