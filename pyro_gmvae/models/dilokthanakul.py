r"""Dilokthanakul et al.'s Gaussian-mixture VAE (arXiv 1611.02648) as a Pyro model/guide pair.

Generative process, for each data point::

    w ~ N(0, I)                                   (the "noise" latent, ``w_dim``)
    y ~ Cat(1/K)                                  (the cluster)
    z | w, y ~ N(mu_y(w), diag sigma_y(w)^2)      (K prior networks on a shared trunk)
    x | z ~ p(x | decoder(z))                     (``likelihood``)

Guide: q(w | x) q(z | x), diagonal Gaussians from one encoder trunk (linear, batch norm, ReLU
per hidden layer, as in the paper's code). y needs no guide: given (w, z) its posterior is
closed-form, r_k(w, z) = p(y = k | w, z) = softmax_k[log N(z | mu_k(w), sigma_k(w))] (the
prior on y is uniform). A point's cluster posterior is E_q(z | x)[r(E_q[w], z)].

Two objectives fit it:

* ``model`` / ``guide`` with ``TraceEnum_ELBO``: y enumerated in the model, i.e. the exact ELBO
  with the optimal q(y | w, z) = r(w, z) (what ``score`` reports);
* :meth:`DilokthanakulModule.loss`, the paper's bound, per point and averaged over M draws of
  (w, z) ~ q:
  reconstruction E[-log p(x | z)], the conditional prior term
  E[sum_k r_k KL(q(z | x) || p(z | w, y = k))] (the Gaussian KL analytic, r at the drawn w, z),
  KL(q(w | x) || N(0, I)) (analytic), and the y-prior term E[KL(r(w, z) || Cat(1/K))], the last
  thresholded: max(lambda, its batch mean) (Kingma et al.'s free bits), so that it pushes the
  cluster posterior toward uniform only once it carries more than lambda nats. The paper calls
  this last one the "z-prior term" (its z is this y). Without the threshold the four terms
  are the paper's objective, which is not the ELBO: r at the drawn z weights the analytic KL
  over z.

This follows the paper's text, as does the ``version2`` branch of the authors' released code
(r from the prior densities at the drawn z, the r-weighted analytic KL over z, the y-prior term
counted only above lambda = 0.5). Their ``master`` branch differs: it adds a recognition
network q(y | x), weights the conditional prior term by it, penalises the entropy of r instead
of thresholding, and uses a convolutional network for MNIST. What still differs from
``version2``: the prior heads' start (there Torch's default initialisation with
log-variances; here 0.01 of Xavier scale with softplus variances, see below).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO, TraceEnum_ELBO
from pyro.nn import PyroModule
from pyro.ops.indexing import Vindex
from torch import nn
from torch.distributions import kl_divergence
from torch.nn import functional as F

from ..components import Likelihood, make_likelihood
from ..nets import GaussianHead, mlp, xavier_init_

PRIOR_HEAD_INIT_SCALE = 0.01  # the prior heads' weights, relative to Xavier's


class DilokthanakulModule(PyroModule):
    """The model/guide pair and the paper's bound (see the module's docstring)."""

    # the paper's terms add up to its bound, not to the ELBO: r at the drawn z weights the KL
    # over z, so they equal the ELBO only while r does not depend on z
    terms_total = "paper_bound"

    def __init__(
        self,
        x_dim: int,
        n_clusters: int = 10,
        latent_dim: int = 200,
        w_dim: int = 150,
        hidden_dims: Sequence[int] = (500, 500),
        likelihood: str | Likelihood = "bernoulli",
        n_samples: int = 1,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        hidden_dims = list(hidden_dims)
        self.x_dim, self.n_clusters = x_dim, n_clusters
        self.latent_dim, self.w_dim = latent_dim, w_dim
        self.n_samples, self.threshold = n_samples, threshold
        self.likelihood = make_likelihood(likelihood)
        sizes = [x_dim, *hidden_dims]
        self.encoder = nn.Sequential(
            *(layer for i, o in zip(sizes[:-1], sizes[1:], strict=True)
              for layer in (nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU()))
        )  # fmt: skip
        self.q_z_head = GaussianHead(hidden_dims[-1], latent_dim)
        self.q_w_head = GaussianHead(hidden_dims[-1], w_dim)
        # p(z | w, y = k) for every k: one trunk, K heads (as one linear layer each for the
        # means and variances)
        self.prior_trunk = nn.Sequential(nn.Linear(w_dim, hidden_dims[-1]), nn.Tanh())
        self.prior_head = GaussianHead(hidden_dims[-1], n_clusters * latent_dim)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), self.likelihood.setup(x_dim)])
        xavier_init_(self)
        # The K components start almost equal, so r starts near uniform and the y-prior term
        # below lambda, as in the paper's account of training. At Xavier scale they differ by
        # tens of nats over 200 dimensions, one of them takes every point in the first epoch
        # and the rest never get a gradient again (measured on MNIST-test: ACC 0.114, one
        # cluster, after 30 epochs for two seeds).
        with torch.no_grad():
            self.prior_head.loc.weight.mul_(PRIOR_HEAD_INIT_SCALE)
            self.prior_head.var.weight.mul_(PRIOR_HEAD_INIT_SCALE)

    # ----------------------------------------------------------------- distributions
    def q(self, x: torch.Tensor) -> tuple[dist.Distribution, dist.Distribution]:
        """q(w | x) and q(z | x), from one pass of the encoder (so that batch norm sees each
        batch once)."""
        h = self.encoder(x)
        (w_loc, w_var), (z_loc, z_var) = self.q_w_head(h), self.q_z_head(h)
        return (
            dist.Normal(w_loc, w_var.sqrt()).to_event(1),
            dist.Normal(z_loc, z_var.sqrt()).to_event(1),
        )

    def prior_z(self, w: torch.Tensor) -> dist.Distribution:
        """p(z | w, y = k) for every k: batch (..., K), event (latent_dim,)."""
        loc, var = self.prior_head(self.prior_trunk(w))
        shape = (*w.shape[:-1], self.n_clusters, self.latent_dim)
        return dist.Normal(loc.reshape(shape), var.sqrt().reshape(shape)).to_event(1)

    @staticmethod
    def cluster_log_posterior(p_z: dist.Distribution, z: torch.Tensor) -> torch.Tensor:
        """log r_k(w, z) = log p(y = k | w, z), (..., K), from ``p_z = prior_z(w)``: the prior
        on y is uniform, so this is the softmax of log N(z | mu_k(w), sigma_k(w)) over k."""
        return F.log_softmax(p_z.log_prob(z.unsqueeze(-2)), -1)

    # ----------------------------------------------------------------- model and guide
    def elbo(self) -> ELBO:
        """The exact ELBO with y summed out in the model."""
        return TraceEnum_ELBO(max_plate_nesting=1)

    def model(self, x: torch.Tensor) -> None:
        N = x.shape[0]
        with pyro.plate("data", N):
            w = pyro.sample("w", dist.Normal(x.new_zeros(N, self.w_dim), 1.0).to_event(1))
            y = pyro.sample(
                "y",
                dist.Categorical(logits=x.new_zeros(N, self.n_clusters)),
                infer={"enumerate": "parallel"},
            )
            p_z = self.prior_z(w)
            loc = Vindex(p_z.base_dist.loc)[torch.arange(N), y]
            scale = Vindex(p_z.base_dist.scale)[torch.arange(N), y]
            z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            q_w, q_z = self.q(x)
            pyro.sample("w", q_w)
            pyro.sample("z", q_z)

    # ----------------------------------------------------------------- the paper's bound
    def elbo_terms(self, x: torch.Tensor, n_samples: int | None = None) -> dict:
        """The paper's four terms per point (nats, averaged over M draws of (w, z)):
        ``reconstruction``, ``conditional_prior``, ``kl_w`` and ``y_prior`` (before the
        threshold); without the threshold their sum is the negative of the paper's bound. That
        is not the ELBO (see :meth:`log_importance_weights`): r at the drawn z weights the
        analytic KL over z, which equals E_z[sum_k r_k (log q(z) - log p(z | w, k))] only
        while r does not depend on z."""
        M = n_samples or self.n_samples
        q_w, q_z = self.q(x)
        w, z = q_w.rsample((M,)), q_z.rsample((M,))  # (M, N, .)
        reconstruction = -self.likelihood(self.decoder(z)).log_prob(x).mean(0)
        p_z = self.prior_z(w)  # batch (M, N, K)
        log_r = self.cluster_log_posterior(p_z, z)
        r = log_r.exp()
        q = dist.Normal(q_z.base_dist.loc.unsqueeze(-2), q_z.base_dist.scale.unsqueeze(-2))
        kl_z = kl_divergence(q.to_event(1), p_z)  # (M, N, K): analytic per cluster
        return {
            "reconstruction": reconstruction,
            "conditional_prior": (r * kl_z).sum(-1).mean(0),
            "kl_w": kl_divergence(q_w, dist.Normal(torch.zeros_like(w[0]), 1.0).to_event(1)),
            "y_prior": (r * (log_r + math.log(self.n_clusters))).sum(-1).mean(0),
        }

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss per point: the negative bound with the y-prior term thresholded,
        max(lambda, its batch mean)."""
        terms = self.elbo_terms(x)
        rest = (terms["reconstruction"] + terms["conditional_prior"] + terms["kl_w"]).mean()
        return rest + terms["y_prior"].mean().clamp_min(self.threshold)

    # ----------------------------------------------------------------- posteriors
    @torch.no_grad()
    def cluster_probs(self, x: torch.Tensor, n_draws: int = 32, seed: int = 0) -> torch.Tensor:
        """q(y | x) = E_q(z | x)[p(y | w, z)] at w = E_q[w] (N, K), by ``n_draws`` draws of z.

        The draws matter: at z's mean alone, the component of smallest scale wins wherever the
        means are close. w stays at its mean because the K prior networks then run once, not
        once per draw. The standard-normal noise of the draws comes from a generator of its
        own, seeded by ``seed``, and is the same for every point, so a point's probabilities
        depend on that point alone, not on the batch it is in; the global random state is
        left alone."""
        q_w, q_z = self.q(x)
        p_z = self.prior_z(q_w.mean).base_dist  # batch (N, K), event D
        generator = torch.Generator(x.device).manual_seed(seed)
        noise = torch.randn((n_draws, 1, self.latent_dim), generator=generator, device=x.device)
        z = (q_z.base_dist.loc + q_z.base_dist.scale * noise).double()  # (S, N, D)
        # sum_d (z - mu)^2 / sigma^2, expanded so that no (S, N, K, D) array is made; in double
        # precision, as the expanded terms cancel
        precision = p_z.scale.double().pow(-2)  # (N, K, D)
        mu = p_z.loc.double()
        quadratic = (
            torch.einsum("snd,nkd->snk", z.square(), precision)
            - 2 * torch.einsum("snd,nkd->snk", z, mu * precision)
            + (mu.square() * precision).sum(-1)
        )
        log_density = -0.5 * quadratic - p_z.scale.double().log().sum(-1)
        return torch.softmax(log_density, -1).mean(0).to(x.dtype)

    def log_importance_weights(self, x: torch.Tensor, n_draws: int) -> torch.Tensor:
        """log p(x, w, z) - log q(w, z | x) for ``n_draws`` draws (w, z) ~ q per point, with y
        summed out in p(z | w) = sum_k p(k) N(z | mu_k(w), sigma_k(w)); shape (n_draws, N).
        Their mean estimates the ELBO, their log-mean-exp log p(x) (Burda et al., 2016)."""
        q_w, q_z = self.q(x)
        w, z = q_w.sample((n_draws,)), q_z.sample((n_draws,))
        log_p_z = torch.logsumexp(self.prior_z(w).log_prob(z.unsqueeze(-2)), -1)
        log_p_z = log_p_z - math.log(self.n_clusters)
        log_p_w = dist.Normal(torch.zeros_like(w), 1.0).to_event(1).log_prob(w)
        log_p_x = self.likelihood(self.decoder(z)).log_prob(x)
        return log_p_x + log_p_w + log_p_z - q_w.log_prob(w) - q_z.log_prob(z)

    def latent_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x)[1].mean

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.likelihood.mean(self.decoder(self.q(x)[1].mean))

    def generate(self, clusters: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of p(x | z) for z ~ p(z | w, y) with the given clusters; w ~ N(0, I) unless
        given (one row per sample: the same w under several clusters shows what the cluster
        decides and what w does)."""
        if w is None:
            w = torch.randn(len(clusters), self.w_dim, device=clusters.device)
        p_z = self.prior_z(w)
        index = torch.arange(len(clusters), device=clusters.device)
        loc, scale = p_z.base_dist.loc[index, clusters], p_z.base_dist.scale[index, clusters]
        z = dist.Normal(loc, scale).sample()
        return self.likelihood.mean(self.decoder(z))
