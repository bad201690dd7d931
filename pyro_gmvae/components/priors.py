"""Priors on the continuous latent z.

A prior is a module with ``n_clusters`` (the number of values of a discrete y it is conditioned
on, or ``None`` when the model has no y), ``forward(y)`` giving the distribution of z (given y
when there is one; one event of ``latent_dim`` values) and ``marginal()`` giving p(z) with y
summed out (used by importance-weighted likelihoods and by sampling); priors with a y also give
``y_logits()``, the logits of p(y). A user-defined prior only needs these; see
:class:`StandardNormalPrior` for the smallest example.

y reaches ``forward`` as floats, one-hot along the last axis: shape (K, 1, K) when y is
enumerated (one row per value, broadcast against the batch), (N, K) when it is sampled, and a
relaxed (soft) vector in the Gumbel-softmax modes. Priors that ``init="pretrain"`` can place also
have ``set_components(means, variances)`` ((K, D) each; a prior with ``full_covariance = True``
gets (K, D, D) covariances instead).

The built-in priors have names (:data:`PRIORS`); estimators take a name or a module, and build a
named prior from the fit's seed.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..nets import xavier_init_


def _inverse_softplus(value: torch.Tensor) -> torch.Tensor:
    """x such that softplus(x) == ``value`` (> 0)."""
    return value + torch.log(-torch.expm1(-value))


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I): the plain VAE's prior. No discrete y."""

    n_clusters = None

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("zero", torch.zeros(()))  # follows the module's device and dtype

    def forward(self, y: torch.Tensor | None = None) -> dist.Distribution:
        return dist.Normal(self.zero.expand(self.latent_dim), 1.0).to_event(1)

    def marginal(self) -> dist.Distribution:
        return self()


class _UniformLearnedPrior(nn.Module):
    """p(y) uniform over ``n_clusters`` values, p(z | y) from ``forward``; the learned priors'
    shared part (their means come from ``self.loc``, affine in onehot(y))."""

    def y_logits(self) -> torch.Tensor:
        """Logits of p(y): uniform."""
        return self.loc.weight.new_zeros(self.n_clusters)

    def marginal(self) -> dist.Distribution:
        eye = torch.eye(self.n_clusters, device=self.loc.weight.device)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.y_logits()), self(eye))


class LearnedMixturePrior(_UniformLearnedPrior):
    """p(z | y) = N(mu(y), diag(var(y))) with mu, var affine in onehot(y) (var through softplus),
    and p(y) uniform over ``n_clusters`` values.

    With a one-hot y each cluster gets its own learned mean and variance; with a relaxed
    (soft) y the parameters interpolate between clusters, as in the Gumbel-softmax GMVAE.
    """

    def __init__(self, n_clusters: int, latent_dim: int, min_var: float = 1e-6) -> None:
        super().__init__()
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.loc = nn.Linear(n_clusters, latent_dim)
        self.var = nn.Linear(n_clusters, latent_dim)
        self.min_var = min_var
        xavier_init_(self)  # the reference GMVAE's start

    def params(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of p(z | y) for a one-hot (or relaxed) y."""
        return self.loc(y), F.softplus(self.var(y)) + self.min_var

    @torch.no_grad()
    def set_components(self, means: torch.Tensor, variances: torch.Tensor) -> None:
        """Set cluster k's mean and variance to ``means[k]``, ``variances[k]`` (shape (K, D))."""
        self.loc.weight.copy_(means.T)
        self.loc.bias.zero_()
        # inverse softplus, so that softplus(weight) + min_var == variance
        target = (variances - self.min_var).clamp_min(1e-8)
        self.var.weight.copy_(_inverse_softplus(target).T)
        self.var.bias.zero_()

    def forward(self, y: torch.Tensor) -> dist.Distribution:
        loc, var = self.params(y)
        return dist.Normal(loc, var.sqrt()).to_event(1)


class LearnedFullMixturePrior(_UniformLearnedPrior):
    """p(z | y) = N(mu(y), L(y) L(y)^T) with full covariances: mu affine in onehot(y) and each
    cluster's lower-triangular factor L_k learned (its diagonal through softplus, plus
    ``sqrt(min_var)``), p(y) uniform over ``n_clusters`` values. A relaxed (soft) y mixes the
    means and the factors (a mixture of lower-triangular factors with positive diagonals is one).

    Full covariances let each cluster's Gaussian follow the shape of its codes, so the prior's
    clusters can be those pre-training found (the ELBO pulls q(y|x) towards the clusters the
    prior's Gaussians draw, and diagonal Gaussians in a large code space reassign many codes).
    Each log-density costs a triangular solve per cluster and point (O(K D^2) per point).
    """

    full_covariance = True  # pre-training hands set_components full covariances

    def __init__(self, n_clusters: int, latent_dim: int, min_var: float = 1e-6) -> None:
        super().__init__()
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.min_var = min_var
        self.loc = nn.Linear(n_clusters, latent_dim)
        xavier_init_(self)  # the means start as the diagonal prior's do
        # softplus(0.5413) = 1: every cluster starts as N(mu_k, I); the upper triangle is unused
        self.raw_tril = nn.Parameter(torch.eye(latent_dim).expand(n_clusters, -1, -1) * 0.5413)

    def scale_trils(self) -> torch.Tensor:
        """Each cluster's lower-triangular factor L_k, (K, D, D)."""
        diagonal = F.softplus(self.raw_tril.diagonal(dim1=-2, dim2=-1)) + self.min_var**0.5
        return self.raw_tril.tril(-1) + torch.diag_embed(diagonal)

    def params(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and lower-triangular factor of p(z | y) for a one-hot (or relaxed) y."""
        return self.loc(y), torch.einsum("...k,kij->...ij", y, self.scale_trils())

    @torch.no_grad()
    def set_components(self, means, covariances) -> None:
        """Set cluster k's mean to ``means[k]`` (K, D) and its covariance to ``covariances[k]``:
        (K, D, D) positive definite, or (K, D) positive variances."""
        K, D = self.n_clusters, self.latent_dim
        means = torch.as_tensor(means, dtype=self.loc.weight.dtype)
        covariances = torch.as_tensor(covariances, dtype=torch.float64)
        if covariances.shape == means.shape:
            covariances = torch.diag_embed(covariances)
        if means.shape != (K, D) or covariances.shape != (K, D, D):
            raise ValueError(
                f"expected means ({K}, {D}) and covariances ({K}, {D}, {D}) or ({K}, {D}); got "
                f"{tuple(means.shape)} and {tuple(covariances.shape)}"
            )
        eye = torch.eye(D, dtype=torch.float64, device=covariances.device)
        tril, info = torch.linalg.cholesky_ex(covariances + 1e-6 * eye)
        if (info != 0).any() or not torch.isfinite(means).all():
            raise ValueError("covariances must be positive definite and means finite")
        # inverse softplus of the diagonal, so that scale_trils() gives back tril
        target = (tril.diagonal(dim1=-2, dim2=-1) - self.min_var**0.5).clamp_min(1e-8)
        self.raw_tril.copy_(tril.tril(-1) + torch.diag_embed(_inverse_softplus(target)))
        self.loc.weight.copy_(means.T)
        self.loc.bias.zero_()

    def forward(self, y: torch.Tensor) -> dist.Distribution:
        loc, scale_tril = self.params(y)
        return dist.MultivariateNormal(loc, scale_tril=scale_tril)


class FixedMixturePrior(nn.Module):
    """p(y) = weights, p(z | y) = N(means[y], diag(variances[y])), all given as arrays and not
    trained (e.g. a Gaussian mixture fitted to a model's latents by Gibbs sampling)."""

    def __init__(self, means, variances, weights=None) -> None:
        super().__init__()
        means = torch.as_tensor(means, dtype=torch.float32)
        variances = torch.as_tensor(variances, dtype=torch.float32)
        if means.ndim != 2 or variances.shape != means.shape:
            raise ValueError(
                f"means and variances must both be (K, D); got {tuple(means.shape)}"
                f" and {tuple(variances.shape)}"
            )
        if not (variances > 0).all():
            raise ValueError("variances must be positive")
        K = means.shape[0]
        weights = (
            torch.full((K,), 1.0 / K)
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float32)
        )
        if weights.shape != (K,) or (weights < 0).any() or abs(float(weights.sum()) - 1) > 1e-4:
            raise ValueError(f"weights must be {K} non-negative numbers summing to 1")
        self.n_clusters, self.latent_dim = K, means.shape[1]
        self.register_buffer("means", means)
        self.register_buffer("variances", variances)
        self.register_buffer("log_weights", weights.clamp_min(1e-30).log())

    def y_logits(self) -> torch.Tensor:
        return self.log_weights

    def forward(self, y: torch.Tensor) -> dist.Distribution:
        return dist.Normal(y @ self.means, (y @ self.variances).sqrt()).to_event(1)

    def marginal(self) -> dist.Distribution:
        return dist.MixtureSameFamily(
            dist.Categorical(logits=self.log_weights),
            dist.Normal(self.means, self.variances.sqrt()).to_event(1),
        )


class GaussianMixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(mu_k, Sigma_k) with full covariances, all given (not trained): the
    prior a Gibbs-sampled GMM hands to a VAE. No discrete y in the model.

    With ``assignments`` (one cluster per training point) it is also a per-point prior:
    ``forward(index)`` gives z_n ~ N(mu_{c_n}, Sigma_{c_n}) for the points ``index``; without an
    index, or without assignments, it is the mixture. Its parameters are replaced in one step by
    :meth:`set_mixture`. Built by :meth:`standard_normal` it is N(0, I) itself (one Gaussian, so
    KL terms against it are analytic) until a mixture is set.
    """

    n_clusters = None

    def __init__(self, means, covariances, weights=None, assignments=None) -> None:
        super().__init__()
        K, D = torch.as_tensor(means).shape
        self.n_components, self.latent_dim = K, D
        self.register_buffer("means", torch.zeros(K, D))
        self.register_buffer("scale_tril", torch.eye(D).expand(K, D, D).clone())
        self.register_buffer("log_weights", torch.zeros(K))
        self.register_buffer("is_mixture", torch.tensor(True))
        # only meaningful for the data the mixture was fitted on: not saved with the weights
        self.register_buffer("assignments", torch.zeros(0, dtype=torch.long), persistent=False)
        self.set_mixture(means, covariances, weights, assignments)

    @classmethod
    def standard_normal(cls, n_components: int, latent_dim: int) -> GaussianMixturePrior:
        """N(0, I), with room for ``n_components`` Gaussians: the prior before any mixture is
        fitted."""
        prior = cls(
            torch.zeros(n_components, latent_dim),
            torch.eye(latent_dim).expand(n_components, -1, -1),
        )
        prior.is_mixture.fill_(False)
        return prior

    @torch.no_grad()
    def set_mixture(self, means, covariances, weights=None, assignments=None) -> None:
        """Replace the mixture: ``means`` (K, D), ``covariances`` (K, D, D) positive definite, or
        (K, D) diagonal ones, ``weights`` (K,) summing to 1 (equal when None), ``assignments``
        (N,) cluster indices of the training points (none when None)."""
        means = torch.as_tensor(means, dtype=torch.float32)
        covariances = torch.as_tensor(covariances, dtype=torch.float64)
        if covariances.shape == means.shape:  # diagonal covariances
            covariances = torch.diag_embed(covariances)
        K, D = self.n_components, self.latent_dim
        if means.shape != (K, D) or covariances.shape != (K, D, D):
            raise ValueError(
                f"expected means ({K}, {D}) and covariances ({K}, {D}, {D}); got "
                f"{tuple(means.shape)} and {tuple(covariances.shape)}"
            )
        scale_tril, info = torch.linalg.cholesky_ex(covariances)
        if (info != 0).any() or not torch.isfinite(means).all():
            raise ValueError("covariances must be positive definite and means finite")
        weights = torch.full((K,), 1.0 / K) if weights is None else torch.as_tensor(weights)
        weights = weights.to(torch.float32)
        if weights.shape != (K,) or (weights < 0).any() or abs(float(weights.sum()) - 1) > 1e-4:
            raise ValueError(f"weights must be {K} non-negative numbers summing to 1")
        self.means.copy_(means)
        self.scale_tril.copy_(scale_tril.float())
        self.log_weights.copy_(weights.clamp_min(1e-30).log())
        self.is_mixture.fill_(True)
        if assignments is None:
            self.assignments = self.means.new_zeros(0, dtype=torch.long)
        else:
            assignments = torch.as_tensor(assignments, dtype=torch.long)
            if assignments.ndim != 1 or ((assignments < 0) | (assignments >= K)).any():
                raise ValueError(f"assignments must be cluster indices in [0, {K})")
            self.assignments = assignments.to(self.means.device)

    def set_components(self, means, variances, weights=None) -> None:
        """Pre-training's hook (:func:`~pyro_gmvae.pretrain.pretrain_mixture_prior`): a mixture
        of Gaussians with diagonal ``variances`` (K, D) and no per-point assignments."""
        self.set_mixture(means, variances, weights)

    def components(self) -> dist.Distribution:
        return dist.MultivariateNormal(self.means, scale_tril=self.scale_tril)

    def forward(self, index: torch.Tensor | None = None) -> dist.Distribution:
        if index is None or len(self.assignments) == 0 or not self.is_mixture:
            return self.marginal()
        c = self.assignments[index]
        return dist.MultivariateNormal(self.means[c], scale_tril=self.scale_tril[c])

    def marginal(self) -> dist.Distribution:
        if not self.is_mixture:
            return dist.MultivariateNormal(self.means[0], scale_tril=self.scale_tril[0])
        return dist.MixtureSameFamily(dist.Categorical(logits=self.log_weights), self.components())

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """p(k | z) under the mixture, shape (N, K)."""
        joint = self.components().log_prob(z.unsqueeze(-2)) + self.log_weights
        return F.softmax(joint, -1)


class MixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(mu_k, diag(sigma_k^2)) with y summed out inside the prior (VaDE's
    prior), all parameters learned. The model itself has no y; ``responsibilities(z)`` gives
    p(y | z) for clustering. Variances are ``exp(2 * log_scales) + min_var``: the floor keeps a
    component from shrinking onto a single code."""

    n_clusters = None

    def __init__(self, n_components: int, latent_dim: int, min_var: float = 1e-6) -> None:
        super().__init__()
        self.n_components, self.latent_dim, self.min_var = n_components, latent_dim, min_var
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.means = nn.Parameter(torch.randn(n_components, latent_dim))
        self.log_scales = nn.Parameter(torch.zeros(n_components, latent_dim))

    @torch.no_grad()
    def set_components(
        self, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor | None = None
    ) -> None:
        """Set component k's mean, variance (shape (K, D)) and, if given, weight (shape (K,))."""
        self.means.copy_(means)
        self.log_scales.copy_(0.5 * (variances - self.min_var).clamp_min(1e-12).log())
        if weights is not None:
            self.logits.copy_(weights.log())

    def components(self) -> dist.Distribution:
        variances = (2 * self.log_scales).exp() + self.min_var
        return dist.Normal(self.means, variances.sqrt()).to_event(1)

    def forward(self, y: torch.Tensor | None = None) -> dist.Distribution:
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), self.components())

    def marginal(self) -> dist.Distribution:
        return self()

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """p(y = k | z), shape (N, K)."""
        joint = self.components().log_prob(z.unsqueeze(-2)) + F.log_softmax(self.logits, -1)
        return F.softmax(joint, -1)


class VampPrior(nn.Module):
    """p(z) = (1/P) sum_p q(z | u_p): the guide's own posterior at P learned pseudo-inputs
    (Tomczak and Welling, 2018). The model binds its z-guide with :meth:`bind`."""

    n_clusters = None

    def __init__(self, n_pseudo_inputs: int, x_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.pseudo_inputs = nn.Parameter(torch.rand(n_pseudo_inputs, x_dim) * 0.1 + 0.45)
        self._guide: list[nn.Module] = []  # a plain list: the guide is not a child module

    def bind(self, guide: nn.Module) -> None:
        if getattr(guide, "flows", None) is not None:
            raise ValueError(
                "VampPrior needs a Gaussian z-guide to form its mixture; a flow "
                "guide's components have no closed-form mixture here"
            )
        self._guide[:] = [guide]

    def forward(self, y: torch.Tensor | None = None) -> dist.Distribution:
        if not self._guide:
            raise RuntimeError("VampPrior is not bound to a guide: the model calls bind()")
        components = self._guide[0].distribution(self.pseudo_inputs)  # batch (P,)
        mixing = dist.Categorical(logits=self.pseudo_inputs.new_zeros(len(self.pseudo_inputs)))
        return dist.MixtureSameFamily(mixing, components)

    def marginal(self) -> dist.Distribution:
        return self()


def fixed_mixture(n_clusters: int, latent_dim: int) -> FixedMixturePrior:
    """A fixed, well-separated mixture: means drawn from N(0, 3^2 I), unit variances, equal
    weights (drawn from torch's random state: build it under a seed)."""
    means = 3.0 * torch.randn(n_clusters, latent_dim)
    return FixedMixturePrior(means, torch.ones(n_clusters, latent_dim))


# name -> (whether the prior has a y, factory(n_components, latent_dim, x_dim))
PRIORS: dict[str, tuple[bool, Callable[[int, int, int], nn.Module]]] = {
    "standard-normal": (False, lambda K, D, x_dim: StandardNormalPrior(D)),
    "mixture-marginal": (False, lambda K, D, x_dim: MixturePrior(K, D)),
    "vamp": (False, lambda K, D, x_dim: VampPrior(K, x_dim, D)),
    "learned-mixture": (True, lambda K, D, x_dim: LearnedMixturePrior(K, D)),
    "learned-full-mixture": (True, lambda K, D, x_dim: LearnedFullMixturePrior(K, D)),
    "fixed-mixture": (True, lambda K, D, x_dim: fixed_mixture(K, D)),
}


def make_prior(name: str, n_components: int, latent_dim: int, x_dim: int) -> nn.Module:
    """The built-in prior called ``name`` with ``n_components`` clusters, mixture components or
    (VampPrior) pseudo-inputs. Its random start (mixture means, pseudo-inputs) is drawn from
    torch's random state: estimators build it inside ``fit``, from the fit's seed."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {', '.join(PRIORS)}")
    return PRIORS[name][1](n_components, latent_dim, x_dim)
