"""Likelihoods p(x | decoder output)."""

from __future__ import annotations

import pyro.distributions as dist
import torch


class Likelihood:
    """Turns a decoder's output into a distribution over x (one event of ``x_dim`` values)."""

    name = "likelihood"

    def output_dim(self, x_dim: int) -> int:
        """How many numbers the decoder must output for data of ``x_dim`` features."""
        return x_dim

    def validate(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` when ``x`` lies outside this likelihood's support."""

    def __call__(self, out: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The mean of x given the decoder output (used for reconstructions and samples)."""
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    """x_i ~ Bernoulli(sigmoid(logit_i)), independent pixels.

    Grey levels in [0, 1] are accepted (the usual "continuous targets" cross-entropy), so the
    support check of Pyro's Bernoulli is switched off for this distribution only and replaced
    by :meth:`validate` at the public boundary.
    """

    name = "bernoulli"

    def validate(self, x: torch.Tensor) -> None:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                "the Bernoulli likelihood needs values in [0, 1]; the data spans "
                f"[{lo:g}, {hi:g}]. Scale the data (e.g. divide pixels by 255) or choose "
                "another likelihood."
            )

    def __call__(self, out: torch.Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=out, validate_args=False).to_event(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


LIKELIHOODS: dict[str, type[Likelihood]] = {"bernoulli": BernoulliLikelihood}


def make_likelihood(spec: str | Likelihood) -> Likelihood:
    """A likelihood from its name or an instance."""
    if isinstance(spec, Likelihood):
        return spec
    if spec not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {spec!r}; choose one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[spec]()
