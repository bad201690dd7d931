"""Every supported combination of prior, treatment of y and z-guide, by name, and the
combinations that are refused with the reason. The tests fit each one; the priors-and-guides
benchmark, the tutorial and the command line build models through it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .components.guides import Z_GUIDES
from .components.priors import PRIORS
from .estimators import GMVAE, VAE, LatentEstimator

DISCRETE = ("enumerate", "relaxed", "straight-through", "score-function")
UNSUPPORTED = {
    ("vamp", "flow"): "VampPrior needs a Gaussian z-guide to form its mixture",
}


def model_for(prior: str) -> type[LatentEstimator]:
    """The estimator a named prior belongs to: GMVAE for priors with a y, VAE otherwise."""
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
    return GMVAE if PRIORS[prior][0] else VAE


@dataclass
class Combination:
    """One way to build a model: the prior, the treatment of y (None without y), the z-guide."""

    prior: str
    discrete: str | None
    z_guide: str

    @property
    def name(self) -> str:
        return " / ".join(p for p in (self.prior, self.discrete, self.z_guide) if p)

    @property
    def supported(self) -> bool:
        return (self.prior, self.z_guide) not in UNSUPPORTED

    def build(self, n_clusters: int = 10, **options: Any) -> LatentEstimator:
        """The estimator for this combination with ``n_clusters`` clusters (a GMVAE) or mixture
        components (the ``mixture-marginal`` prior); ``options`` are other constructor
        arguments. Unsupported combinations raise a ``ValueError`` that says why."""
        if not self.supported:
            reason = UNSUPPORTED[self.prior, self.z_guide]
            raise ValueError(f"{self.name} is not supported: {reason}")
        model = model_for(self.prior)
        if (model is GMVAE) != (self.discrete is not None):
            kind = "has a y: choose" if model is GMVAE else "has no y: give no"
            raise ValueError(
                f"the {self.prior} prior {kind} treatment of y (one of {', '.join(DISCRETE)})"
            )
        kwargs = dict(options, prior=self.prior, z_guide=self.z_guide)
        if model is GMVAE:
            kwargs.update(n_clusters=n_clusters, discrete=self.discrete)
        elif self.prior == "mixture-marginal":
            kwargs.update(n_components=n_clusters)
        return model(**kwargs)


def combinations(include_unsupported: bool = False) -> Iterator[Combination]:
    """All combinations: GMVAE priors x treatments of y x z-guides, VAE priors x z-guides."""
    for prior, (has_y, _) in PRIORS.items():
        for discrete in DISCRETE if has_y else (None,):
            for z_guide in Z_GUIDES:
                combo = Combination(prior, discrete, z_guide)
                if combo.supported or include_unsupported:
                    yield combo
