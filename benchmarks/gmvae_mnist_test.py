"""Benchmark: GMVAE clustering on MNIST-test (fit and score on the same 10,000 images; labels only
for the metrics), both discrete modes over several seeds, plus Pyro's training throughput next
to a plain-PyTorch implementation of the same networks and enumerated loss.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/gmvae_mnist_test.py

prints a markdown table and writes JSON (``--json``) and markdown (``--markdown``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyro
import torch
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, publish  # noqa: E402
from reference_torch import enumerated_loss  # noqa: E402

from pyro_gmvae import GMVAE, clustering_scores, load_mnist_test  # noqa: E402
from pyro_gmvae.components import Enumerate  # noqa: E402
from pyro_gmvae.models import GMVAEModule  # noqa: E402


def fit_one(X, y, mode: str, epochs: int, seed: int, **options) -> dict:
    """Fit one GMVAE; the time covers pre-training, reported separately from the epochs."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GMVAE(discrete=mode, epochs=epochs, seed=seed, progress_bar=False, **options)
        model.fit(X)
    seconds = time.perf_counter() - start
    scores = clustering_scores(y, model.predict(X))
    epoch_seconds = seconds - model.pretrain_seconds_
    return {
        "method": label(mode, options),
        "discrete": mode,
        "options": options,
        "seed": seed,
        "epochs": epochs,
        **scores,
        "elbo": model.score(X),
        "pretrain_seconds": model.pretrain_seconds_,
        "seconds_per_epoch": epoch_seconds / epochs,
        "images_per_s": len(X) * epochs / epoch_seconds,
    }


def label(mode: str, options: dict) -> str:
    return f"GMVAE {mode}, z={options['latent_dim']}, init={options['init']}, lr={options['lr']:g}"


def throughput(X: torch.Tensor, steps: int, batch_size: int = 64, seed: int = 0) -> dict:
    """Images/s of one optimisation step (loss, backward, Adam), Pyro vs plain PyTorch,
    alternating the two in rounds so that both see the same machine load."""
    elbo = Enumerate().elbo()
    results = {"pyro": [], "torch": []}
    for impl in ("pyro", "torch") * 3:
        torch.manual_seed(seed)
        net = GMVAEModule(X.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        batches = [X[torch.randint(len(X), (batch_size,))] for _ in range(steps + 2)]
        for i, x in enumerate(batches):
            if i == 2:  # two warm-up steps
                start = time.perf_counter()
            opt.zero_grad()
            if impl == "pyro":
                loss = elbo.differentiable_loss(net.model, net.guide, x) / batch_size
            else:
                loss = enumerated_loss(net, x) / batch_size
            loss.backward()
            opt.step()
        results[impl].append(steps * batch_size / (time.perf_counter() - start))
    pyro_ips, torch_ips = max(results["pyro"]), max(results["torch"])
    return {
        "pyro_images_per_s": pyro_ips,
        "torch_images_per_s": torch_ips,
        "ratio": pyro_ips / torch_ips,
        "steps": steps,
        "batch_size": batch_size,
    }


def summarise(rows: list[dict]) -> dict:
    out = {}
    for key in ("acc", "nmi", "ari", "seconds_per_epoch", "images_per_s"):
        vals = [r[key] for r in rows]
        out[key] = {"mean": statistics.mean(vals), "sd": statistics.pstdev(vals), "min": min(vals)}
    return out


def markdown(result: dict) -> str:
    lines = [
        f"MNIST-test, N={result['n']}, K=10, batch 64, Adam (SVI learning rate per row; "
        f"pre-training at 1e-3), {result['threads']} torch thread(s), {result['machine']}.",
        "",
        "| method | epochs | seeds | ACC mean ± sd (min) | NMI mean ± sd | ARI mean ± sd "
        "| pre-training s | s/epoch | images/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, s in result["summary"].items():
        rows = [r for r in result["runs"] if r["method"] == method]
        lines.append(
            f"| {method} | {rows[0]['epochs']} | {len(rows)} "
            f"| {s['acc']['mean']:.3f} ± {s['acc']['sd']:.3f} ({s['acc']['min']:.3f}) "
            f"| {s['nmi']['mean']:.3f} ± {s['nmi']['sd']:.3f} "
            f"| {s['ari']['mean']:.3f} ± {s['ari']['sd']:.3f} "
            f"| {statistics.mean(r['pretrain_seconds'] for r in rows):.0f} "
            f"| {s['seconds_per_epoch']['mean']:.1f} | {s['images_per_s']['mean']:.0f} |"
        )
    km = result["kmeans"]
    lines.append(
        f"| k-means on pixels | - | 1 | {km['acc']:.3f} | {km['nmi']:.3f} "
        f"| {km['ari']:.3f} | - | - | - |"
    )
    sp = result["speed"]
    lines += [
        "",
        f"Training step throughput, enumerated loss, batch {sp['batch_size']}, best of 3 "
        f"rounds of {sp['steps']} steps: Pyro {sp['pyro_images_per_s']:.0f} images/s, "
        f"plain PyTorch {sp['torch_images_per_s']:.0f} images/s, "
        f"ratio {sp['ratio']:.2f}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--discrete", nargs="+", default=["enumerate", "relaxed"], help="treatments of y to run"
    )
    p.add_argument("--epochs-enumerate", type=int, default=10)
    p.add_argument("--epochs-relaxed", type=int, default=20)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-4, help="SVI learning rate after pre-training")
    p.add_argument("--pretrain-epochs", type=int, default=15)
    p.add_argument(
        "--random-init-seeds",
        nargs="*",
        type=int,
        default=[0, 1],
        help="also fit the plain configuration (z=64, random init) with these seeds",
    )
    p.add_argument("--n", type=int, default=None, help="use a subset of this many images")
    p.add_argument("--speed-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mnist", default=None, help="folder of the MNIST-test IDX files")
    p.add_argument("--json", default="benchmarks/results/gmvae_mnist_test.json")
    p.add_argument("--markdown", default="docs/benchmarks/gmvae_mnist_test.md")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    data = load_mnist_test(args.mnist).subset(args.n)
    X, y = data.X, data.y
    pyro.set_rng_seed(0)
    km_labels = KMeans(10, n_init=10, random_state=0).fit_predict(X.numpy())
    configs = [
        (
            {
                "latent_dim": args.latent_dim,
                "init": "pretrain",
                "lr": args.lr,
                "pretrain_epochs": args.pretrain_epochs,
            },
            args.seeds,
        ),
        ({"latent_dim": 64, "init": "random", "lr": 1e-3}, args.random_init_seeds),
    ]
    runs = []
    for options, seeds in configs:
        for mode in args.discrete:
            epochs = args.epochs_enumerate if mode == "enumerate" else args.epochs_relaxed
            for seed in seeds:
                run = fit_one(X, y, mode, epochs, seed, **options)
                runs.append(run)
                print(json.dumps(run), flush=True)
    result = {
        "n": len(X),
        "threads": args.threads,
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "machine": machine(),
        "runs": runs,
        "summary": {
            m: summarise([r for r in runs if r["method"] == m])
            for m in dict.fromkeys(r["method"] for r in runs)
        },
        "kmeans": clustering_scores(y, km_labels),
        "speed": throughput(X, args.speed_steps),
    }
    publish(result, markdown(result), args.json, args.markdown)
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
