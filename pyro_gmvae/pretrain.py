"""Pre-training that starts a GMVAE from a good clustering instead of a random one.

The ELBO of a GMVAE has many optima that use the clusters for style rather than class, and
random starts land in them often (large seed-to-seed variance is the most common complaint about
these models). ``init="pretrain"`` therefore:

1. trains z-encoder and decoder as a deterministic autoencoder (y input fixed at zero);
2. embeds the autoencoder's codes in 2-D with t-SNE and fits a K-component Gaussian mixture
   there (the autoencoder + manifold learning + GMM recipe of N2D, McConville et al. 2019);
3. fits q(y | x) to the mixture's responsibilities (cross-entropy), sets each cluster's prior
   p(z | y=k) to the mean and variance of its codes, and zeroes the y-input weights of
   q(z | x, y), so that it starts from the autoencoder's code whatever y is.

The ELBO is then maximised from that point as usual; the labels are never used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.manifold import TSNE
from sklearn.mixture import GaussianMixture
from torch.nn import functional as F

from .models import GMVAEModule
from .training import TrainingPlan, make_loader, train


def autoencoder_loss(module: GMVAEModule):
    """-log p(x | z = mean of q(z | x, y=0)) per point: the autoencoder pre-training loss."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        loc, _ = module.z_encoder(x, x.new_zeros(module.n_clusters))
        return -module.likelihood(module.decoder(loc)).log_prob(x).mean()

    return loss


def classifier_loss(module: GMVAEModule):
    """Cross-entropy of q(y | x) against soft cluster assignments."""

    def loss(x: torch.Tensor, resp: torch.Tensor) -> torch.Tensor:
        return -(resp * F.log_softmax(module.y_encoder(x), -1)).sum(-1).mean()

    return loss


def cluster_codes(
    codes: np.ndarray, n_clusters: int, seed: int, max_points: int = 20000
) -> np.ndarray:
    """Responsibilities (N, K) of a Gaussian mixture fitted to a t-SNE embedding of ``codes``.

    t-SNE cannot place new points, so above ``max_points`` it embeds a random subset and the
    remaining points take the responsibilities of their nearest embedded neighbour in code space.
    """
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(codes))[:max_points]
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


def pretrain(
    module: GMVAEModule,
    X: torch.Tensor,
    *,
    seed: int,
    batch_size: int,
    lr: float,
    autoencoder_epochs: int = 15,
    classifier_epochs: int = 5,
    **trainer_args: Any,
) -> np.ndarray:
    """Run the three pre-training steps on ``module`` in place; returns the responsibilities."""
    train(
        TrainingPlan(module, autoencoder_loss(module), lr=lr),
        make_loader(X, batch_size, seed),
        autoencoder_epochs,
        callbacks=[],
        **trainer_args,
    )
    module.cpu()
    with torch.no_grad():
        codes = torch.cat(
            [module.z_encoder(x, x.new_zeros(module.n_clusters))[0] for x in X.split(1000)]
        )
    resp = cluster_codes(codes.numpy(), module.n_clusters, seed)
    resp_t = torch.as_tensor(resp, dtype=torch.float32)
    train(
        TrainingPlan(module, classifier_loss(module), lr=lr),
        make_loader((X, resp_t), batch_size, seed),
        classifier_epochs,
        callbacks=[],
        **trainer_args,
    )
    module.cpu()
    weights = resp_t.sum(0).clamp_min(1e-6)[:, None]  # (K, 1)
    means = resp_t.T @ codes / weights
    variances = (resp_t.T @ codes.pow(2)) / weights - means.pow(2)
    module.prior.set_components(means, variances.clamp_min(1e-4))
    with torch.no_grad():  # q(z | x, y) starts as the autoencoder's code for every y
        module.z_encoder.from_y.weight.zero_()
    return resp
