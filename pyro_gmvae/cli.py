"""Command line: ``pyro-gmvae train | evaluate | sample | ar``.

``train`` builds its model through the catalogue with the same parameters as the API
(``GMVAE(...)``, ``VAE(...)``, ``AE(...)``; ``VAEGMM(...)`` with ``--model vae-gmm``,
``DilokthanakulGMVAE(...)`` with ``--model dilokthanakul``), whose defaults it shows: the
same settings give the same model, and the saved model loads with ``GMVAE.load(path)`` (or the
model's own class) alone.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import catalogue, files
from .components.guides import Z_GUIDES
from .components.likelihoods import LIKELIHOODS
from .components.priors import PRIORS
from .data import DATASETS, NOT_IMAGES, Dataset, is_array_file, load_dataset
from .disk import rows_within
from .estimators import AE, GMVAE, VAE, VAEGMM, DilokthanakulGMVAE, LatentEstimator
from .metrics import clustering_scores
from .pretrain import EMBEDDINGS
from .timeseries.cli import add_parser as add_ar_parser
from .training import is_global_zero, node_rank

MODELS = {cls.__name__: cls for cls in (GMVAE, VAE, AE, VAEGMM, DilokthanakulGMVAE)}
MUTUAL = "vae-gmm"  # --model vae-gmm: VAE + GMM mutual learning
# --model vae-gmm's own options: the VAEGMM parameter each sets
MUTUAL_OPTIONS = {
    "rounds": "n_rounds",
    "prior_mode": "prior_mode",
    "covariance_type": "covariance_type",
    "gibbs_sweeps": "gibbs_sweeps",
    "gibbs_burn_in": "gibbs_burn_in",
    "gibbs_chains": "gibbs_chains",
}
DILOKTHANAKUL = "dilokthanakul"  # --model dilokthanakul: DilokthanakulGMVAE
# --model dilokthanakul's own options: the DilokthanakulGMVAE parameter each sets
DILOKTHANAKUL_OPTIONS = {
    "w_dim": "w_dim",
    "mc_samples": "n_samples",
    "threshold": "threshold",
    "objective": "objective",
}
AUTOENCODER = "none"  # --prior none: the deterministic autoencoder baseline

DEFAULT_EPOCHS = {"digits": 20}
RUN_FILES = ("model.pt", "summary.json")


def _given(value, default):
    """An option's value when it was given (0 included: the estimator then says whether it is
    valid), else the default."""
    return default if value is None else value


def _default(name: str, model: type = GMVAE):
    """The API's default for a parameter, so the command line cannot drift from it."""
    return inspect.signature(model).parameters[name].default


def _defaults_help(name: str) -> str:
    """The help text's default of parameter ``name``: the GMVAE's, then each other model's
    where it differs."""

    def show(value) -> str:
        return " ".join(map(str, value)) if isinstance(value, tuple | list) else str(value)

    base = _default(name)
    others = [
        f"{show(_default(name, cls))} for {label}"
        for label, cls in ((MUTUAL, VAEGMM), (DILOKTHANAKUL, DilokthanakulGMVAE))
        if _default(name, cls) != base
    ]
    return "default: " + "; ".join([show(base), *others])


def _load(
    args_dataset: str,
    root: str | None,
    n: int | None,
    seed: int,
    labels: str | None = None,
    max_value: float = 1.0,
) -> Dataset:
    return load_dataset(args_dataset, root, labels=labels, max_value=max_value).subset(n, seed)


def _dataset(value: str) -> str:
    """A dataset's name, or the path of an .npy file (memory-mapped)."""
    if value in DATASETS or is_array_file(value):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r}: choose one of {', '.join(DATASETS)}, or give the path of an .npy file"
    )


KMEANS_FIT_AT_MOST = 20_000  # k-means on pixels fits a random subset of larger data
KMEANS_BYTES = 2**26  # ... and of wide data at most this many bytes of float32 rows at a time


def _kmeans_rows(n_features: int, k: int) -> int:
    """How many samples k-means on pixels fits at most, and predicts at a time: 20,000
    (MNIST-sized images), fewer for wider samples, so that its copies stay near 64 MiB (a
    4.5 GiB file of 48 x 48 images trained under a 1.5 GiB limit was killed by 20,000 of
    them: k-means held about 0.5 GB), and never fewer than ``k``."""
    return rows_within(KMEANS_BYTES, 4 * n_features, at_most=KMEANS_FIT_AT_MOST, at_least=k)


def _kmeans_labels(data: Dataset, k: int, seed: int) -> tuple[np.ndarray, int]:
    """k-means on the pixels (the baseline beside a model's clusters): fitted on all the
    samples, or on a random subset of larger data (:func:`_kmeans_rows`; data on disk are
    never loaded whole); every sample then gets its nearest centre, a chunk at a time.
    Returns the labels and how many samples it fitted."""
    from sklearn.cluster import KMeans

    n, rows = len(data), _kmeans_rows(data.X.shape[1], k)
    fit_on = np.sort(np.random.default_rng(seed).permutation(n)[:rows])
    # copy_x=False: the rows are a copy of our own, which k-means may centre in place
    km = KMeans(k, n_init=10, random_state=seed, copy_x=False)
    km.fit(np.asarray(data.X[fit_on], dtype=np.float32))
    labels = [km.predict(np.asarray(x, dtype=np.float32)) for x in data.X.split(rows)]
    return np.concatenate(labels), len(fit_on)


def _prepare_run_dir(out: Path, overwrite: bool, resume: bool | None) -> Path:
    """Check that ``out`` may be written and return the folder to train in: ``out`` itself, or,
    when an existing run is to be replaced, a staging folder beside it that takes its place only
    once the new run is complete (an interrupted or failed run leaves the old one as it was)."""
    if resume:
        if not (out / "checkpoints" / "last.ckpt").exists():
            raise SystemExit(f"error: --resume needs {out}/checkpoints/last.ckpt")
        return out
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SystemExit(
                f"error: {out} exists; pass --overwrite to replace it, "
                + ("" if resume is None else "--resume to continue it, ")
                + "or choose another --out"
            )
        if not any((out / f).exists() for f in RUN_FILES + ("checkpoints",)):
            raise SystemExit(f"error: {out} is not a pyro-gmvae run folder; not replacing it")
        staging = out.with_name(f".{out.name}.new")
        shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted replacement
        staging.mkdir(parents=True)
        return staging
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_same_data(out: Path, data: dict) -> None:
    """Record which data a run trains on (``data.json``); a resume must use the same data."""
    record = out / "data.json"
    if record.exists():
        saved = json.loads(record.read_text())
        changed = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in data.items() if saved.get(k) != v]
        if changed:
            raise ValueError(f"{out} was trained on other data: {'; '.join(changed)}")
    else:
        files.write_text(record, json.dumps(data))


def _replace_run(staging: Path, out: Path) -> None:
    """Put the finished run in ``staging`` in the place of the run in ``out``."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old)


def _plot_samples(
    model: LatentEstimator, n: int, seed: int, path: Path, data: np.ndarray | None = None
) -> np.ndarray:
    """Samples per cluster (GMVAE) or a grid of 10 rows of ``n`` (VAE); for one-dimensional
    data, histograms (beside ``data``'s when given). Returns them."""
    from . import plots

    if isinstance(model, AE):
        raise ValueError("an autoencoder has no prior on z to sample from")
    if model.n_features_in_ == 1:
        if model.has_clusters:
            samples = plots.cluster_samples(model, n, seed)
        else:
            samples = model.sample(10 * n, seed=seed)[None]
        plots.plot_samples_1d(data, samples, path=path)
        return samples
    if isinstance(model, GMVAE | VAEGMM | DilokthanakulGMVAE):
        samples = plots.cluster_samples(model, n, seed)
        plots.plot_cluster_samples(model, path=path, samples=samples)
        return samples
    X = model.sample(10 * n, seed=seed)
    plots.image_grid(X, model.image_shape_, 10, title="Samples from p(x)", path=path)
    return X.reshape(10, n, -1)


def _figures(model: LatentEstimator, data: Dataset, folder: Path, seed: int) -> None:
    from . import plots

    folder.mkdir(exist_ok=True)
    n = min(len(data), 2000)
    X = data.X[:n]
    labels = None if data.y is None else data.y[:n]
    clusters = model.predict(X) if model.has_clusters else None
    if data.name in NOT_IMAGES:  # not pixels: histograms and a linear latent map
        if not isinstance(model, AE):
            _plot_samples(model, 200, seed, folder / "samples.png", data.X.numpy())
        plots.plot_latent_pca(
            model.transform(X), clusters, labels, seed=seed, path=folder / "latent_pca.png"
        )
    else:
        plots.plot_reconstructions(
            X.numpy(), model.reconstruct(X), model.image_shape_, path=folder / "reconstructions.png"
        )
        if not isinstance(model, AE):
            _plot_samples(model, 10, seed, folder / "samples.png")
        plots.plot_latent_tsne(
            model.transform(X), clusters, labels, seed=seed, path=folder / "latent_tsne.png"
        )
    plots.plot_training_curves(model.history_, path=folder / "training_curves.png")
    if isinstance(model, VAEGMM):
        plots.plot_gibbs_trace(model.gibbs_history_, path=folder / "gibbs_trace.png")
        gmm = model.gmm_
        plots.plot_gaussians_2d(
            model.transform(X),
            gmm.means_,
            gmm.covariances_,
            clusters,
            seed=seed,
            path=folder / "gaussians_2d.png",
        )
    import matplotlib.pyplot as plt

    plt.close("all")


def _default_likelihood(dataset: str) -> str:
    """Pixels get the estimators' default likelihood; data that are not pixels a Gaussian."""
    return "gaussian" if dataset in NOT_IMAGES else _default("likelihood")


def _refuse(options: dict[str, object], what: str) -> None:
    """Options given on the command line that the chosen model has no use for are refused
    rather than ignored."""
    for option, value in options.items():
        if value is not None:
            raise ValueError(f"{option} does not apply to {what}")


def _model(args: argparse.Namespace, epochs: int | None) -> LatentEstimator:
    """The estimator the options describe, built as the API builds it; options that the
    chosen model has no use for (the treatment of y without a y, clusters without a mixture, a
    guide or an init for the autoencoder, Gibbs settings without a GMM) are refused."""
    mutual = {f"--{k.replace('_', '-')}": getattr(args, k) for k in MUTUAL_OPTIONS}
    dilok = {f"--{k.replace('_', '-')}": getattr(args, k) for k in DILOKTHANAKUL_OPTIONS}
    cls = {MUTUAL: VAEGMM, DILOKTHANAKUL: DilokthanakulGMVAE}.get(args.model, GMVAE)
    options = dict(
        hidden_dims=tuple(_given(args.hidden, _default("hidden_dims", cls))),
        likelihood=_given(args.likelihood, _default_likelihood(args.dataset)),
        batch_size=_given(args.batch_size, _default("batch_size", cls)),
        lr=_given(args.lr, _default("lr", cls)),
        seed=args.seed,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        num_nodes=args.num_nodes,
        progress_bar=not args.no_progress,
    )
    if args.binarize is not None:
        options["binarize"] = args.binarize
    elif args.dataset in NOT_IMAGES:  # no pixels to binarise (VAEGMM binarises by default)
        options["binarize"] = False
    if args.model != DILOKTHANAKUL:
        _refuse(dilok, "this model (only to --model dilokthanakul)")
    if args.model in (DILOKTHANAKUL, MUTUAL):
        # models with priors of their own: no prior or treatment of y to choose
        refused = {"--prior": args.prior, "--discrete": args.discrete}
        if args.model == DILOKTHANAKUL:  # nor pre-training
            refused.update(mutual, **{"--z-guide": args.z_guide, "--init": args.init})
            refused["--pretrain-epochs"] = args.pretrain_epochs
            refused["--pretrain-embedding"] = args.pretrain_embedding
            if args.objective == "elbo":  # the threshold belongs to the paper's objective
                _refuse({"--threshold": args.threshold}, "--objective elbo (no threshold)")
            own, extra = DILOKTHANAKUL_OPTIONS, {}
            why = "--model dilokthanakul (its prior is p(z | w, y) from prior networks)"
        else:
            own = {
                **MUTUAL_OPTIONS,
                "init": "init",
                "pretrain_epochs": "pretrain_epochs",
                "pretrain_embedding": "pretrain_embedding",
            }
            extra = {"z_guide": _given(args.z_guide, _default("z_guide", cls))}
            why = "--model vae-gmm (its prior is the GMM's mixture)"
        _refuse(refused, why)
        given = {param: getattr(args, option) for option, param in own.items()}
        return cls(
            n_clusters=_given(args.clusters, _default("n_clusters", cls)),
            latent_dim=_given(args.latent_dim, _default("latent_dim", cls)),
            epochs=_given(epochs, _default("epochs", cls)),
            **extra,
            **{k: v for k, v in given.items() if v is not None},
            **options,
        )
    _refuse(mutual, "this model (only to --model vae-gmm)")
    prior = _given(args.prior, _default("prior"))
    autoencoder = prior == AUTOENCODER
    has_y = not autoencoder and PRIORS[prior][0]
    refused = {} if has_y else {"--discrete": args.discrete}
    if autoencoder or prior in ("standard-normal", "vamp"):
        refused["--clusters"] = args.clusters
    if autoencoder:
        refused.update({"--z-guide": args.z_guide, "--init": args.init})
        refused["--pretrain-epochs"] = args.pretrain_epochs
        refused["--pretrain-embedding"] = args.pretrain_embedding
    what = "the autoencoder" if autoencoder else "a VAE, no y"
    _refuse(refused, f"--prior {prior} ({what})")
    options.update(
        latent_dim=_given(args.latent_dim, _default("latent_dim")),
        epochs=_given(epochs, DEFAULT_EPOCHS.get(args.dataset, _default("epochs"))),
    )
    if autoencoder:
        return AE(**options)
    options.update(
        init=_given(args.init, _default("init")),
        pretrain_epochs=_given(args.pretrain_epochs, _default("pretrain_epochs")),
    )
    if args.pretrain_embedding is not None:  # each model has its own default
        options["pretrain_embedding"] = args.pretrain_embedding
    discrete = (_given(args.discrete, _default("discrete"))) if has_y else None
    combo = catalogue.Combination(prior, discrete, _given(args.z_guide, _default("z_guide")))
    return combo.build(_given(args.clusters, _default("n_clusters")), **options)


def _default_out(args: argparse.Namespace, model: LatentEstimator) -> Path:
    """runs/DATASET-MODEL-seedS, naming only what differs from the default GMVAE."""
    if isinstance(model, AE):
        parts = ["autoencoder"]
    elif isinstance(model, DilokthanakulGMVAE):
        parts = [DILOKTHANAKUL]
    elif isinstance(model, VAEGMM):
        mode = model.prior_mode
        parts = [MUTUAL, mode if mode != _default("prior_mode", VAEGMM) else None]
    else:
        params = model.get_params()
        parts = [params["prior"] if params["prior"] != _default("prior") else None]
        discrete = params.get("discrete")
        parts += [discrete if discrete != _default("discrete") else None]
        parts += [params["z_guide"] if params["z_guide"] != _default("z_guide") else None]
    dataset = Path(args.dataset).stem if is_array_file(args.dataset) else args.dataset
    name = "-".join(p for p in [dataset, *parts] if p)
    return Path(f"runs/{name}-seed{args.seed}")


# The run folder of the first process, for the processes that data-parallel training starts
# (they inherit its environment).
RUN_DIR_VARIABLE = "PYRO_GMVAE_RUN_DIR"


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set the environment variable ``name`` inside the block, as it was afterwards."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def _started_run_dir(args: argparse.Namespace, model: LatentEstimator) -> Path:
    """The run folder of a process that is not the first of a data-parallel run, which trains
    and writes nothing: the first process's, where that process started it (``"ddp"`` runs the
    command once per device); on another machine (``--num-nodes``, ``NODE_RANK`` > 0), where a
    user started it, the folder the same options name there (the run folder must be on a
    filesystem every machine sees)."""
    if RUN_DIR_VARIABLE in os.environ:
        return Path(os.environ[RUN_DIR_VARIABLE])
    if node_rank() > 0:
        return Path(args.out) if args.out else _default_out(args, model)
    raise ValueError(
        "this process is not the first of a data-parallel run, but the first did not "
        "start it: run pyro-gmvae train --devices N --strategy ddp once per machine, and "
        "Lightning starts the other processes (torchrun and cluster launchers are not "
        "supported)"
    )


def cmd_train(args: argparse.Namespace) -> dict:
    if is_array_file(args.dataset):  # recorded as absolute paths: evaluate runs from anywhere
        args.dataset = str(Path(args.dataset).resolve())
        args.labels = args.labels and str(Path(args.labels).resolve())
    data = _load(args.dataset, args.data_root, args.n, args.seed, args.labels, args.max_value)
    model = _model(args, args.epochs)  # bad options fail before any file is written
    if args.resume and isinstance(model, VAEGMM):
        raise ValueError(
            "--resume does not apply to --model vae-gmm: it fits in rounds, train again"
        )
    first = is_global_zero()
    if first:
        target = Path(args.out) if args.out else _default_out(args, model)
        for given in (args.dataset, args.labels):  # a replaced run folder is deleted whole
            if given and is_array_file(given) and target.resolve() in Path(given).parents:
                raise ValueError(f"{given} is inside the run folder {target}: move it out first")
        out = _prepare_run_dir(target, args.overwrite, args.resume)
        data_record = {"dataset": args.dataset, "data_root": args.data_root, "n": args.n}
        if is_array_file(args.dataset):
            data_record.update(labels=args.labels, max_value=args.max_value)
        _check_same_data(out, data_record)
    else:  # started by data-parallel training: trains in the first process's folder, silently
        out = _started_run_dir(args, model)
    start = time.perf_counter()
    with _environment(RUN_DIR_VARIABLE, str(out)), warnings.catch_warnings():
        if not first:
            warnings.simplefilter("ignore")  # the first process reports
        model.fit(
            data.X,
            data.y,
            run_dir=out,
            ckpt_path=out / "checkpoints" / "last.ckpt" if args.resume else None,
        )
    if not first:
        return {}
    seconds = time.perf_counter() - start
    model.save(out / "model.pt", overwrite=args.resume)
    summary = {
        "dataset": args.dataset,
        "data_root": args.data_root,
        "labels": args.labels,
        "max_value": args.max_value,
        "n": len(data),
        "subset": args.n,
        "config": model.configuration(),
        # what the data chose where a setting is "auto" (e.g. discrete_: how y was treated)
        **{name: getattr(model, name) for name in model._chosen_from_data},
        "epochs": model.epochs,
        "fit_seconds": seconds,
        "elbo": model.score(data.X),
    }
    note = model.likelihood_note(data.X)
    if note is not None:
        summary["elbo_note"] = note
    if data.y is not None and model.has_clusters:
        proba = model.predict_proba(data.X)  # k-means gets as many clusters as the model
        summary["scores"] = clustering_scores(data.y, proba.argmax(1))
        km, summary["kmeans_fitted_on"] = _kmeans_labels(data, proba.shape[1], args.seed)
        summary["kmeans_scores"] = clustering_scores(data.y, km)
    if isinstance(model, VAEGMM):
        summary.update(rounds=model.rounds_, best_round=model.best_round_)
    if not args.no_figures:
        _figures(model, data, out / "figures", args.seed)
    files.write_text(out / "summary.json", json.dumps(summary, indent=2))
    if out != target:
        _replace_run(out, target)
    _report(summary, target)
    return summary


def _report(summary: dict, out: Path) -> None:
    print(f"run folder: {out}")
    # the autoencoder's "ELBO" is its reconstruction log-likelihood (see AE)
    grey = " (Bernoulli on grey levels: a cross-entropy bound)" if "elbo_note" in summary else ""
    print(
        f"ELBO per sample: {summary['elbo']:.2f} nats{grey}; fit in {summary['fit_seconds']:.1f} s"
    )
    if "scores" in summary:
        s, k = summary["scores"], summary["kmeans_scores"]
        name = summary["config"]["model"]
        mode = f"  (y: {summary['discrete_']})" if summary.get("discrete_") else ""
        print(f"{name:<7} ACC {s['acc']:.3f}  NMI {s['nmi']:.3f}  ARI {s['ari']:.3f}{mode}")
        print(f"k-means ACC {k['acc']:.3f}  NMI {k['nmi']:.3f}  ARI {k['ari']:.3f}")


def _run(path: str) -> tuple[Path, dict, LatentEstimator]:
    run = Path(path)
    if not (run / "model.pt").exists() or not (run / "summary.json").exists():
        raise SystemExit(
            f"error: {run} is not a finished pyro-gmvae run (no model.pt or summary.json)"
        )
    summary = json.loads((run / "summary.json").read_text())
    model = MODELS[summary["config"]["model"]].load(run / "model.pt")
    return run, summary, model.set_params(progress_bar=False)


def cmd_evaluate(args: argparse.Namespace) -> dict:
    run, summary, model = _run(args.run)
    own = args.dataset is None  # the run's own data, as it was trained on
    if own and (args.labels is not None or args.max_value is not None):
        raise ValueError("--labels and --max-value go with --dataset FILE.npy")
    name = args.dataset or summary["dataset"]
    root = args.data_root or summary.get("data_root")
    scale = summary.get("max_value", 1.0) if is_array_file(name) else 1.0  # the run's
    data = _load(
        name,
        root,
        summary.get("subset") if own else None,
        summary["config"]["seed"],
        summary.get("labels") if own else args.labels,
        scale if args.max_value is None else args.max_value,
    )
    result = {"dataset": name, "n": len(data), "elbo": model.score(data.X)}
    if args.iw_samples:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the note below says it once, in the result
            log_px = model.log_likelihood(data.X, args.iw_samples, seed=summary["config"]["seed"])
        result["iw_log_likelihood"] = float(log_px.mean())
    note = model.likelihood_note(data.X)
    if note is not None:  # e.g. a Bernoulli likelihood on grey levels
        result["note"] = note
    if data.y is not None and model.has_clusters:
        result["scores"] = clustering_scores(data.y, model.predict(data.X))
    print(json.dumps(result, indent=2))
    return result


def cmd_sample(args: argparse.Namespace) -> Path:
    run, _, model = _run(args.run)
    path = Path(args.out or run / "figures" / f"samples_seed{args.seed}.png")
    targets = [path, path.with_suffix(".npy")] if args.npy else [path]
    for target in targets:
        if target.exists() and not args.overwrite:
            raise SystemExit(f"error: {target} exists; pass --overwrite or choose another --out")
    X = _plot_samples(model, args.n_per_cluster, args.seed, path)
    if args.npy:
        np.save(path.with_suffix(".npy"), X)
    print(f"samples written to {path}")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyro-gmvae", description="Gaussian-mixture VAEs in Pyro")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fit a model (a GMVAE by default) and write a run folder")
    array_help = (
        f"{', '.join(DATASETS)}, or the path of an .npy file of samples (memory-mapped: read a "
        "batch at a time, never loaded whole)"
    )
    t.add_argument("--dataset", type=_dataset, default="digits", help=array_help)
    t.add_argument("--data-root", default=None, help="folder of the dataset's files")
    _add_array_options(t, 1.0)
    t.add_argument("--n", type=int, default=None, help="train on a random subset of n samples")
    t.add_argument(
        "--model",
        choices=[MUTUAL, DILOKTHANAKUL],
        default=None,
        help="vae-gmm: VAE + Gibbs-sampled GMM mutual learning (VAEGMM); dilokthanakul: "
        "Dilokthanakul et al.'s GMVAE (DilokthanakulGMVAE); without it the model follows "
        "from --prior",
    )
    t.add_argument(
        "--prior",
        choices=[*PRIORS, AUTOENCODER],
        default=None,
        help="prior on z: learned-mixture (diagonal covariances), learned-full-mixture (full ones) "
        "and fixed-mixture make a GMVAE, the others a VAE; "
        f"none trains the autoencoder baseline (default: {_default('prior')})",
    )
    t.add_argument(
        "--discrete",
        choices=("auto", *catalogue.DISCRETE),
        default=None,
        help=f"how the discrete y is treated (GMVAE priors; default: {_default('discrete')})",
    )
    t.add_argument(
        "--z-guide",
        choices=list(Z_GUIDES),
        default=None,
        help=f"q(z|x) (default: {_default('z_guide')})",
    )
    t.add_argument(
        "--likelihood",
        choices=sorted(LIKELIHOODS),
        default=None,
        help=f"p(x | z) (default: {_default('likelihood')}; gaussian for {', '.join(NOT_IMAGES)})",
    )
    t.add_argument(
        "--clusters",
        type=int,
        default=None,
        help="K: clusters (GMVAE priors) or the mixture-marginal's components "
        f"(default: {_default('n_clusters')})",
    )
    t.add_argument(
        "--latent-dim",
        type=int,
        default=None,
        help=_defaults_help("latent_dim"),
    )
    t.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help=f"hidden layer sizes ({_defaults_help('hidden_dims')})",
    )
    t.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"default: 20 for digits, {_default('epochs')} otherwise; per round for vae-gmm "
        f"(default {_default('epochs', VAEGMM)})",
    )
    t.add_argument("--batch-size", type=int, default=None, help=_defaults_help("batch_size"))
    t.add_argument("--lr", type=float, default=None, help=_defaults_help("lr"))
    t.add_argument(
        "--binarize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dynamic binarization: a fresh Bernoulli draw of the pixels for every batch "
        f"(default: {'on' if _default('binarize', VAEGMM) else 'off'} for vae-gmm, "
        f"{'on' if _default('binarize') else 'off'} otherwise)",
    )
    t.add_argument(
        "--init",
        choices=["auto", "pretrain", "random"],
        default=None,
        help="start from an autoencoder + 2-D embedding + GMM clustering that places the "
        "mixture's components, or at random; auto (the default) pre-trains the learned mixtures; "
        f"vae-gmm: pretrain or random (default {_default('init', VAEGMM)})",
    )
    t.add_argument(
        "--pretrain-epochs",
        type=int,
        default=None,
        help=f"autoencoder epochs of pre-training (default: {_default('pretrain_epochs')})",
    )
    t.add_argument(
        "--pretrain-embedding",
        choices=list(EMBEDDINGS),
        default=None,
        help="the 2-D embedding pre-training clusters the codes in (default: "
        f"{_default('pretrain_embedding')} for the GMVAE, "
        f"{_default('pretrain_embedding', VAEGMM)} for vae-gmm, "
        f"{_default('pretrain_embedding', VAE)} for the VaDE prior)",
    )
    g = t.add_argument_group("--model vae-gmm")
    g.add_argument("--rounds", type=int, default=None, help="rounds of VAE and Gibbs fitting")
    g.add_argument("--prior-mode", choices=["assigned", "mixture"], default=None)
    g.add_argument("--covariance-type", choices=["full", "diag"], default=None)
    g.add_argument("--gibbs-sweeps", type=int, default=None, help="per round, burn-in included")
    g.add_argument("--gibbs-burn-in", type=int, default=None)
    g.add_argument("--gibbs-chains", type=int, default=None)
    d = t.add_argument_group("--model dilokthanakul")

    def own(name: str) -> str:
        return f"default: {_default(name, DilokthanakulGMVAE)}"

    d.add_argument(
        "--w-dim", type=int, default=None, help=f"size of the noise latent w ({own('w_dim')})"
    )
    d.add_argument(
        "--mc-samples",
        type=int,
        default=None,
        help=f"M draws of (w, z) per point ({own('n_samples')})",
    )
    d.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=f"lambda of the y-prior term, objective paper ({own('threshold')})",
    )
    d.add_argument("--objective", choices=["paper", "elbo"], default=None,
                   help=own("objective"))  # fmt: skip
    t.add_argument("--seed", type=int, default=_default("seed"))
    t.add_argument("--out", default=None, help="run folder (default runs/DATASET-MODEL-seedS)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-figures", action="store_true")
    t.add_argument("--accelerator", default="auto")
    t.add_argument(
        "--devices",
        type=lambda v: int(v) if v.isdigit() else v,
        default=_default("devices"),
        help="how many devices (several: data-parallel, with --strategy ddp)",
    )
    t.add_argument(
        "--strategy",
        default="auto",
        help="'auto' (one device) or 'ddp' (one process per device, each with --batch-size "
        "points of every global batch; only the first writes the run folder)",
    )
    t.add_argument(
        "--num-nodes",
        type=int,
        default=_default("num_nodes"),
        help="machines of a data-parallel run (with --strategy ddp): run the same command on "
        "each, with NODE_RANK, MASTER_ADDR and MASTER_PORT set",
    )
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a run's model on its data (or another dataset)")
    e.add_argument("run")
    e.add_argument("--dataset", type=_dataset, default=None, help=array_help)
    e.add_argument("--data-root", default=None)
    _add_array_options(e, None)
    e.add_argument(
        "--iw-samples",
        type=int,
        default=0,
        help="also estimate log p(x) with this many importance samples (default: skip)",
    )
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("sample", help="draw samples (per cluster for a GMVAE) from a run's model")
    s.add_argument("run")
    s.add_argument(
        "--n-per-cluster", type=int, default=10, help="per cluster; a VAE draws 10 rows of this"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="PNG path (default RUN/figures/samples_seedS.png)")
    s.add_argument("--npy", action="store_true", help="also save the samples as .npy")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_sample)

    add_ar_parser(sub)  # time series: pyro_gmvae.timeseries.cli
    return p


def _add_array_options(parser: argparse.ArgumentParser, max_value: float | None) -> None:
    parser.add_argument(
        "--labels", default=None, help="with an .npy dataset: an .npy file of its labels"
    )
    parser.add_argument(
        "--max-value",
        type=float,
        default=max_value,
        help="with an .npy dataset: values are divided by it as they are read (255 for bytes)"
        + ("" if max_value is not None else "; default: the run's"),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args.func(args)
        except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the command line as one line each, without Python's source lines."""
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
