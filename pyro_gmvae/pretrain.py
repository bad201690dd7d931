"""Pre-training that starts a GMVAE from a good clustering instead of a random one.

The ELBO of a GMVAE has many optima that use the clusters for style rather than class, and
random starts land in them often (large seed-to-seed variance is the most common complaint about
these models). ``init="pretrain"`` therefore:

1. trains the z-guide's point estimate ``point(x, y=0)`` and the decoder as a deterministic
   autoencoder (codes in the space the decoder reads, after any flow);
2. embeds the autoencoder's codes in 2-D with UMAP or t-SNE (``embedding``; by default t-SNE
   below 4,096 points, UMAP from there: :func:`resolve_embedding`) and fits a
   K-component Gaussian mixture there (the autoencoder + manifold learning + GMM recipe of N2D,
   McConville et al. 2019);
3. fits q(y | x) to the mixture's responsibilities (cross-entropy), calls the guide's
   ``reset_y_input()``, so that q(z | x, y) starts from the autoencoder's code whatever y is,
   and sets each cluster's prior p(z | y=k) (the prior's ``set_components``) to the mean and
   variance of its codes; a full-covariance prior gets the moments of its codes z ~ q(z | x):
   their covariance plus the guide's mean variance.

The ELBO is then maximised from that point as usual; the labels are never used. A VAE whose
prior is a mixture (VaDE's) starts the same way, without the y-steps
(:func:`pretrain_mixture_prior`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.manifold import TSNE
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from torch.nn import functional as F

from .models import GMVAEModule, VAEModule
from .training import TrainingPlan, is_global_zero, make_loader, train


def autoencoder_loss(module: GMVAEModule | VAEModule, encode: Callable):
    """-log p(x | z = encode(x)) per point: the autoencoder pre-training loss."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        return -module.likelihood(module.decoder(encode(x))).log_prob(x).mean()

    return loss


def classifier_loss(module: GMVAEModule):
    """Cross-entropy of q(y | x) against soft cluster assignments."""

    def loss(x: torch.Tensor, resp: torch.Tensor) -> torch.Tensor:
        return -(resp * F.log_softmax(module.y_encoder(x), -1)).sum(-1).mean()

    return loss


EMBEDDINGS = ("auto", "umap", "tsne")
TSNE_BELOW = 4096  # "auto" embeds fewer points with t-SNE, more with UMAP (resolve_embedding)
# UMAP's layout epochs: its own default from 10,000 points (500 below). With exact neighbours,
# GMVAE() on MNIST-test's 9,000 images: ACC 0.955, 0.960, 0.960, 0.956, 0.940 (seeds 0-4)
# against 0.958, 0.960, 0.960, 0.958, 0.954 with UMAP's own search and 500 epochs, pre-training
# in 57-81 s instead of 134 s on average (docs/benchmarks.md).
UMAP_EPOCHS = 200


def check_embedding(embedding: Any) -> None:
    """Raise a ``ValueError`` unless ``embedding`` names one of :data:`EMBEDDINGS`."""
    if embedding not in EMBEDDINGS:
        raise ValueError(f"pretrain_embedding must be one of {EMBEDDINGS}, got {embedding!r}")


def resolve_embedding(embedding: str, n_points: int) -> str:
    """``"auto"``: t-SNE below :data:`TSNE_BELOW` points, UMAP from there; a named
    embedding stays as it is. Measured with ``GMVAE()``: on scikit-learn's 1,797 digits t-SNE
    clustered better (ACC 0.875, 0.880, 0.852 against UMAP's 0.799, 0.804, 0.865, seeds 0-2) and
    sooner (no numba compile); on MNIST-test's 9,000 training images UMAP clustered the codes
    better in exploratory runs with enumerated y (ACC 0.949-0.959 over seeds 0-4 against
    t-SNE's 0.937-0.949 over seeds 0-2), and the two were alike in the benchmark with the
    relaxed y (see ``docs/benchmarks.md``). Sizes in between were not measured: the boundary
    is UMAP's own threshold for exact neighbours, where this rule was chosen."""
    check_embedding(embedding)
    if embedding != "auto":
        return embedding
    return "tsne" if n_points < TSNE_BELOW else "umap"


SEARCH_MIB = 128  # scikit-learn's neighbour searches go in blocks of this size (its default: 1 GiB)
MIN_POINTS = 4  # below this, neither embedding can be fitted (UMAP's spectral start needs 4)


def embed_codes(codes: np.ndarray, embedding: str, seed: int) -> np.ndarray:
    """A 2-D embedding of ``codes`` (N, D). ``"umap"``: 20 exact nearest neighbours (from
    scikit-learn, which spares the numba compile of UMAP's approximate search, about 20 s in
    each new process, and costs about a second at 20,000 points), min_dist 0 as in N2D
    (McConville et al. 2019, which embeds in K dimensions: 2 clustered MNIST-test's codes as
    well or better here), :data:`UMAP_EPOCHS` layout epochs. ``"tsne"``: perplexity 30, PCA
    start. Neither can place further points (UMAP keeps no search index with precomputed
    neighbours): :func:`cluster_codes` places them by their nearest embedded neighbour."""
    if len(codes) < MIN_POINTS:
        raise ValueError(
            f"pre-training embeds the codes of at least {MIN_POINTS} points, got {len(codes)}: "
            "pass init='random'"
        )
    with warnings.catch_warnings():  # umap's notices (a seed runs it on one thread; numba's)
        warnings.simplefilter("ignore")
        if embedding == "umap":
            import numba
            import umap  # imported here: numba's import costs seconds, and only this needs it

            neighbours = int(min(20, len(codes) - 1))
            search = NearestNeighbors(n_neighbors=neighbours).fit(codes)
            with sklearn.config_context(working_memory=SEARCH_MIB):
                distances, indices = search.kneighbors(codes)  # each point its own first
            reducer = umap.UMAP(
                n_components=2,
                n_neighbors=neighbours,
                min_dist=0.0,
                n_epochs=UMAP_EPOCHS,
                random_state=seed,
                precomputed_knn=(indices, distances.astype(np.float32), None),
            )
            threads = numba.get_num_threads()
            try:  # a seeded UMAP sets numba to one thread and restores it only on success
                return reducer.fit_transform(codes)
            finally:
                numba.set_num_threads(threads)
        perplexity = float(min(30, max(2, (len(codes) - 1) // 3)))
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
        return tsne.fit_transform(codes)


def cluster_codes(
    codes: np.ndarray,
    n_clusters: int,
    seed: int,
    embedding: str = "auto",
    max_points: int = 20000,
    verbose: bool = False,
) -> np.ndarray:
    """Responsibilities (N, K) of a Gaussian mixture fitted to a 2-D embedding of ``codes``
    (:func:`embed_codes`).

    With ``"umap"`` the mixture is the most likely of 20 starts: on MNIST-test's autoencoder
    codes a third of single starts merge two digits and split another (ACC 0.71-0.83 against
    0.95), and the most likely start was the class-like one on every seed tried. (``"tsne"``
    keeps the 3 starts its benchmarks were measured with.) Above ``max_points`` the embedding
    is fitted to a random subset, and the other points take the responsibilities of their
    nearest embedded neighbour in code space.
    """
    embedding = resolve_embedding(embedding, len(codes))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(codes))
    idx, rest = order[:max_points], order[max_points:]
    if verbose:
        print(
            f"pre-training: {'UMAP' if embedding == 'umap' else 't-SNE'} and a Gaussian mixture "
            f"on {len(idx)} codes",
            file=sys.stderr,
            flush=True,
        )
    emb = embed_codes(codes[idx], embedding, seed)
    starts = 20 if embedding == "umap" else 3
    gmm = GaussianMixture(n_clusters, covariance_type="full", n_init=starts, random_state=seed)
    resp = np.empty((len(codes), n_clusters))
    resp[idx] = gmm.fit(emb).predict_proba(emb)
    if len(rest) == 0:
        return resp
    search, embedded = NearestNeighbors(n_neighbors=1).fit(codes[idx]), resp[idx]
    with sklearn.config_context(working_memory=SEARCH_MIB):
        for part in np.array_split(rest, -(-len(rest) // max_points)):  # copies of bounded size
            resp[part] = embedded[search.kneighbors(codes[part])[1][:, 0]]
    return resp


def train_autoencoder(
    module: GMVAEModule | VAEModule,
    encode: Callable,
    X: torch.Tensor,
    *,
    seed: int,
    batch_size: int,
    lr: float,
    epochs: int,
    binarize: bool = False,
    **trainer_args: Any,
) -> torch.Tensor:
    """Train ``encode`` and the decoder as an autoencoder; returns the codes of ``X``."""
    train(
        TrainingPlan(module, autoencoder_loss(module, encode), lr=lr, binarize=binarize),
        make_loader(X, batch_size, seed),
        epochs,
        callbacks=[],
        phase="pre-training: autoencoder",
        **trainer_args,
    )
    module.cpu()
    with torch.no_grad():
        return torch.cat([encode(x) for x in X.split(1000)])


MOMENT_ROWS = 16384  # rows per step of the full covariances' sum


def component_moments(
    resp: torch.Tensor,
    codes: torch.Tensor,
    full: bool = False,
    code_variances: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights (K,), means (K, D) and variances (K, D), or with ``full`` covariances
    (K, D, D), of ``codes`` (N, D) under soft assignments ``resp`` (N, K); variances are at
    least 1e-4. With ``code_variances`` (N, D), the variances of a guide's q(z | x) about each
    code, each cluster's variances also add its points' mean code variance: the moments of the
    codes z ~ q(z | x) themselves, not of their means alone."""
    counts = resp.sum(0).clamp_min(1e-6)[:, None]  # (K, 1)
    weights, means = counts[:, 0] / counts.sum(), resp.T @ codes / counts
    if full:
        spread = 0.0
        # (K, rows, D) temporaries, so a chunk of rows at a time on large data
        for r, c in zip(resp.split(MOMENT_ROWS), codes.split(MOMENT_ROWS), strict=True):
            centred = c.unsqueeze(0) - means.unsqueeze(1)  # (K, rows, D)
            spread = spread + (r.T.unsqueeze(-1) * centred).transpose(1, 2) @ centred
        spread = spread / counts[..., None]
        spread = spread + 1e-4 * torch.eye(codes.shape[1], dtype=codes.dtype, device=codes.device)
    else:
        spread = ((resp.T @ codes.pow(2)) / counts - means.pow(2)).clamp_min(1e-4)
    if code_variances is not None:
        widening = resp.T @ code_variances / counts
        spread = spread + (torch.diag_embed(widening) if full else widening)
    return weights, means, spread


@torch.no_grad()
def code_variances(module: GMVAEModule, X: torch.Tensor, draws: int = 16) -> torch.Tensor:
    """The variance of z ~ q(z | x, y = 0) per point and latent dimension (N, D): the guide's
    marginal variances, or for a guide without them in closed form (a flow) the sample variance
    of ``draws`` draws (drawn from torch's random state)."""
    out = []
    for x in X.split(1000):
        q = module.z_encoder.distribution(x, x.new_zeros(x.shape[0], module.n_clusters))
        try:
            out.append(q.variance)
        except NotImplementedError:
            out.append(q.sample((draws,)).var(0))
    return torch.cat(out)


def pretrain(
    module: GMVAEModule,
    X: torch.Tensor,
    *,
    seed: int,
    batch_size: int,
    lr: float,
    binarize: bool = False,
    autoencoder_epochs: int = 15,
    classifier_epochs: int | None = None,
    embedding: str = "auto",
    **trainer_args: Any,
) -> np.ndarray:
    """Run the three pre-training steps on a GMVAE in place; returns the responsibilities.
    q(y | x) trains for ``classifier_epochs`` (a third of ``autoencoder_epochs``, at least 1,
    by default)."""
    check_pretrainable(module)
    if classifier_epochs is None:
        classifier_epochs = max(1, autoencoder_epochs // 3)
    options = dict(seed=seed, batch_size=batch_size, lr=lr, binarize=binarize, **trainer_args)

    def encode(x: torch.Tensor) -> torch.Tensor:  # the guide's point at y = 0
        return module.z_encoder.point(x, x.new_zeros(x.shape[0], module.n_clusters))

    codes = train_autoencoder(module, encode, X, epochs=autoencoder_epochs, **options)
    resp = cluster_codes(
        codes.numpy(),
        module.n_clusters,
        seed,
        embedding,
        verbose=trainer_args.get("progress_bar", False) and is_global_zero(),
    )
    resp_t = torch.as_tensor(resp, dtype=torch.float32)
    train(
        TrainingPlan(module, classifier_loss(module), lr=lr, binarize=binarize),
        make_loader((X, resp_t), batch_size, seed),
        classifier_epochs,
        callbacks=[],
        phase="pre-training: q(y|x)",
        **trainer_args,
    )
    module.cpu()
    module.z_encoder.reset_y_input()  # q(z | x, y) starts as the autoencoder's code for every y
    # A full-covariance prior gets the moment match of its codes z ~ q(z | x): full covariances
    # of the means alone are nearly singular, far narrower than the z that SVI draws, and the
    # first epochs' large KL terms then reshuffle the clusters (MNIST-test: ACC 0.94 -> 0.82 in
    # one epoch). Diagonal ones measured the same either way (two seeds) and keep the means'.
    full = getattr(module.prior, "full_covariance", False)
    _, means, spread = component_moments(
        resp_t, codes, full=full, code_variances=code_variances(module, X) if full else None
    )
    module.prior.set_components(means, spread)
    return resp


def check_pretrainable(module: GMVAEModule) -> None:
    """Raise a ``ValueError`` naming what is missing when pre-training cannot start ``module``:
    its prior must have ``set_components`` and its z-guide ``reset_y_input``."""
    for part, method in (("prior", "set_components"), ("z_encoder", "reset_y_input")):
        if not hasattr(getattr(module, part), method):
            what = "prior" if part == "prior" else "z-guide"
            name = type(getattr(module, part)).__name__
            raise ValueError(
                f"pre-training (init='pretrain', or 'auto' with a named learned mixture) needs a "
                f"{what} with {method}(); {name} has none: add it (or subclass the library's "
                "one), or pass init='random'"
            )


def pretrain_mixture_prior(
    module: VAEModule,
    X: torch.Tensor,
    *,
    seed: int,
    batch_size: int,
    lr: float,
    binarize: bool = False,
    autoencoder_epochs: int = 15,
    embedding: str = "auto",
    **trainer_args: Any,
) -> np.ndarray:
    """The same start for a VAE whose prior is a mixture (VaDE): train q(z | x)'s mean and the
    decoder as an autoencoder, cluster the codes (2-D embedding + Gaussian mixture, as above)
    and set each prior component to its codes' share, mean and variance. Returns the
    responsibilities."""
    codes = train_autoencoder(
        module,
        module.latent_mean,
        X,
        seed=seed,
        batch_size=batch_size,
        lr=lr,
        epochs=autoencoder_epochs,
        binarize=binarize,
        **trainer_args,
    )
    resp = cluster_codes(
        codes.numpy(),
        module.prior.n_components,
        seed,
        embedding,
        verbose=trainer_args.get("progress_bar", False) and is_global_zero(),
    )
    weights, means, variances = component_moments(torch.as_tensor(resp, dtype=torch.float32), codes)
    module.prior.set_components(means, variances, weights)
    return resp
