"""The conjugate pieces of a Bayesian Gaussian mixture, vectorized over chains and clusters.

Model (K components, D dimensions)::

    pi ~ Dirichlet(alpha0 * 1_K)
    full:  Lambda_k ~ Wishart(nu0, Psi0^-1)   (Sigma_k = Lambda_k^-1 ~ InvWishart(nu0, Psi0))
           mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1)
    diag:  lambda_kd ~ Gamma(nu0 / 2, rate=psi0_d / 2)  (the one-dimensional Wishart, per dimension)
           mu_kd | lambda_kd ~ N(m0_d, 1 / (beta0 lambda_kd))
    c_n ~ Categorical(pi),  z_n | c_n ~ N(mu_{c_n}, Lambda_{c_n}^-1)

Every function takes a leading batch of chains C and works on all K clusters at once: no Python
loop over points or clusters. Densities use the expanded quadratic form
``z^T Lambda z - 2 mu^T Lambda z + mu^T Lambda mu`` as one matrix product of the points'
features ``[1, z, upper-triangle of z z^T]`` (see :func:`features`) against each cluster's
coefficients; the sufficient statistics are each cluster's Gram matrix of ``[1, z]`` (see
:func:`statistics`). Everything runs in float64: float32 loses precision in the
near-singular draws and in the expanded form (the sampler's assignment step uses float32 only
where a bound on its rounding error allows, see
:func:`~pyro_gmvae.gmm.sampler.assignment_log_probs`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

COVARIANCE_TYPES = ("full", "diag")


@dataclass(frozen=True)
class MixturePrior:
    """Hyperparameters of the Bayesian mixture (names as in scikit-learn's
    ``BayesianGaussianMixture``): ``weight_concentration`` alpha0, ``mean`` m0 (D,),
    ``mean_precision`` beta0, ``degrees_of_freedom`` nu0 and ``covariance`` Psi0, the scale of the
    inverse-Wishart on each covariance ((D, D) for ``"full"``; its diagonal (D,) for ``"diag"``).
    The prior mean of a covariance is Psi0 / (nu0 - D - 1) (full) or psi0 / (nu0 - 2) (diag)."""

    covariance_type: str
    weight_concentration: float
    mean: torch.Tensor
    mean_precision: float
    degrees_of_freedom: float
    covariance: torch.Tensor

    def log_normaliser(self, n_clusters: int) -> float:
        """The part of log p(pi, mu, Lambda) that does not depend on them."""
        D = self.mean.shape[-1]
        alpha, nu0 = self.weight_concentration, self.degrees_of_freedom
        out = math.lgamma(n_clusters * alpha) - n_clusters * math.lgamma(alpha)
        if self.covariance_type == "full":
            per_cluster = (
                0.5 * nu0 * float(torch.linalg.slogdet(self.covariance)[1])
                - 0.5 * nu0 * D * math.log(2)
                - float(torch.special.multigammaln(torch.tensor(0.5 * nu0, dtype=torch.float64), D))
            )
        else:
            per_cluster = float(
                (0.5 * nu0 * (0.5 * self.covariance).log()).sum() - D * math.lgamma(0.5 * nu0)
            )
        per_cluster += 0.5 * D * math.log(self.mean_precision / (2 * math.pi))
        return out + n_clusters * per_cluster


@dataclass
class Posterior:
    """Conditional posterior of the mixture's parameters given assignments, per chain and
    cluster: Dirichlet ``concentration`` (C, K) and Normal-Wishart (Normal-Gamma) ``mean``
    (C, K, D), ``mean_precision`` (C, K), ``degrees_of_freedom`` (C, K), ``scale`` (C, K, D, D)
    or (C, K, D)."""

    concentration: torch.Tensor
    mean: torch.Tensor
    mean_precision: torch.Tensor
    degrees_of_freedom: torch.Tensor
    scale: torch.Tensor


@dataclass
class Parameters:
    """One draw of the mixture per chain: ``log_weights`` (C, K), ``means`` (C, K, D),
    ``precisions`` (C, K, D, D), or (C, K, D) for diagonal ones, and their ``log_det``
    log|Lambda_k| (C, K), computed when not given."""

    log_weights: torch.Tensor
    means: torch.Tensor
    precisions: torch.Tensor
    log_det: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.log_det is None:
            if self.full:
                chol = torch.linalg.cholesky(self.precisions)
                self.log_det = 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
            else:
                self.log_det = self.precisions.log().sum(-1)

    @property
    def full(self) -> bool:
        return self.precisions.ndim == 4

    def covariances(self) -> torch.Tensor:
        if self.full:
            return torch.cholesky_inverse(torch.linalg.cholesky(self.precisions))
        return 1.0 / self.precisions

    def permute(self, order: torch.Tensor) -> Parameters:
        """Cluster ``order[c, j]`` of chain c becomes cluster j (``order``: (C, K))."""
        chains = torch.arange(len(order)).unsqueeze(1)
        return Parameters(
            self.log_weights[chains, order],
            self.means[chains, order],
            self.precisions[chains, order],
            self.log_det[chains, order],
        )


def n_features(dim: int, covariance_type: str) -> int:
    return 1 + dim + (dim * (dim + 1) // 2 if covariance_type == "full" else dim)


def features(z: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """Per point ``[1, z, q(z)]`` with q(z) the upper triangle of z z^T (full) or z^2 (diag):
    shape (N, F). Both the densities and the sufficient statistics are linear in them."""
    if covariance_type == "full":
        i, j, _ = _upper(z.shape[1])
        quadratic = z[:, i] * z[:, j]
    else:
        quadratic = z.square()
    return torch.cat([torch.ones_like(z[:, :1]), z, quadratic], 1)


@functools.cache  # called every sweep; the tensors returned are never written to
def _upper(dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row and column indices of the upper triangle of a (dim, dim) matrix, row by row, and
    each entry's multiplicity in a symmetric quadratic form (1 on the diagonal, 2 above)."""
    with torch.inference_mode(False):  # a first call in inference mode must not taint the cache
        i, j = torch.triu_indices(dim, dim)
        return i, j, torch.where(i == j, 1.0, 2.0).double()


def gram_points(z: torch.Tensor) -> torch.Tensor:
    """``[1, z]`` per point and one row of zeros after them, (N + 1, D + 1): what
    :func:`grams` and :func:`moved_grams` read (the zero row pads the blocks of :func:`grams`)."""
    points = torch.cat([torch.ones_like(z[:, :1]), z], 1)
    return torch.cat([points, points.new_zeros(1, points.shape[1])])


def statistics(
    z: torch.Tensor, assignments: torch.Tensor, n_clusters: int, full: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts (C, K), sums (C, K, D) and sums of squares (C, K, D, D), or their diagonals
    (C, K, D) where ``full`` is False, of each cluster's points ``z`` (N, D) for each chain's
    ``assignments`` (C, N), from their :func:`grams`."""
    return split_grams(grams(gram_points(z), assignments, n_clusters), full)


# Rows per block of the statistics' Gram products. Each (chain, cluster) group is padded with
# zero rows to whole blocks, so one stacked product of (D + 1, B) by (B, D + 1) blocks serves all
# groups: no loop over clusters; at most B - 1 padding rows per group, a whole block for an empty
# one.
GRAM_BLOCK = 128


def grams(points: torch.Tensor, assignments: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Each (chain, cluster)'s Gram matrix of ``[1, z]`` over its points, (C, K, D + 1, D + 1),
    from :func:`gram_points` ``points`` and the ``assignments`` (C, N): its count, sum and sum
    of outer products at once.

    The points are sorted by (chain, cluster), laid out in zero-padded blocks of
    :data:`GRAM_BLOCK` rows, and the blocks' Gram matrices summed per group. This runs on the
    CPU in numpy: its stable sort of 16-bit keys is a radix sort, and its stacked float64
    products ran twice as fast as torch's on small matrices (measured on this project's
    benchmark machine); the sums stay float64 in a fixed order."""
    C, N = assignments.shape
    D = points.shape[1] - 1
    groups = C * n_clusters
    keys = (assignments.cpu().numpy() + n_clusters * np.arange(C)[:, None]).reshape(-1)
    points = points.detach().cpu()
    order = np.argsort(keys.astype(np.int16 if groups <= 2**15 else np.int64), kind="stable")
    sizes = np.bincount(keys, minlength=groups)
    blocks = np.maximum(-(-sizes // GRAM_BLOCK), 1)  # an empty group gets one block of zeros
    first_block = np.cumsum(blocks) - blocks
    # a sorted point's padded row: its rank in the sorted order moved by its group's padding
    moved = GRAM_BLOCK * first_block - (np.cumsum(sizes) - sizes)
    source = np.full(GRAM_BLOCK * int(blocks.sum()), N)  # row N of the points is zeros
    source[np.arange(C * N) + moved[keys[order]]] = order % N
    padded = np.take(points.numpy(), source, axis=0).reshape(-1, GRAM_BLOCK, D + 1)
    block_grams = np.matmul(padded.transpose(0, 2, 1), padded)
    gram = np.add.reduceat(block_grams, first_block, axis=0)
    return torch.from_numpy(gram).reshape(C, n_clusters, D + 1, D + 1)


def moved_grams(
    gram: torch.Tensor,
    points: torch.Tensor,
    before: torch.Tensor,
    after: torch.Tensor,
    moved: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`grams` for the assignments ``after`` from ``gram``, those for ``before`` (both
    (C, N); ``moved``, their difference ``before != after``, when known): only the points whose
    cluster changed move, each one's outer product subtracted from its old cluster and added to
    its new one. Gibbs sweeps that have settled move a few percent of the points, so this reads
    far less than a sum over all of them. The counts stay exact; each call adds the rounding of
    its moves to the sums (float64), so a sampler sums afresh now and then. ``gram`` is not
    changed."""
    C, K, E, _ = gram.shape
    moved = before != after if moved is None else moved
    chain, point = moved.nonzero(as_tuple=True)
    outer = (points[point].unsqueeze(-1) * points[point].unsqueeze(-2)).reshape(-1, E * E)
    out = gram.reshape(C * K, E * E).clone()
    out.index_add_(0, chain * K + after[chain, point], outer)
    out.index_add_(0, chain * K + before[chain, point], outer, alpha=-1)
    return out.reshape(C, K, E, E)


def split_grams(gram: torch.Tensor, full: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts (C, K), sums (C, K, D) and sums of squares (C, K, D, D), or their diagonals, from
    :func:`grams`."""
    counts, sums, squares = gram[..., 0, 0], gram[..., 0, 1:], gram[..., 1:, 1:]
    return counts, sums, squares if full else squares.diagonal(dim1=-2, dim2=-1)


def feature_sums(counts: torch.Tensor, sums: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
    """The sums of each cluster's :func:`features`, (C, K, F), from its :func:`statistics`:
    ``coefficients * feature_sums`` summed over features is the cluster's part of
    log p(Z, c | params)."""
    if squares.ndim == sums.ndim + 1:
        i, j, _ = _upper(sums.shape[-1])
        squares = squares[..., i, j]
    return torch.cat([counts.unsqueeze(-1), sums, squares], -1)


def posterior(
    prior: MixturePrior,
    counts: torch.Tensor,
    sums: torch.Tensor,
    squares: torch.Tensor,
) -> Posterior:
    """The closed-form conditional posterior of (pi, mu, Lambda) given the statistics."""
    beta0, nu0, m0 = prior.mean_precision, prior.degrees_of_freedom, prior.mean
    beta = beta0 + counts
    mean = (beta0 * m0 + sums) / beta.unsqueeze(-1)
    if prior.covariance_type == "full":
        outer0 = beta0 * torch.outer(m0, m0)
        outer = beta[..., None, None] * mean.unsqueeze(-1) * mean.unsqueeze(-2)
        scale = prior.covariance + squares + outer0 - outer
        scale = 0.5 * (scale + scale.transpose(-1, -2))  # exactly symmetric for the Cholesky
    else:
        scale = prior.covariance + squares + beta0 * m0.square() - beta.unsqueeze(-1) * mean**2
    return Posterior(prior.weight_concentration + counts, mean, beta, nu0 + counts, scale)


def draw(post: Posterior) -> Parameters:
    """One draw of (pi, mu, Lambda) from the posterior, for every chain and cluster.

    Full covariances use Bartlett's construction: with Psi = U U^T (U lower) and A lower
    triangular, A_ii ~ sqrt(chi2(nu - i)), A_ij ~ N(0, 1) below the diagonal,
    Lambda = U^-T A A^T U^-1 ~ Wishart(nu, Psi^-1) (any square root of Psi^-1 will do, because
    A A^T ~ Wishart(nu, I) is invariant under rotations); then mu = m + U A^-T eps / sqrt(beta).
    """
    # the distribution object's argument checks cost more than the draw itself
    weights = torch._sample_dirichlet(post.concentration)
    log_weights = weights.clamp_min(torch.finfo(weights.dtype).tiny).log()
    beta = post.mean_precision.unsqueeze(-1)
    eps = torch.randn_like(post.mean)
    if post.scale.ndim == post.mean.ndim:  # diagonal: Gamma(nu / 2, rate = psi / 2) per dimension
        shape = (0.5 * post.degrees_of_freedom).unsqueeze(-1).expand_as(post.scale)
        precisions = torch._standard_gamma(shape.contiguous()) / (0.5 * post.scale)
        means = post.mean + eps / (beta * precisions).sqrt()
        return Parameters(log_weights, means, precisions, precisions.log().sum(-1))
    D = post.mean.shape[-1]
    U = torch.linalg.cholesky(post.scale)
    dof = post.degrees_of_freedom.unsqueeze(-1) - torch.arange(D, dtype=U.dtype)  # nu - i
    chi2 = 2.0 * torch._standard_gamma((0.5 * dof).contiguous())
    A = torch.randn_like(U).tril_(-1)
    A.diagonal(dim1=-2, dim2=-1).copy_(chi2.sqrt_())
    root = torch.linalg.solve_triangular(U.transpose(-1, -2), A, upper=True)  # U^-T A
    precisions = root @ root.transpose(-1, -2)
    precisions = 0.5 * (precisions + precisions.transpose(-1, -2))
    # mu - m = U A^-T eps / sqrt(beta): solve A^T v = eps
    v = torch.linalg.solve_triangular(A.transpose(-1, -2), eps.unsqueeze(-1), upper=True)
    means = post.mean + (U @ v).squeeze(-1) / beta.sqrt()
    log_det = 2.0 * (A.diagonal(dim1=-2, dim2=-1).log() - U.diagonal(dim1=-2, dim2=-1).log())
    return Parameters(log_weights, means, precisions, log_det.sum(-1))


def coefficients(params: Parameters) -> torch.Tensor:
    """(C, K, F) coefficients such that ``coefficients @ features(z).T`` is
    log pi_k + log N(z | mu_k, Lambda_k^-1) for every cluster and point."""
    mu, lam = params.means, params.precisions
    D = mu.shape[-1]
    if params.full:
        lam_mu = (lam @ mu.unsqueeze(-1)).squeeze(-1)
        i, j, multiplicity = _upper(D)
        quadratic = -0.5 * lam[..., i, j] * multiplicity.to(lam)
    else:
        lam_mu = lam * mu
        quadratic = -0.5 * lam
    mu_lam_mu = (mu * lam_mu).sum(-1)
    const = params.log_weights + 0.5 * (params.log_det - mu_lam_mu - D * math.log(2 * math.pi))
    return torch.cat([const.unsqueeze(-1), lam_mu, quadratic], -1)


def log_joint_terms(feats_t: torch.Tensor, params: Parameters) -> torch.Tensor:
    """log pi_k + log N(z_n | mu_k, Sigma_k) for every chain, cluster and point, (C, K, N), from
    the points' features transposed, ``features(z).T`` (F, N)."""
    return coefficients(params) @ feats_t


def log_prior(prior: MixturePrior, params: Parameters, log_normaliser: float | None = None):
    """log p(pi, mu, Lambda) per chain, shape (C,): Dirichlet, then Normal-Wishart (full) or
    Normal-Gamma (diag) for each cluster. ``log_normaliser`` is
    ``prior.log_normaliser(K)``, computed when not given."""
    K = params.means.shape[-2]
    if log_normaliser is None:
        log_normaliser = prior.log_normaliser(K)
    alpha, beta0, nu0 = prior.weight_concentration, prior.mean_precision, prior.degrees_of_freedom
    D = params.means.shape[-1]
    diff = params.means - prior.mean
    if params.full:
        wishart = 0.5 * (nu0 - D - 1) * params.log_det - 0.5 * (
            prior.covariance * params.precisions
        ).sum((-1, -2))
        mahalanobis = (diff * (params.precisions @ diff.unsqueeze(-1)).squeeze(-1)).sum(-1)
    else:
        wishart = ((0.5 * nu0 - 1) * params.precisions.log()).sum(-1) - (
            0.5 * prior.covariance * params.precisions
        ).sum(-1)
        mahalanobis = (params.precisions * diff.square()).sum(-1)
    normal = 0.5 * (params.log_det - beta0 * mahalanobis)
    return log_normaliser + (alpha - 1) * params.log_weights.sum(-1) + (wishart + normal).sum(-1)
