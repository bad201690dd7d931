"""Every supported combination of model, prior, guide for y and guide for z, by name, and the
combinations that are refused with the reason. The tests fit each one; the priors-and-guides
benchmark and tutorial compare them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .components import FixedMixturePrior, LearnedMixturePrior, MixturePrior, VampPrior
from .estimator import AE, GMVAE, VAE, LatentEstimator

Y_GUIDES = ("enumerate", "relaxed", "straight-through", "score-function")
Z_GUIDES = ("diagonal", "low-rank", "full", "flow")


def fixed_mixture(n_clusters: int, latent_dim: int, seed: int = 0) -> FixedMixturePrior:
    """A fixed, well-separated mixture: means drawn from N(0, 3^2 I), unit variances."""
    g = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.randn(n_clusters, latent_dim, generator=g)
    return FixedMixturePrior(means, torch.ones(n_clusters, latent_dim))


# prior name -> (model, factory(n_clusters, latent_dim, x_dim))
PRIORS: dict[str, tuple[type[LatentEstimator], Callable[[int, int, int], Any]]] = {
    "standard-normal": (VAE, lambda K, D, x_dim: None),
    "mixture-marginal": (VAE, lambda K, D, x_dim: MixturePrior(K, D)),
    "vamp": (VAE, lambda K, D, x_dim: VampPrior(50, x_dim, D)),
    "learned-mixture": (GMVAE, lambda K, D, x_dim: LearnedMixturePrior(K, D)),
    "fixed-mixture": (GMVAE, lambda K, D, x_dim: fixed_mixture(K, D)),
}
UNSUPPORTED = {
    ("vamp", "flow"): "VampPrior needs a Gaussian z-guide to form its mixture",
}


def make_prior(name: str, n_clusters: int, latent_dim: int, x_dim: int, seed: int = 0) -> Any:
    """The catalogue's prior called ``name`` (None stands for the models' standard normal).
    Its random start (mixture means, pseudo-inputs) is drawn from ``seed``, so the same seed
    gives the same model whatever the global random state."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {', '.join(PRIORS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PRIORS[name][1](n_clusters, latent_dim, x_dim)


@dataclass
class Combination:
    """One way to build a model: the prior, the y-guide (None without y), the z-guide."""

    prior: str
    y_guide: str | None
    z_guide: str

    @property
    def name(self) -> str:
        parts = [self.prior, self.y_guide, self.z_guide]
        return " / ".join(p for p in parts if p)

    @property
    def supported(self) -> bool:
        return (self.prior, self.z_guide) not in UNSUPPORTED

    def build(self, x_dim: int, n_clusters: int = 10, **options: Any) -> LatentEstimator:
        """The estimator for this combination; ``options`` are constructor arguments (a GMVAE
        starts at random unless they give ``init``). Unsupported combinations raise a
        ``ValueError`` that says why."""
        if not self.supported:
            reason = UNSUPPORTED[self.prior, self.z_guide]
            raise ValueError(f"{self.name} is not supported: {reason}")
        model = PRIORS[self.prior][0]
        if (model is GMVAE) != (self.y_guide is not None):
            kind = "has a y: choose a y-guide" if model is GMVAE else "has no y: give no y-guide"
            raise ValueError(f"the {self.prior} prior {kind} (one of {', '.join(Y_GUIDES)})")
        latent_dim, seed = options.get("latent_dim", 64), options.get("seed", 0)
        prior = make_prior(self.prior, n_clusters, latent_dim, x_dim, seed)
        kwargs = dict(options, prior=prior, z_guide=self.z_guide)
        if model is GMVAE:
            kwargs.update(n_clusters=n_clusters, discrete=self.y_guide)
            kwargs.setdefault("init", "random")
        return model(**kwargs)


def combinations(include_unsupported: bool = False) -> Iterator[Combination]:
    """All combinations: GMVAE priors x y-guides x z-guides, VAE priors x z-guides."""
    for prior, (model, _) in PRIORS.items():
        for y_guide in Y_GUIDES if model is GMVAE else (None,):
            for z_guide in Z_GUIDES:
                combo = Combination(prior, y_guide, z_guide)
                if combo.supported or include_unsupported:
                    yield combo


def autoencoder(**options: Any) -> AE:
    """The deterministic autoencoder baseline (no prior, no guide to choose)."""
    return AE(**options)
