"""The Gaussian-mixture VAE (Rui Shu's model) as a Pyro model/guide pair."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import kl_divergence
from torch.nn import functional as F

from ..components import DiscreteStrategy, Likelihood, make_discrete, make_likelihood
from ..components.priors import LearnedMixturePrior
from ..nets import ConditionalGaussianEncoder, mlp, xavier_init_


class GMVAEModule(PyroModule):
    r"""Gaussian-mixture VAE.

    Generative process, for each data point::

        y ~ Categorical(1/K)                      (one-hot, K clusters)
        z | y ~ N(mu(y), diag(var(y)))            (``prior``, learned per cluster)
        x | z ~ p(x | decoder(z))                 (``likelihood``, Bernoulli by default)

    Guide: q(y | x) = Categorical(softmax(f(x))), q(z | x, y) = N(m(x, y), diag(v(x, y))).
    How y is handled (exact enumeration or a relaxed sample) is the ``discrete`` strategy; the
    prior and the likelihood are components too, so swapping one is a constructor argument.
    """

    def __init__(
        self,
        x_dim: int,
        n_clusters: int = 10,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        likelihood: str | Likelihood = "bernoulli",
        discrete: str | DiscreteStrategy = "enumerate",
        prior: nn.Module | None = None,
    ) -> None:
        super().__init__()
        hidden_dims = list(hidden_dims)
        self.x_dim, self.n_clusters, self.latent_dim = x_dim, n_clusters, latent_dim
        self.likelihood = make_likelihood(likelihood)
        self.discrete = make_discrete(discrete)
        self.prior = prior if prior is not None else LearnedMixturePrior(n_clusters, latent_dim)
        self.y_encoder = mlp([x_dim, *hidden_dims, n_clusters])
        self.z_encoder = ConditionalGaussianEncoder(x_dim, n_clusters, hidden_dims, latent_dim)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), self.likelihood.setup(x_dim)])
        xavier_init_(self)

    # ----------------------------------------------------------------- model and guide
    def elbo(self) -> ELBO:
        """The ELBO that fits this pair: the discrete strategy's choice."""
        return self.discrete.elbo()

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            y = self.discrete.model_sample("y", x.new_zeros(self.n_clusters))
            z = pyro.sample("z", self.prior(y))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            y = self.discrete.guide_sample("y", self.y_encoder(x))
            loc, var = self.z_encoder(x, y)
            pyro.sample("z", dist.Normal(loc, var.sqrt()).to_event(1))

    # ----------------------------------------------------------------- amortized posteriors
    def cluster_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(y | x), shape (N, K)."""
        return F.softmax(self.y_encoder(x), dim=-1)

    def _all_clusters(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot codes of every cluster, shaped (K, 1, K) to broadcast against a batch."""
        return torch.eye(self.n_clusters, device=x.device, dtype=x.dtype).unsqueeze(1)

    def latent_mean(self, x: torch.Tensor) -> torch.Tensor:
        """E_q[z | x] = sum_y q(y|x) m(x, y), shape (N, D)."""
        loc, _ = self.z_encoder(x, self._all_clusters(x))  # (K, N, D)
        return torch.einsum("nk,knd->nd", self.cluster_probs(x), loc)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z) at z = m(x, y*), with y* the most probable cluster."""
        y = F.one_hot(self.y_encoder(x).argmax(-1), self.n_clusters).to(x.dtype)
        loc, _ = self.z_encoder(x, y)
        return self.likelihood.mean(self.decoder(loc))

    def generate(self, clusters: torch.Tensor) -> torch.Tensor:
        """Draw z ~ p(z | y) for the given cluster indices and return the mean of p(x | z)."""
        y = F.one_hot(clusters, self.n_clusters).to(self.decoder[0].weight.dtype)
        z = self.prior(y).sample()
        return self.likelihood.mean(self.decoder(z))

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-point ELBO terms, exact in y, one reparameterized z per cluster, KL(z) analytic.

        Returns ``reconstruction`` = E_q[-log p(x|z)], ``kl_z`` = E_q(y)[KL(q(z|x,y)||p(z|y))],
        ``kl_y`` = KL(q(y|x)||p(y)); the negative ELBO is their sum. Valid for models trained in
        either discrete mode, since the generative model is the same.
        """
        probs = self.cluster_probs(x)  # (N, K)
        y = self._all_clusters(x)
        loc, var = self.z_encoder(x, y)  # (K, N, D)
        q_z = dist.Normal(loc, var.sqrt()).to_event(1)
        z = q_z.rsample()
        log_lik = self.likelihood(self.decoder(z)).log_prob(x)  # (K, N)
        kl_z = kl_divergence(q_z, self.prior(y))  # (K, N)
        log_probs = probs.clamp_min(1e-12).log()
        kl_y = (probs * (log_probs + torch.log(torch.tensor(float(self.n_clusters))))).sum(-1)
        return {
            "reconstruction": -(probs * log_lik.T).sum(-1),
            "kl_z": (probs * kl_z.T).sum(-1),
            "kl_y": kl_y,
        }

    def sample_posterior(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws z ~ q(z | x) = sum_y q(y|x) q(z|x,y) per point, shape (n, N, D), and
        log q(z | x) with y summed out."""
        log_q_y = F.log_softmax(self.y_encoder(x), -1)  # (N, K)
        loc, var = self.z_encoder(x, self._all_clusters(x))  # (K, N, D)
        components = dist.Normal(loc, var.sqrt()).to_event(1)  # batch (K, N)
        y = dist.Categorical(logits=log_q_y).sample((n,))  # (n, N)
        points = torch.arange(x.shape[0], device=x.device)
        z = loc[y, points] + var[y, points].sqrt() * torch.randn_like(loc[y, points])
        log_q = torch.logsumexp(components.log_prob(z.unsqueeze(1)) + log_q_y.T, dim=1)
        return z, log_q
