"""Likelihoods p(x | decoder output)."""

from __future__ import annotations

import copy

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F


class Likelihood(nn.Module):
    """Turns a decoder's output into a distribution over x (one event of ``x_dim`` values).

    Subclasses set ``name`` and implement ``__call__`` (via ``forward``) and ``mean``; those with
    a bounded support override ``validate``; those with parameters create them in ``setup``,
    which the model calls once it knows ``x_dim``.
    """

    name = "likelihood"

    def setup(self, x_dim: int) -> int:
        """Create any parameters for ``x_dim`` features; return the decoder's output size."""
        return x_dim

    def validate(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` when ``x`` lies outside this likelihood's support. For data on
        disk (:class:`~pyro_gmvae.disk.DiskData`) ``x`` holds two rows, each feature's minimum
        and maximum, so that a check of the range reads the whole data without loading it."""

    def forward(self, out: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The mean of x given the decoder output (used for reconstructions and samples)."""
        raise NotImplementedError


def _check_unit_interval(x: torch.Tensor, name: str) -> None:
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"the {name} likelihood needs values in [0, 1]; the data spans "
            f"[{lo:g}, {hi:g}]. Scale the data (e.g. divide pixels by 255) or choose "
            "another likelihood."
        )


class BernoulliLikelihood(Likelihood):
    """x_i ~ Bernoulli(sigmoid(logit_i)), independent pixels.

    Grey levels in [0, 1] are accepted (the usual "continuous targets" cross-entropy), so the
    support check of Pyro's Bernoulli is switched off for this distribution only and replaced
    by :meth:`validate` at the public boundary. On grey levels the "log-likelihood" is that
    cross-entropy, not a normalised density: ELBOs and importance-weighted estimates are then
    not log-likelihoods, and cannot be set beside published (binarised-data) figures. Binarise
    (``binarize=True`` in training, one fixed binarisation for scoring) to get those.
    """

    name = "bernoulli"

    def validate(self, x: torch.Tensor) -> None:
        _check_unit_interval(x, "Bernoulli")

    def forward(self, out: torch.Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=out, validate_args=False).to_event(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class ContinuousBernoulliLikelihood(Likelihood):
    """x_i ~ ContinuousBernoulli(sigmoid(logit_i)): a normalised density on [0, 1] (Loaiza-Ganem
    and Cunningham, 2019), so grey levels get a proper likelihood."""

    name = "continuous-bernoulli"

    def validate(self, x: torch.Tensor) -> None:
        _check_unit_interval(x, "continuous Bernoulli")

    def forward(self, out: torch.Tensor) -> dist.Distribution:
        return dist.ContinuousBernoulli(logits=out, validate_args=False).to_event(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return dist.ContinuousBernoulli(logits=out).mean


class GaussianLikelihood(Likelihood):
    """x_i ~ N(mean_i, sigma_i^2) for real-valued data, with one learned scale per feature."""

    name = "gaussian"

    def __init__(self, min_scale: float = 1e-3) -> None:
        super().__init__()
        self.min_scale = min_scale

    def setup(self, x_dim: int) -> int:
        self.raw_scale = nn.Parameter(torch.zeros(x_dim))
        return x_dim

    def forward(self, out: torch.Tensor) -> dist.Distribution:
        return dist.Normal(out, F.softplus(self.raw_scale) + self.min_scale).to_event(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return out


LIKELIHOODS: dict[str, type[Likelihood]] = {
    cls.name: cls
    for cls in (BernoulliLikelihood, ContinuousBernoulliLikelihood, GaussianLikelihood)
}


def make_likelihood(spec: str | Likelihood) -> Likelihood:
    """A likelihood from its name, or a fresh copy of an instance (so fits never share it)."""
    if isinstance(spec, Likelihood):
        return copy.deepcopy(spec)
    if spec not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {spec!r}; choose one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[spec]()
