"""Command line: ``pyro-gmvae train | evaluate | sample``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .data import DATASETS, Dataset, load_dataset
from .estimator import GMVAE
from .metrics import clustering_scores

DEFAULT_EPOCHS = {"digits": 20}
RUN_FILES = ("model.pt", "summary.json")


def _load(args_dataset: str, root: str | None, n: int | None, seed: int) -> Dataset:
    return load_dataset(args_dataset, root).subset(n, seed)


def _prepare_run_dir(out: Path, overwrite: bool, resume: bool) -> None:
    if resume:
        if not (out / "checkpoints" / "last.ckpt").exists():
            raise SystemExit(f"error: --resume needs {out}/checkpoints/last.ckpt")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SystemExit(
                f"error: {out} exists; pass --overwrite to replace it, "
                "--resume to continue it, or choose another --out"
            )
        if not any((out / f).exists() for f in RUN_FILES + ("checkpoints",)):
            raise SystemExit(f"error: {out} is not a pyro-gmvae run folder; not replacing it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _figures(model: GMVAE, data: Dataset, folder: Path, seed: int) -> None:
    from . import plots

    folder.mkdir(exist_ok=True)
    n = min(len(data), 2000)
    X = data.X[:n]
    plots.plot_reconstructions(
        X.numpy(), model.reconstruct(X), model.image_shape_, path=folder / "reconstructions.png"
    )
    plots.plot_cluster_samples(model, seed=seed, path=folder / "samples_per_cluster.png")
    labels = None if data.y is None else data.y[:n]
    plots.plot_latent_tsne(
        model.transform(X), model.predict(X), labels, seed=seed, path=folder / "latent_tsne.png"
    )
    plots.plot_training_curves(model.history_, path=folder / "training_curves.png")
    import matplotlib.pyplot as plt

    plt.close("all")


def cmd_train(args: argparse.Namespace) -> dict:
    data = _load(args.dataset, args.data_root, args.n, args.seed)
    epochs = args.epochs or DEFAULT_EPOCHS.get(args.dataset, 100)
    out = Path(args.out or f"runs/{args.dataset}-{args.mode}-seed{args.seed}")
    _prepare_run_dir(out, args.overwrite, args.resume)
    model = GMVAE(
        n_clusters=args.clusters,
        latent_dim=args.latent_dim,
        hidden_dims=args.hidden,
        discrete=args.mode,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        binarize=args.binarize,
        init=args.init,
        pretrain_epochs=args.pretrain_epochs,
        seed=args.seed,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        progress_bar=not args.no_progress,
    )
    start = time.perf_counter()
    model.fit(
        data.X,
        data.y,
        run_dir=out,
        ckpt_path=out / "checkpoints" / "last.ckpt" if args.resume else None,
    )
    seconds = time.perf_counter() - start
    model.save(out / "model.pt", overwrite=args.resume)
    summary = {
        "dataset": args.dataset,
        "data_root": args.data_root,
        "n": len(data),
        "subset": args.n,
        "config": model.config(),
        "epochs": epochs,
        "fit_seconds": seconds,
        "elbo": model.score(data.X),
    }
    if data.y is not None:
        from sklearn.cluster import KMeans

        summary["scores"] = clustering_scores(data.y, model.predict(data.X))
        km = KMeans(args.clusters, n_init=10, random_state=args.seed).fit_predict(data.X.numpy())
        summary["kmeans_scores"] = clustering_scores(data.y, km)
    if not args.no_figures:
        _figures(model, data, out / "figures", args.seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _report(summary, out)
    return summary


def _report(summary: dict, out: Path) -> None:
    print(f"run folder: {out}")
    print(f"ELBO per sample: {summary['elbo']:.2f} nats; fit in {summary['fit_seconds']:.1f} s")
    if "scores" in summary:
        s, k = summary["scores"], summary["kmeans_scores"]
        print(f"GMVAE   ACC {s['acc']:.3f}  NMI {s['nmi']:.3f}  ARI {s['ari']:.3f}")
        print(f"k-means ACC {k['acc']:.3f}  NMI {k['nmi']:.3f}  ARI {k['ari']:.3f}")


def _run(path: str) -> tuple[Path, dict, GMVAE]:
    run = Path(path)
    if not (run / "model.pt").exists() or not (run / "summary.json").exists():
        raise SystemExit(
            f"error: {run} is not a finished pyro-gmvae run (no model.pt or summary.json)"
        )
    summary = json.loads((run / "summary.json").read_text())
    return run, summary, GMVAE.load(run / "model.pt", progress_bar=False)


def cmd_evaluate(args: argparse.Namespace) -> dict:
    run, summary, model = _run(args.run)
    name = args.dataset or summary["dataset"]
    root = args.data_root or summary.get("data_root")
    data = _load(
        name,
        root,
        summary.get("subset") if args.dataset is None else None,
        summary["config"]["seed"],
    )
    result = {"dataset": name, "n": len(data), "elbo": model.score(data.X)}
    if data.y is not None:
        result["scores"] = clustering_scores(data.y, model.predict(data.X))
    print(json.dumps(result, indent=2))
    return result


def cmd_sample(args: argparse.Namespace) -> Path:
    from . import plots

    run, _, model = _run(args.run)
    path = Path(args.out or run / "figures" / f"samples_seed{args.seed}.png")
    if path.exists() and not args.overwrite:
        raise SystemExit(f"error: {path} exists; pass --overwrite or choose another --out")
    plots.plot_cluster_samples(model, args.n_per_cluster, seed=args.seed, path=path)
    if args.npy:
        X = np.stack(
            [
                model.sample(args.n_per_cluster, cluster=k, seed=args.seed + k)[0]
                for k in range(model.n_clusters)
            ]
        )
        np.save(path.with_suffix(".npy"), X)
    print(f"samples written to {path}")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyro-gmvae", description="Gaussian-mixture VAEs in Pyro")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fit a GMVAE and write a run folder")
    t.add_argument("--dataset", choices=DATASETS, default="digits")
    t.add_argument("--data-root", default=None, help="folder of the dataset's files")
    t.add_argument("--n", type=int, default=None, help="train on a random subset of n samples")
    t.add_argument(
        "--mode",
        choices=["enumerate", "relaxed", "straight-through"],
        default="enumerate",
        help="how the discrete y is handled",
    )
    t.add_argument("--clusters", type=int, default=10)
    t.add_argument("--latent-dim", type=int, default=64)
    t.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    t.add_argument("--epochs", type=int, default=None, help="default: 20 for digits, 100 otherwise")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--binarize", action="store_true", help="dynamic binarization")
    t.add_argument(
        "--init",
        choices=["pretrain", "random"],
        default="pretrain",
        help="start from an autoencoder + t-SNE + GMM clustering, or at random",
    )
    t.add_argument("--pretrain-epochs", type=int, default=15)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="run folder (default runs/DATASET-MODE-seedS)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-figures", action="store_true")
    t.add_argument("--accelerator", default="auto")
    t.add_argument("--devices", default="auto")
    t.add_argument("--strategy", default="auto")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a run's model on its data (or another dataset)")
    e.add_argument("run")
    e.add_argument("--dataset", choices=DATASETS, default=None)
    e.add_argument("--data-root", default=None)
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("sample", help="draw samples per cluster from a run's model")
    s.add_argument("run")
    s.add_argument("--n-per-cluster", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="PNG path (default RUN/figures/samples_seedS.png)")
    s.add_argument("--npy", action="store_true", help="also save the samples as .npy")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_sample)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "devices", None) not in (None, "auto"):
        args.devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    with warnings.catch_warnings():
        # Lightning's advice on data-loader workers does not apply to in-memory tensors.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        try:
            args.func(args)
        except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
