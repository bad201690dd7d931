"""Pre-training that starts a GMVAE from a good clustering instead of a random one.

The ELBO of a GMVAE has many optima that use the clusters for style rather than class, and
random starts land in them often (large seed-to-seed variance is the most common complaint about
these models). ``init="pretrain"`` therefore:

1. trains the z-guide's point estimate ``point(x, y=0)`` and the decoder as a deterministic
   autoencoder (codes in the space the decoder reads, after any flow);
2. embeds the autoencoder's codes in 2-D with t-SNE and fits a K-component Gaussian mixture
   there (the autoencoder + manifold learning + GMM recipe of N2D, McConville et al. 2019);
3. fits q(y | x) to the mixture's responsibilities (cross-entropy), sets each cluster's prior
   p(z | y=k) to the mean and variance of its codes (the prior's ``set_components``), and calls
   the guide's ``reset_y_input()``, so that q(z | x, y) starts from the autoencoder's code
   whatever y is.

The ELBO is then maximised from that point as usual; the labels are never used. A VAE whose
prior is a mixture (VaDE's) starts the same way, without the y-steps
(:func:`pretrain_mixture_prior`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.manifold import TSNE
from sklearn.mixture import GaussianMixture
from torch.nn import functional as F

from .models import GMVAEModule, VAEModule
from .training import TrainingPlan, make_loader, train


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


def cluster_codes(
    codes: np.ndarray, n_clusters: int, seed: int, max_points: int = 20000, verbose: bool = False
) -> np.ndarray:
    """Responsibilities (N, K) of a Gaussian mixture fitted to a t-SNE embedding of ``codes``.

    t-SNE cannot place new points, so above ``max_points`` it embeds a random subset and the
    remaining points take the responsibilities of their nearest embedded neighbour in code space.
    """
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(codes))[:max_points]
    if verbose:
        print(
            f"pre-training: t-SNE and a Gaussian mixture on {len(idx)} codes",
            file=sys.stderr,
            flush=True,
        )
    perplexity = float(min(30, max(2, (len(idx) - 1) // 3)))
    emb = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes[idx])
    gmm = GaussianMixture(n_clusters, covariance_type="full", n_init=3, random_state=seed)
    resp_subset = gmm.fit(emb).predict_proba(emb)
    if len(idx) == len(codes):
        resp = np.empty_like(resp_subset)
        resp[idx] = resp_subset
        return resp
    from sklearn.neighbors import KNeighborsClassifier

    nearest = KNeighborsClassifier(1).fit(codes[idx], np.arange(len(idx)))
    return resp_subset[nearest.predict(codes)]


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


def component_moments(
    resp: torch.Tensor, codes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights (K,), means and variances (K, D) of ``codes`` under soft assignments ``resp``."""
    counts = resp.sum(0).clamp_min(1e-6)[:, None]  # (K, 1)
    means = resp.T @ codes / counts
    variances = (resp.T @ codes.pow(2)) / counts - means.pow(2)
    return counts[:, 0] / counts.sum(), means, variances.clamp_min(1e-4)


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
        codes.numpy(), module.n_clusters, seed, verbose=trainer_args.get("progress_bar", False)
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
    _, means, variances = component_moments(resp_t, codes)
    module.prior.set_components(means, variances)
    module.z_encoder.reset_y_input()  # q(z | x, y) starts as the autoencoder's code for every y
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
    **trainer_args: Any,
) -> np.ndarray:
    """The same start for a VAE whose prior is a mixture (VaDE): train q(z | x)'s mean and the
    decoder as an autoencoder, cluster the codes (t-SNE + Gaussian mixture, as above) and set
    each prior component to its codes' share, mean and variance. Returns the responsibilities."""
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
        verbose=trainer_args.get("progress_bar", False),
    )
    weights, means, variances = component_moments(torch.as_tensor(resp, dtype=torch.float32), codes)
    module.prior.set_components(means, variances, weights)
    return resp
