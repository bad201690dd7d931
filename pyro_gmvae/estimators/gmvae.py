"""``GMVAE``: the Gaussian-mixture VAE as a scikit-learn-style clustering estimator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..components import DiscreteStrategy, make_discrete
from ..models import GMVAEModule
from ..pretrain import TSNE_BELOW, pretrain
from .base import COMMON_DOC, ClusteringEstimator, base_params, check_positive_int

SCHEDULE_DEFAULTS = (1.0, 0.5, 0.013862944)  # temperature, min_temperature, decay_rate
# training samples from which discrete="auto" relaxes y: the size rule of pre-training's embedding
RELAXED_FROM = TSNE_BELOW


def resolve_discrete(discrete: Any, n_samples: int) -> Any:
    """``"auto"``: exact enumeration of y below :data:`RELAXED_FROM` training samples, the
    relaxed (Gumbel-softmax) categorical from there; any other mode as it is.

    Measured with the defaults otherwise (one thread): on scikit-learn's 1,797 digits (20
    epochs, ``pyro-gmvae train --dataset digits --discrete D --seed S``) enumeration gave ACC
    0.875, 0.880, 0.852 (seeds 0-2) against the relaxed y's 0.809, 0.830, 0.820; on
    MNIST-test's 9,000 training images (100 epochs, ``docs/benchmarks.md``) the relaxed y gave
    ACC 0.955 and 0.960 against 0.953 and 0.952 (seeds 0 and 1; 0.958 +- 0.002 against 0.955
    +- 0.003 over seeds 0-4 with the UMAP recipe before), a higher ELBO (-91.9 against -93.4)
    and 7.6 s per epoch against 18.6. The two runs differ in epochs as well as size (after 20
    epochs the relaxed y's temperature, annealed per epoch, is still 0.76), and sizes in
    between were not measured: the boundary is set equal to pre-training's
    (:func:`pyro_gmvae.pretrain.resolve_embedding`), one rule for both."""
    if isinstance(discrete, str) and discrete == "auto":
        return "enumerate" if n_samples < RELAXED_FROM else "relaxed"
    return discrete


class GMVAE(ClusteringEstimator):
    __doc__ = (
        """Gaussian-mixture VAE for clustering, fit by stochastic variational inference.

    Parameters
    ----------
    n_clusters : K, the number of mixture components (>= 2 and <= the number of samples).
    latent_dim, hidden_dims : see below.
    discrete : how y is treated: ``"auto"`` (default: ``"enumerate"`` below 4,096 training
        samples, ``"relaxed"`` from there, see :func:`resolve_discrete`; the mode used is
        ``discrete_`` after fitting), ``"enumerate"`` (exact sum over y), ``"relaxed"``
        (Gumbel-softmax), ``"straight-through"`` (hard Gumbel-softmax), ``"score-function"``
        (REINFORCE), or a ``DiscreteStrategy`` instance (copied).
    prior : the prior on z given y: ``"learned-full-mixture"`` (default: one learned Gaussian
        per cluster, full covariances), ``"learned-mixture"`` (diagonal covariances),
        ``"fixed-mixture"`` (well-separated means drawn from the seed, not trained), or a module
        (copied; e.g. ``FixedMixturePrior(means, variances, weights)``).
    z_guide : ``"diagonal"``, ``"low-rank"``, ``"full"``, ``"flow"`` or a guide factory.
    temperature, min_temperature, decay_rate : Gumbel-softmax annealing for relaxed modes,
        ``max(temperature * exp(-decay_rate * epoch), min_temperature)``.
    init : ``"pretrain"`` starts from an autoencoder + UMAP + Gaussian-mixture clustering of
        the codes (see :mod:`pyro_gmvae.pretrain`); ``"random"`` from random weights, as the
        reference implementations do; ``"auto"`` (default) pre-trains the named learned
        mixture and starts every other prior as it is (a module passed in keeps its
        components; ``init="pretrain"`` places them, with ``set_components``).
    pretrain_epochs : epochs of autoencoder pre-training (q(y|x) is then fitted to the
        mixture's responsibilities for a third as many epochs, at least 1).
    pretrain_embedding : the 2-D embedding pre-training clusters the codes in: ``"auto"``
        (default) chooses t-SNE below 4,096 points and UMAP from there (see
        :func:`pyro_gmvae.pretrain.resolve_embedding`: t-SNE clustered scikit-learn's 1,797
        digits better; on MNIST-test they were alike in the benchmark, 0.955 and 0.960 with
        UMAP against 0.961 and 0.959, seeds 0 and 1, and UMAP pre-trained in 63-65 s against
        146-216 s), ``"umap"`` or ``"tsne"``.

    The defaults are the configuration measured best on images with values in [0, 1]
    (MNIST-test: ``docs/benchmarks.md``). For other arrays choose ``likelihood="gaussian"``
    (on standardised columns; the Bernoulli likelihood refuses values outside [0, 1]) and,
    for a few features, smaller ``hidden_dims`` and ``latent_dim``.
    """
        + COMMON_DOC
        + """
    Also ``labels_`` (the cluster of each training sample, as ``fit_predict`` returns) and
    ``cluster_weights_`` (share of the data in each cluster).
    """
    )

    _pretrain = staticmethod(pretrain)
    _prior_has_y = True

    def __init__(
        self,
        n_clusters: int = 10,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        discrete: Any = "auto",
        prior: str | torch.nn.Module = "learned-full-mixture",
        z_guide: Any = "diagonal",
        temperature: float = SCHEDULE_DEFAULTS[0],
        min_temperature: float = SCHEDULE_DEFAULTS[1],
        decay_rate: float = SCHEDULE_DEFAULTS[2],
        likelihood: Any = "bernoulli",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        binarize: bool = False,
        init: str = "auto",
        pretrain_epochs: int = 15,
        pretrain_embedding: str = "auto",
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = 1,
        strategy: Any = "auto",
        num_nodes: int = 1,
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        self.n_clusters = n_clusters
        self.discrete = discrete
        self.prior = prior
        self.z_guide = z_guide
        self.temperature = temperature
        self.min_temperature = min_temperature
        self.decay_rate = decay_rate
        self.init = init
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_embedding = pretrain_embedding
        super().__init__(**base_params(locals()))

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int("n_clusters", self.n_clusters)
        if self.n_clusters < 2:
            raise ValueError(f"n_clusters must be at least 2, got {self.n_clusters}")
        self._check_prior()
        self._check_init()
        # fails now on a bad discrete mode or temperature schedule ("auto" may relax y)
        self._make_discrete(resolve_discrete(self.discrete, RELAXED_FROM))
        schedule = (self.temperature, self.min_temperature, self.decay_rate)
        if isinstance(self.discrete, DiscreteStrategy) and schedule != SCHEDULE_DEFAULTS:
            raise ValueError(
                "temperature, min_temperature and decay_rate apply to discrete='relaxed' or "
                "'straight-through'; a strategy instance has its own: set the schedule on the "
                "strategy"
            )

    def _placeable(self) -> bool:
        if isinstance(self.prior, str):
            return self.prior in ("learned-mixture", "learned-full-mixture")
        return hasattr(self.prior, "set_components")

    def _make_discrete(self, mode: Any):
        if isinstance(mode, str) and mode in ("relaxed", "straight-through"):
            return make_discrete(
                mode,
                temperature=self.temperature,
                min_temperature=self.min_temperature,
                decay_rate=self.decay_rate,
            )
        return make_discrete(mode)

    _chosen_from_data = ("discrete_",)

    def _choose_from_data(self, X: torch.Tensor) -> dict[str, Any]:
        # the mode's name (plain data, saved with the model); None for a strategy instance
        mode = resolve_discrete(self.discrete, len(X))
        return {"discrete_": mode if isinstance(mode, str) else None}

    def _build(self, x_dim: int, discrete_: str | None = None) -> GMVAEModule:
        return GMVAEModule(
            x_dim,
            self.n_clusters,
            self.latent_dim,
            tuple(self.hidden_dims),
            likelihood=self.likelihood,
            discrete=self._make_discrete(discrete_ or self.discrete),
            prior=self._make_prior(x_dim, self.n_clusters),
            z_guide=self.z_guide,
        )

    def _restore_fitted(self, fitted: dict[str, Any]) -> None:
        super()._restore_fitted(fitted)
        if "discrete_" not in fitted:  # a file from before "auto": the parameter is the mode
            self.discrete_ = self.discrete if isinstance(self.discrete, str) else None

    def predict_proba(self, X) -> np.ndarray:
        """q(y | x): the posterior probability of each cluster, shape (N, K), rows sum to 1."""
        return super().predict_proba(X)

    @torch.no_grad()
    def sample(
        self, n_samples: int = 1, cluster: int | None = None, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` from the model: y ~ p(y) (or fixed to ``cluster``),
        z ~ p(z | y), and the mean of p(x | z). Returns ``(X, clusters)`` like scikit-learn.
        With ``seed`` the draws come from a generator of their own (the caller's random state is
        left alone); without, from torch's global one."""
        self._check_fitted()
        return self._sample(
            n_samples, cluster, seed, self.module_.prior.y_logits(), self.module_.generate
        )
