"""The Dilokthanakul GMVAE study: an AE, a VAE and the GMVAE on a one-dimensional synthetic
mixture and on MNIST-test.

For each data set the three models are fitted with one seed, and the script saves:

* latent maps: the latent means projected on their first two principal components, coloured
  by true label (and, for the GMVAE, by its clusters);
* generated samples: the VAE's from p(z); the GMVAE's with the same draws of w decoded under
  every cluster (along a row the cluster is fixed, down a column w is);
* the GMVAE's conditional prior term and y-prior term over training, with the threshold;
* a table: ACC/NMI of the GMVAE's own clusters, and of k-means (K = 10) on each model's latent
  means for comparison, with the ELBO where the model has one.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/dilokthanakul_study.py

The synthetic data are :func:`pyro_gmvae.make_mixture_1d` (10,000 points, 10 components,
standardised), fitted with a Gaussian likelihood; the networks there are small (z 2, w 2,
hidden 64-64), as the data are one number per point. MNIST-test is fitted on grey levels with
the Bernoulli likelihood and every estimator's defaults, for ``--epochs-mnist`` epochs.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, publish, refuse_published_paths  # noqa: E402

from pyro_gmvae import (  # noqa: E402
    AE,
    VAE,
    DilokthanakulGMVAE,
    clustering_scores,
    load_mnist_test,
    make_mixture_1d,
    plots,
)

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
K = 10  # the report sets 10 clusters for both data sets


def settings(dataset: str, epochs: int, tiny: bool) -> dict[str, dict]:
    """Each model's options on a data set (the GMVAE last)."""
    if dataset == "synthetic":
        common = dict(likelihood="gaussian", hidden_dims=(64, 64), latent_dim=2, lr=1e-3,
                      batch_size=100, epochs=epochs)  # fmt: skip
        gmvae = dict(common, w_dim=2)
    else:
        common = dict(epochs=epochs)
        gmvae = dict(common)
    if tiny:
        common = dict(common, hidden_dims=(16,), latent_dim=2)
        gmvae = dict(gmvae, hidden_dims=(16,), latent_dim=2, w_dim=2)
    return {"AE": common, "VAE": common, "GMVAE": dict(gmvae, n_clusters=K)}


def study(name: str, data, epochs: int, seed: int, folder: Path, tiny: bool) -> dict:
    X, y = data.X, data.y
    rows = {}
    for model_name, options in settings(name, epochs, tiny).items():
        cls = {"AE": AE, "VAE": VAE, "GMVAE": DilokthanakulGMVAE}[model_name]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cls(seed=seed, progress_bar=False, **options).fit(X, y)
        seconds = time.perf_counter() - start
        Z = model.transform(X)
        kmeans = KMeans(K, n_init=10, random_state=seed).fit_predict(Z)
        row = {"fit_seconds": seconds, "kmeans_on_latents": clustering_scores(y, kmeans)}
        clusters = None
        if model_name != "AE":
            row["elbo"] = model.score(X)
        if model_name == "GMVAE":
            clusters = model.labels_
            row["clusters"] = clustering_scores(y, clusters)
            row["y_prior_per_epoch"] = [h["train_y_prior"] for h in model.history_]
            row["conditional_prior_per_epoch"] = [
                h["train_conditional_prior"] for h in model.history_
            ]
            plots.plot_prior_terms(
                model.history_, model.threshold, path=folder / f"{name}_prior_terms.png"
            )
            plots.plot_same_w_samples(model, 8, seed, path=folder / f"{name}_same_w.png")
        elif model_name == "VAE":
            if X.shape[1] == 1:
                samples = model.sample(2000, seed=seed)[None]
                plots.plot_samples_1d(X.numpy(), samples, path=folder / f"{name}_vae_samples.png")
            else:
                samples = model.sample(100, seed=seed)
                plots.image_grid(samples, model.image_shape_, 10, title="VAE samples from p(x)",
                                 path=folder / f"{name}_vae_samples.png")  # fmt: skip
        plots.plot_latent_pca(
            Z, clusters, y, seed=seed, path=folder / f"{name}_{model_name.lower()}_latent_pca.png"
        )
        plt.close("all")
        rows[model_name] = row
        print(f"{name}, {model_name}: {seconds:.0f} s", file=sys.stderr)
    return rows


def table(result: dict) -> str:
    lines = [
        f"AE, VAE and Dilokthanakul GMVAE (K = {K}), one seed ({result['seed']}), "
        f"{result['machine']}. ACC/NMI of the GMVAE's own clusters, and of k-means (K = {K}) "
        "on each model's latent means. ELBO in nats per point (not comparable with "
        "binarised-MNIST log-likelihoods: grey levels with a Bernoulli likelihood).",
        "",
        "| data | model | epochs | clusters: ACC | NMI | k-means on latents: ACC | NMI "
        "| ELBO | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, rows in result["datasets"].items():
        for model, row in rows.items():
            own = row.get("clusters")
            km = row["kmeans_on_latents"]
            cells = [f"{own['acc']:.3f}", f"{own['nmi']:.3f}"] if own else ["–", "–"]
            cells += [f"{km['acc']:.3f}", f"{km['nmi']:.3f}"]
            cells += [f"{row['elbo']:.2f}" if "elbo" in row else "–", f"{row['fit_seconds']:.0f}"]
            lines.append(
                f"| {dataset} | {model} | {result['epochs'][dataset]} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs-synthetic", type=int, default=50)
    p.add_argument("--epochs-mnist", type=int, default=30)
    p.add_argument("--n", type=int, default=None, help="points per data set (smoke tests)")
    p.add_argument("--mnist", default=None, help="folder of MNIST-test")
    p.add_argument("--tiny", action="store_true", help="small networks (smoke tests)")
    p.add_argument("--figures", default=str(DOCS / "dilokthanakul_study"))
    p.add_argument("--json", default=str(RESULTS / "dilokthanakul_study.json"))
    p.add_argument("--markdown", default=str(DOCS / "dilokthanakul_study.md"))
    args = p.parse_args(argv)
    published = ("figures", "json", "markdown")
    refuse_published_paths(args, {name: p.get_default(name) for name in published})

    folder = Path(args.figures)
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "synthetic": make_mixture_1d(10_000, K, seed=args.seed).subset(args.n, args.seed),
        "mnist-test": load_mnist_test(args.mnist).subset(args.n, args.seed),
    }
    epochs = {"synthetic": args.epochs_synthetic, "mnist-test": args.epochs_mnist}
    result = {
        "seed": args.seed,
        "machine": machine(),
        "epochs": epochs,
        "datasets": {
            name: study(name, d, epochs[name], args.seed, folder, args.tiny)
            for name, d in data.items()
        },
    }
    publish(result, table(result), args.json, args.markdown)
    return result


if __name__ == "__main__":
    main()
