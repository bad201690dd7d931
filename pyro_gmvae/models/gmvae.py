"""The Gaussian-mixture VAE (Rui Shu's model) as a Pyro model/guide pair."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from ..components import DiscreteStrategy, Likelihood, make_discrete, make_likelihood
from ..components.guides import GuideFactory, make_z_guide
from ..components.priors import LearnedMixturePrior
from ..nets import mlp, xavier_init_
from .posterior import kl_or_estimate


class GMVAEModule(PyroModule):
    r"""Gaussian-mixture VAE.

    Generative process, for each data point::

        y ~ Categorical(p(y))                     (one-hot, K clusters; uniform by default)
        z | y ~ N(mu(y), diag(var(y)))            (``prior``, learned per cluster by default)
        x | z ~ p(x | decoder(z))                 (``likelihood``, Bernoulli by default)

    Guide: q(y | x) = Categorical(softmax(f(x))), q(z | x, y) (``z_guide``, diagonal Gaussian by
    default). How y is handled (exact enumeration, a relaxed sample, a score-function estimator)
    is the ``discrete`` strategy; prior, guide and likelihood are components too, so swapping
    one is a constructor argument.
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
        z_guide: str | GuideFactory = "diagonal",
    ) -> None:
        super().__init__()
        hidden_dims = list(hidden_dims)
        self.x_dim, self.n_clusters, self.latent_dim = x_dim, n_clusters, latent_dim
        self.likelihood = make_likelihood(likelihood)
        self.discrete = make_discrete(discrete)
        self.prior = prior if prior is not None else LearnedMixturePrior(n_clusters, latent_dim)
        if getattr(self.prior, "n_clusters", None) != n_clusters:
            raise ValueError(
                f"a GMVAE with {n_clusters} clusters needs a prior conditioned on a y with "
                f"{n_clusters} values; {type(self.prior).__name__} has "
                f"n_clusters={getattr(self.prior, 'n_clusters', None)} (use VAE for priors "
                "without y)"
            )
        self.y_encoder = mlp([x_dim, *hidden_dims, n_clusters])
        self.z_encoder = make_z_guide(z_guide, x_dim, n_clusters, hidden_dims, latent_dim)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), self.likelihood.setup(x_dim)])
        # only the networks built here: a prior or guide passed in keeps its parameters
        xavier_init_(self.y_encoder)
        xavier_init_(self.decoder)

    # ----------------------------------------------------------------- model and guide
    def elbo(self) -> ELBO:
        """The ELBO that fits this pair: the discrete strategy's choice."""
        return self.discrete.elbo()

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            y = self.discrete.model_sample("y", self.prior.y_logits().to(x))
            z = pyro.sample("z", self.prior(y))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            y = self.discrete.guide_sample("y", self.y_encoder(x))
            pyro.sample("z", self.z_encoder.distribution(x, y))

    # ----------------------------------------------------------------- amortized posteriors
    def cluster_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(y | x), shape (N, K)."""
        return F.softmax(self.y_encoder(x), dim=-1)

    def _all_clusters(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot codes of every cluster, shaped (K, 1, K) to broadcast against a batch."""
        return torch.eye(self.n_clusters, device=x.device, dtype=x.dtype).unsqueeze(1)

    def latent_mean(self, x: torch.Tensor) -> torch.Tensor:
        """sum_y q(y|x) point(x, y), shape (N, D): E_q[z | x] for Gaussian guides."""
        points = self.z_encoder.point(x, self._all_clusters(x))  # (K, N, D)
        return torch.einsum("nk,knd->nd", self.cluster_probs(x), points)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z) at z = point(x, y*), with y* the most probable cluster."""
        y = F.one_hot(self.y_encoder(x).argmax(-1), self.n_clusters).to(x.dtype)
        return self.likelihood.mean(self.decoder(self.z_encoder.point(x, y)))

    def generate(self, clusters: torch.Tensor) -> torch.Tensor:
        """Draw z ~ p(z | y) for the given cluster indices and return the mean of p(x | z)."""
        y = F.one_hot(clusters, self.n_clusters).to(self.decoder[0].weight.dtype)
        z = self.prior(y).sample()
        return self.likelihood.mean(self.decoder(z))

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-point ELBO terms, exact in y, one reparameterized z per cluster, KL(z) analytic
        where torch has it.

        Returns ``reconstruction`` = E_q[-log p(x|z)], ``kl_z`` = E_q(y)[KL(q(z|x,y)||p(z|y))],
        ``kl_y`` = KL(q(y|x)||p(y)); the negative ELBO is their sum. Valid for models trained in
        any discrete mode, since the generative model is the same.
        """
        log_q_y = F.log_softmax(self.y_encoder(x), -1)  # (N, K)
        probs = log_q_y.exp()
        y = self._all_clusters(x)
        q_z = self.z_encoder.distribution(x, y)  # batch (K, N)
        z = q_z.rsample()
        log_lik = self.likelihood(self.decoder(z)).log_prob(x)  # (K, N)
        kl_z = kl_or_estimate(q_z, self.prior(y), z)  # (K, N)
        log_p_y = F.log_softmax(self.prior.y_logits().to(x), -1)
        kl_y = (probs * (log_q_y - log_p_y)).sum(-1)
        return {
            "reconstruction": -(probs * log_lik.T).sum(-1),
            "kl_z": (probs * kl_z.T).sum(-1),
            "kl_y": kl_y,
        }

    def sample_posterior(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws z ~ q(z | x) = sum_y q(y|x) q(z|x,y) per point, shape (n, N, D), and
        log q(z | x) with y summed out."""
        log_q_y = F.log_softmax(self.y_encoder(x), -1)  # (N, K)
        components = self.z_encoder.distribution(x, self._all_clusters(x))  # batch (K, N)
        y = dist.Categorical(logits=log_q_y).sample((n,))  # (n, N)
        every = components.sample((n,))  # (n, K, N, D): one draw per cluster, keep q's choice
        index = y[:, None, :, None].expand(n, 1, x.shape[0], every.shape[-1])
        z = every.gather(1, index).squeeze(1)
        log_q = torch.logsumexp(components.log_prob(z.unsqueeze(1)) + log_q_y.T, dim=1)
        return z, log_q
