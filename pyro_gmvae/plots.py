"""Figures people would rather look at than read: reconstructions, samples per cluster,
latent t-SNE maps and training curves. Each function returns a matplotlib Figure and, given
``path``, saves it as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def image_grid(
    images: np.ndarray,
    image_shape: Sequence[int],
    n_rows: int,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Show ``images`` (N, D) as a grid of ``n_rows`` rows."""
    images = np.asarray(images)
    n_cols = int(np.ceil(len(images) / n_rows))
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(n_cols * 0.8 + 0.6, n_rows * 0.8 + 0.4), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < len(images):
            ax.imshow(images[i].reshape(image_shape), cmap="gray", vmin=0, vmax=1)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def plot_reconstructions(
    X: np.ndarray,
    X_rec: np.ndarray,
    image_shape: Sequence[int],
    n: int = 10,
    path: str | Path | None = None,
) -> Figure:
    """Originals (top row) above their reconstructions (bottom row)."""
    n = min(n, len(X))
    return image_grid(
        np.concatenate([X[:n], X_rec[:n]]),
        image_shape,
        2,
        row_labels=["data", "recon."],
        title="Reconstructions",
        path=path,
    )


def cluster_samples(model, n_per_cluster: int = 10, seed: int = 0) -> np.ndarray:
    """Samples x ~ p(x | z), z ~ p(z | y = k) of a GMVAE, shape (K, n_per_cluster, D); row k
    is drawn with seed ``seed + k``."""
    return np.stack(
        [model.sample(n_per_cluster, cluster=k, seed=seed + k)[0] for k in range(model.n_clusters)]
    )


def plot_cluster_samples(
    model,
    n_per_cluster: int = 10,
    seed: int = 0,
    path: str | Path | None = None,
    samples: np.ndarray | None = None,
) -> Figure:
    """One row of samples x ~ p(x | z), z ~ p(z | y = k) for each cluster k; ``samples`` shows
    draws already made by :func:`cluster_samples` instead of drawing new ones."""
    if samples is None:
        samples = cluster_samples(model, n_per_cluster, seed)
    return image_grid(
        samples.reshape(-1, samples.shape[-1]),
        model.image_shape_,
        model.n_clusters,
        row_labels=[f"cluster {k}" for k in range(model.n_clusters)],
        title="Samples per cluster",
        path=path,
    )


def _sample_points(n: int, max_points: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[:max_points]


def _latent_panels(emb, idx, clusters, labels, title: str, path) -> Figure:
    """A scatter of the 2-D embedding ``emb`` of the points ``idx``, one panel per colouring
    (cluster, true label) that is given."""
    colourings = (("cluster", clusters), ("label", labels))
    panels = [(name, np.asarray(c)[idx]) for name, c in colourings if c is not None]
    panels = panels or [("", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (name, colour) in zip(axes[0], panels, strict=True):
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=colour, cmap="tab10", s=4)
        ax.set_title(f"{title}, coloured by {name}" if name else title)
        ax.set_xticks([]), ax.set_yticks([])
        if colour is not None:
            fig.colorbar(sc, ax=ax)
    return _finish(fig, path)


def plot_latent_tsne(
    Z: np.ndarray,
    clusters: np.ndarray | None,
    labels: np.ndarray | None = None,
    max_points: int = 2000,
    seed: int = 0,
    path: str | Path | None = None,
) -> Figure:
    """t-SNE of latent means, coloured by cluster and by true label (each when given)."""
    from sklearn.manifold import TSNE

    idx = _sample_points(len(Z), max_points, seed)
    perplexity = float(min(30, max(2, (len(idx) - 1) // 3)))
    emb = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(Z[idx])
    return _latent_panels(emb, idx, clusters, labels, "latent t-SNE", path)


def plot_latent_pca(
    Z: np.ndarray,
    clusters: np.ndarray | None,
    labels: np.ndarray | None = None,
    max_points: int = 2000,
    seed: int = 0,
    path: str | Path | None = None,
) -> Figure:
    """The latent means projected on their first two principal components (a linear map, so
    distances along it mean what they mean in z; a 1-D latent is shown against its index),
    coloured by cluster and by true label (each when given)."""
    from sklearn.decomposition import PCA

    idx = _sample_points(len(Z), max_points, seed)
    Z = np.asarray(Z)[idx]
    if Z.shape[1] >= 2:
        emb = PCA(2, random_state=seed).fit_transform(Z)
    else:
        emb = np.column_stack([Z[:, 0], np.arange(len(Z))])
    return _latent_panels(emb, idx, clusters, labels, "latent PCA", path)


def plot_samples_1d(
    X: np.ndarray | None,
    samples: np.ndarray,
    bins: int = 80,
    path: str | Path | None = None,
) -> Figure:
    """One-dimensional data: the data's histogram (when ``X`` is given) above stacked
    histograms of what the model generates, one colour per cluster (``samples``: (K, n, 1), as
    :func:`cluster_samples` returns; K = 1 for a model without clusters). The model's
    ``sample`` gives decoder means E[x | z] for z drawn from the prior, without the
    likelihood's noise, and the panel says so."""
    samples = np.asarray(samples)
    values = samples.ravel() if X is None else np.concatenate([np.ravel(X), samples.ravel()])
    edges = np.histogram_bin_edges(values, bins)
    fig, axes = plt.subplots(1 + (X is not None), 1, figsize=(7, 2.5 + 2.5 * (X is not None)),
                             sharex=True, squeeze=False)  # fmt: skip
    if X is not None:
        axes[0, 0].hist(np.ravel(X), edges, color="grey")
        axes[0, 0].set_title("data")
    ax = axes[-1, 0]
    labels = [f"cluster {k}" for k in range(len(samples))] if len(samples) > 1 else None
    ax.hist(list(samples.reshape(len(samples), -1)), edges, stacked=True, label=labels)
    title = "decoder means E[x | z], z from the prior"
    ax.set_title(title + (" of each cluster" if labels else ""))
    if labels:
        ax.legend(fontsize=6, ncol=2)
    return _finish(fig, path)


def plot_training_curves(history: list[dict[str, float]], path: str | Path | None = None) -> Figure:
    """Loss terms per epoch, and the clustering scores when they were logged."""
    epochs = [h["epoch"] for h in history]
    loss_keys = [
        k
        for k in ("loss", "train_reconstruction", "train_kl_z", "train_kl_y")
        if history and k in history[0]
    ]
    score_keys = [k for k in ("acc", "nmi", "ari") if history and k in history[0]]
    n_panels = 1 + bool(score_keys)
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 3.5), squeeze=False)
    for k in loss_keys:
        axes[0, 0].plot(epochs, [h[k] for h in history], label=k)
    axes[0, 0].set(xlabel="epoch", ylabel="nats per sample", title="Loss terms")
    axes[0, 0].legend(fontsize=8)
    if score_keys:
        for k in score_keys:
            axes[0, 1].plot(epochs, [h[k] for h in history], label=k.upper())
        axes[0, 1].set(xlabel="epoch", ylim=(0, 1), title="Clustering scores")
        axes[0, 1].legend(fontsize=8)
    return _finish(fig, path)


def plot_prior_terms(history: list[dict[str, float]], threshold: float, path=None) -> Figure:
    """A Dilokthanakul GMVAE's conditional prior term and y-prior term per epoch (the paper's
    "z-prior" term), with the threshold lambda under which the y-prior term is ignored."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(epochs, [h["train_conditional_prior"] for h in history])
    axes[0].set(xlabel="epoch", ylabel="nats per sample", title="Conditional prior term")
    axes[1].plot(epochs, [h["train_y_prior"] for h in history], label="KL(r || uniform)")
    axes[1].axhline(threshold, color="grey", ls="--", label=f"threshold lambda = {threshold:g}")
    axes[1].set(xlabel="epoch", ylabel="nats per sample", title="y-prior term")
    axes[1].legend(fontsize=8)
    return _finish(fig, path)


def plot_same_w_samples(model, n_w: int = 8, seed: int = 0, path=None) -> Figure:
    """Samples of a Dilokthanakul GMVAE where the same ``n_w`` draws of w (and of the noise of
    z) are decoded under every cluster: along a row the cluster is fixed, down a column w is.
    Images are shown as a grid; one-dimensional data as the decoded value per cluster, one
    line per w."""
    w = np.random.default_rng(seed).standard_normal((n_w, model.w_dim)).astype(np.float32)
    samples = np.stack(
        [model.sample(n_w, cluster=k, w=w, seed=seed)[0] for k in range(model.n_clusters)]
    )  # (K, n_w, D)
    if samples.shape[-1] > 1:
        return image_grid(
            samples.reshape(-1, samples.shape[-1]),
            model.image_shape_,
            model.n_clusters,
            row_labels=[f"cluster {k}" for k in range(model.n_clusters)],
            title="The same w (columns) under every cluster (rows)",
            path=path,
        )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.arange(model.n_clusters), samples[..., 0], marker="o", alpha=0.7)
    ax.set(xlabel="cluster", ylabel="decoded x", title="The same w (one line each) per cluster")
    return _finish(fig, path)


def plot_gibbs_trace(
    gibbs_history: list[dict[str, float]], path: str | Path | None = None
) -> Figure:
    """The GMM's log joint over Gibbs sweeps, and ACC/NMI/ARI when labels were given; rows of a
    mutual-learning fit (with a ``round``) are laid end to end, rounds marked."""
    step = np.arange(1, len(gibbs_history) + 1)
    score_keys = [k for k in ("acc", "nmi", "ari") if gibbs_history and k in gibbs_history[0]]
    n_panels = 1 + bool(score_keys)
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 3.5), squeeze=False)
    axes[0, 0].plot(step, [h["log_joint"] for h in gibbs_history])
    axes[0, 0].set(xlabel="sweep", ylabel="log p(Z, c, params)", title="Gibbs log joint")
    for k in score_keys:
        axes[0, 1].plot(step, [h[k] for h in gibbs_history], label=k.upper())
    if score_keys:
        axes[0, 1].set(xlabel="sweep", ylim=(0, 1), title="Clustering scores per sweep")
        axes[0, 1].legend(fontsize=8)
    rounds = [h.get("round") for h in gibbs_history]
    for i in range(1, len(rounds)):
        if rounds[i] != rounds[i - 1]:
            for ax in axes[0]:
                ax.axvline(i + 0.5, color="grey", lw=0.8, ls=":")
    return _finish(fig, path)


def plot_gaussians_2d(
    Z: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    clusters: np.ndarray | None = None,
    max_points: int = 3000,
    seed: int = 0,
    path: str | Path | None = None,
) -> Figure:
    """Latent points and the mixture's Gaussians (2-sigma ellipses, means marked x) on the two
    principal axes of the points: a linear view, so the ellipses are the exact projections of
    the Gaussians (t-SNE would bend them)."""
    from matplotlib.patches import Ellipse

    Z = np.asarray(Z, dtype=np.float64)
    centre = Z.mean(0)
    axes_2d = np.linalg.svd(Z - centre, full_matrices=False)[2][:2].T  # (D, 2)
    if axes_2d.shape[1] < 2:  # one latent dimension: pad with a zero axis
        axes_2d = np.c_[axes_2d, np.zeros(len(axes_2d))]
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(Z))[:max_points]
    points = (Z[idx] - centre) @ axes_2d
    fig, ax = plt.subplots(figsize=(5.5, 5))
    colour = None if clusters is None else np.asarray(clusters)[idx]
    ax.scatter(points[:, 0], points[:, 1], c=colour, cmap="tab10", s=3, alpha=0.5)
    cov = np.asarray(covariances)
    if cov.ndim == 2:  # diagonal covariances
        cov = np.stack([np.diag(c) for c in cov])
    cmap = plt.get_cmap("tab10")
    for k, (mean, c) in enumerate(zip(np.asarray(means), cov, strict=True)):
        m2 = (mean - centre) @ axes_2d
        c2 = axes_2d.T @ c @ axes_2d
        values, vectors = np.linalg.eigh(c2)
        angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
        width, height = 4 * np.sqrt(np.maximum(values[::-1], 0))
        ax.add_patch(
            Ellipse(m2, width, height, angle=angle, fill=False, color=cmap(k % 10), lw=1.5)
        )
        ax.plot(*m2, "x", color="black", ms=7)
    ax.set(xlabel="principal axis 1", ylabel="principal axis 2", title="Mixture in latent space")
    return _finish(fig, path)


def plot_regimes(
    series: np.ndarray,
    proba: np.ndarray,
    true_regimes: np.ndarray | None = None,
    max_steps: int = 500,
    path: str | Path | None = None,
) -> Figure:
    """One series (T, d) over its first ``max_steps`` steps, above the posterior probability
    of each regime per transition (stacked, (T - 1, K)) and, if given, the true regimes."""
    T = min(len(series), max_steps)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
    top.plot(np.arange(T), series[:T])
    top.set_ylabel("x_t")
    steps = np.arange(1, T)
    K = proba.shape[1]
    colours = plt.get_cmap("tab10")(np.arange(K) % 10)
    labels = [f"regime {k}" for k in range(K)]
    bottom.stackplot(steps, proba[: T - 1].T, colors=colours, labels=labels)
    if true_regimes is not None:
        bottom.scatter(steps, np.full(T - 1, 1.04), c=colours[true_regimes[: T - 1]], s=4,
                       marker="s", clip_on=False, label="true regime")  # fmt: skip
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("t")
    bottom.set_ylabel("p(z_t | data)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _finish(fig, path)


def plot_forecast(series: np.ndarray, forecast, history: int = 100, path=None) -> Figure:
    """The last ``history`` steps of one series (T, d) and its forecast: the mean and the
    predictive interval of ``forecast`` (a :class:`~pyro_gmvae.timeseries.Forecast` of that
    series alone), one panel per dimension (at most 4)."""
    dims = min(series.shape[1], 4)
    fig, axes = plt.subplots(dims, 1, figsize=(8, 2.2 * dims), sharex=True, squeeze=False)
    past = series[-history:]
    t_past = np.arange(len(series) - len(past), len(series))
    steps = forecast.mean.shape[1]
    t_future = np.arange(len(series), len(series) + steps)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t_past, past[:, i], color="k", lw=1, label="observed")
        ax.plot(t_future, forecast.mean[0, :, i], color="C0", label="forecast mean")
        ax.fill_between(t_future, forecast.lower[0, :, i], forecast.upper[0, :, i], alpha=0.3,
                        color="C0", label=f"{forecast.level:.0%} interval")  # fmt: skip
        ax.set_ylabel(f"x[{i}]")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel("t")
    return _finish(fig, path)


def plot_uncertain_points(
    X: np.ndarray,
    uncertainty,
    image_shape: Sequence[int],
    n: int = 16,
    path: str | Path | None = None,
) -> Figure:
    """The ``n`` points of highest entropy of q(y | x) (a
    :class:`~pyro_gmvae.analysis.ClusterUncertainty`), each titled with its two most probable
    clusters and their probabilities."""
    index = uncertainty.most_uncertain(n)
    n_cols = min(8, len(index))
    n_rows = int(np.ceil(len(index) / n_cols))
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(n_cols * 1.1 + 0.4, n_rows * 1.25 + 0.5), squeeze=False
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, index, strict=False):
        first, second = np.argsort(-uncertainty.probs[i])[:2]
        ax.imshow(np.asarray(X[i]).reshape(image_shape), cmap="gray", vmin=0, vmax=1)
        p = uncertainty.probs[i]
        ax.set_title(f"{first}:{p[first]:.2f} {second}:{p[second]:.2f}", fontsize=7)
    fig.suptitle("Most uncertain points (cluster:q(y|x))", fontsize=10)
    return _finish(fig, path)


def plot_cluster_gallery(
    X: np.ndarray,
    summaries,
    image_shape: Sequence[int],
    n_members: int = 6,
    path: str | Path | None = None,
) -> Figure:
    """One row per cluster (:func:`~pyro_gmvae.analysis.cluster_summaries`): the members' mean,
    then the ``n_members`` most typical members, then the ``n_members`` least typical ones;
    the row is labelled with the cluster and its size."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    blank = np.full(X.shape[1], np.nan)
    images, labels = [], []
    for s in summaries:
        row = [s.mean.reshape(-1)]
        for members in (s.typical[:n_members], s.atypical[:n_members]):
            row += [X[i] for i in members] + [blank] * (n_members - len(members))
        images += row
        labels.append(f"{s.cluster} ({s.size})")
    fig = image_grid(np.array(images), image_shape, len(summaries), row_labels=labels)
    fig.suptitle(
        f"mean | {n_members} most typical | {n_members} least typical members", fontsize=10
    )
    return _finish(fig, path)


def plot_k_selection(selection, path: str | Path | None = None, title: str | None = None):
    """Held-out log-likelihood per point against K (a :class:`~pyro_gmvae.analysis.KSelection`):
    every seed's fit, the mean with the standard error of its difference from the best K (the
    one-standard-error rule's yardstick) and the chosen K; for models with global parameters
    also the PSIS-LOO criterion."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ks = np.asarray(selection.ks)
    for j, seed in enumerate(selection.seeds):
        ax.plot(ks, selection.scores[:, j], "o", ms=3, alpha=0.5, label=f"seed {seed}")
    means = selection.means
    ax.errorbar(ks, means, yerr=selection.standard_errors, color="k", capsize=3,
                label="mean ± 1 s.e. of its difference from the best")  # fmt: skip
    ax.axvline(selection.best_k, color="C3", ls="--", label=f"chosen K = {selection.best_k}")
    if selection.loo is not None:  # PSIS-LOO on the training points, same unit
        ax.plot(ks, np.nanmean(selection.loo, 1), color="C4", ls="--", marker="s", ms=3,
                label=f"PSIS-LOO (its pick: K = {selection.best_k_loo})")  # fmt: skip
    ax.set_xlabel("K")
    ax.set_ylabel("log predictive density per point (nats)")
    ax.set_xticks(ks)
    ax.legend(fontsize=7)
    ax.set_title(title or "Choosing K")
    return _finish(fig, path)
