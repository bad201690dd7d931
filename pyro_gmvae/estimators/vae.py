"""``VAE``: the variational autoencoder (the baseline, and VaDE-style or VampPrior priors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..models import VAEModule
from ..pretrain import pretrain_mixture_prior
from ..training import local_seed
from .base import COMMON_DOC, LatentEstimator, base_params, check_positive_int

# components of a named prior when n_components is not given
DEFAULT_COMPONENTS = {"mixture-marginal": 10, "vamp": 50}


class VAE(LatentEstimator):
    __doc__ = (
        """Variational autoencoder: z ~ p(z), x | z ~ p(x | decoder(z)), guide q(z | x).

    Parameters
    ----------
    prior : a prior without a discrete y: ``"standard-normal"`` (default), ``"mixture-marginal"``
        (VaDE's learned Gaussian mixture, y summed out inside the prior), ``"vamp"`` (VampPrior),
        or a module (copied; e.g. ``MixturePrior(K, latent_dim)``). Named priors draw their
        random start from ``seed``.
    n_components : components of the ``"mixture-marginal"`` prior (default 10) or pseudo-inputs
        of the ``"vamp"`` prior (default 50); only for those two.
    z_guide : ``"diagonal"``, ``"low-rank"``, ``"full"``, ``"flow"`` or a guide factory.
    init : ``"auto"`` (default) pre-trains the named ``"mixture-marginal"`` prior (VaDE's
        start: an autoencoder whose codes are clustered by t-SNE + a Gaussian mixture, see
        :func:`pyro_gmvae.pretrain.pretrain_mixture_prior`) and starts every other prior as it is
        (a module passed in keeps its components); ``"pretrain"`` or ``"random"`` choose.
    pretrain_epochs : epochs of autoencoder pre-training.
    pretrain_embedding : ``"tsne"`` (default: what this model's benchmarks measured),
        ``"umap"`` or ``"auto"`` (t-SNE below 4,096 points, UMAP from there), see
        :func:`pyro_gmvae.pretrain.cluster_codes`.
    """
        + COMMON_DOC
    )

    _pretrain = staticmethod(pretrain_mixture_prior)

    def __init__(
        self,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        likelihood: Any = "bernoulli",
        prior: str | torch.nn.Module = "standard-normal",
        n_components: int | None = None,
        z_guide: Any = "diagonal",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        binarize: bool = False,
        init: str = "auto",
        pretrain_epochs: int = 15,
        pretrain_embedding: str = "tsne",
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = 1,
        strategy: Any = "auto",
        num_nodes: int = 1,
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        self.prior = prior
        self.n_components = n_components
        self.z_guide = z_guide
        self.init = init
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_embedding = pretrain_embedding
        super().__init__(**base_params(locals()))

    def _check_params(self) -> None:
        super()._check_params()
        self._check_prior()
        if self.n_components is not None:
            if self.prior not in DEFAULT_COMPONENTS:
                raise ValueError(
                    "n_components applies to the named priors "
                    f"{' and '.join(map(repr, DEFAULT_COMPONENTS))}, not to {self._prior_name()}"
                )
            check_positive_int("n_components", self.n_components)
        self._check_init()

    def _prior_name(self) -> str:
        return repr(self.prior) if isinstance(self.prior, str) else type(self.prior).__name__

    def _components(self) -> int | None:
        """How many components the prior has, when it is a mixture."""
        if isinstance(self.prior, str):
            if self.prior not in DEFAULT_COMPONENTS:
                return None
            return self.n_components or DEFAULT_COMPONENTS[self.prior]
        return getattr(self.prior, "n_components", None)

    def _placeable(self) -> bool:
        if isinstance(self.prior, str):
            return self.prior == "mixture-marginal"
        return hasattr(self.prior, "n_components") and hasattr(self.prior, "set_components")

    def _data(self, X, fitting: bool = False) -> torch.Tensor:
        X = super()._data(X, fitting)
        n_components = self._components()
        if fitting and self.prior != "vamp" and n_components and n_components > X.shape[0]:
            raise ValueError(
                f"the prior's {n_components} components are more than the number of samples "
                f"({X.shape[0]})"
            )
        return X

    def _build(self, x_dim: int) -> VAEModule:
        return VAEModule(
            x_dim,
            self.latent_dim,
            tuple(self.hidden_dims),
            likelihood=self.likelihood,
            prior=self._make_prior(x_dim, self._components() or 1),
            z_guide=self.z_guide,
        )

    @property
    def has_clusters(self) -> bool:
        """Whether ``predict`` / ``predict_proba`` apply: the fitted prior is a mixture."""
        self._check_fitted()
        return hasattr(self.module_.prior, "responsibilities")

    def predict_proba(self, X) -> np.ndarray:
        """p(y | z) at the latent mean, for mixture priors (``MixturePrior``)."""
        self._check_fitted()
        prior = self.module_.prior
        if not hasattr(prior, "responsibilities"):
            raise TypeError(f"{type(prior).__name__} has no clusters: use a MixturePrior")
        return self._batched(
            lambda x: prior.responsibilities(self.module_.latent_mean(x)), self._data(X)
        ).numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable mixture component of each sample (mixture priors only)."""
        return self.predict_proba(X).argmax(1)

    @torch.no_grad()
    def sample(self, n_samples: int = 1, seed: int | None = None) -> np.ndarray:
        """Draw ``n_samples`` from the model: z ~ p(z) and the mean of p(x | z). With ``seed``
        the draws come from a generator of their own; without, from torch's global one."""
        self._check_n_samples(n_samples)
        if seed is None:
            return self.module_.generate(n_samples).numpy()
        with local_seed(seed):
            return self.module_.generate(n_samples).numpy()
