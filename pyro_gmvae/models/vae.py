"""The plain VAE and the deterministic autoencoder: the baselines, built from the same parts."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.nn import PyroModule
from torch import nn

from ..components import Likelihood, StandardNormalPrior, make_likelihood
from ..components.guides import GuideFactory, make_z_guide
from ..nets import mlp, xavier_init_
from .posterior import kl_or_estimate


class VAEModule(PyroModule):
    r"""Variational autoencoder.

    Generative process, for each data point::

        z ~ p(z)                   (``prior``: N(0, I) by default; any prior without y)
        x | z ~ p(x | decoder(z))  (``likelihood``)

    Guide: q(z | x) (``z_guide``: diagonal Gaussian by default).
    """

    def __init__(
        self,
        x_dim: int,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        likelihood: str | Likelihood = "bernoulli",
        prior: nn.Module | None = None,
        z_guide: str | GuideFactory = "diagonal",
    ) -> None:
        super().__init__()
        hidden_dims = list(hidden_dims)
        self.x_dim, self.latent_dim, self.n_clusters = x_dim, latent_dim, None
        self.likelihood = make_likelihood(likelihood)
        self.prior = prior if prior is not None else StandardNormalPrior(latent_dim)
        if getattr(self.prior, "n_clusters", None) is not None:
            raise ValueError(
                f"{type(self.prior).__name__} is conditioned on a discrete y; a VAE has no y "
                "(use GMVAE for such a prior)"
            )
        self.z_encoder = make_z_guide(z_guide, x_dim, 0, hidden_dims, latent_dim)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), self.likelihood.setup(x_dim)])
        xavier_init_(self.decoder)  # only the network built here (guides start themselves)
        if hasattr(self.prior, "bind"):  # priors built from the guide (VampPrior)
            self.prior.bind(self.z_encoder)

    def elbo(self) -> ELBO:
        return TraceMeanField_ELBO()  # analytic KL(q(z|x) || p(z)) where one is registered

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior())
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def q_z(self, x: torch.Tensor) -> dist.Distribution:
        return self.z_encoder.distribution(x)

    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.q_z(x))

    def latent_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.z_encoder.point(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.likelihood.mean(self.decoder(self.latent_mean(x)))

    def generate(self, n: int) -> torch.Tensor:
        z = self.prior.marginal().sample((n,))
        return self.likelihood.mean(self.decoder(z))

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-point ``reconstruction`` = E_q[-log p(x|z)] and ``kl_z`` = KL(q(z|x) || p(z))
        (analytic when torch knows it, else a one-sample estimate)."""
        q_z = self.q_z(x)
        z = q_z.rsample()
        return {
            "reconstruction": -self.likelihood(self.decoder(z)).log_prob(x),
            "kl_z": kl_or_estimate(q_z, self.prior.marginal(), z),
        }

    def sample_posterior(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws z ~ q(z | x) per point, shape (n, N, D), and their log q(z | x)."""
        q_z = self.q_z(x)
        z = q_z.rsample((n,))
        return z, q_z.log_prob(z)


class AEModule(VAEModule):
    r"""Deterministic autoencoder, written as a Pyro pair so that it trains with the same engine.

    The guide puts a point mass at z = m(x) and the prior's term is masked out, so the ELBO
    reduces to the reconstruction log-likelihood log p(x | decoder(m(x))).
    Sampling decodes z ~ N(0, I); an AE makes no promise that such codes look like data.
    """

    def elbo(self) -> ELBO:
        return Trace_ELBO()

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior().mask(False))  # the prior adds nothing
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def q_z(self, x: torch.Tensor) -> dist.Distribution:
        return dist.Delta(self.latent_mean(x), event_dim=1)

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"reconstruction": -self.likelihood(self.decoder(self.latent_mean(x))).log_prob(x)}
