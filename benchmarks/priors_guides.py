"""Benchmark: priors, treatments of y and z-guides on MNIST-test, trained on 8,000 images and
evaluated on the other 2,000 (a fixed split), over several seeds: held-out ELBO,
importance-weighted log-likelihood, ACC where the model has clusters, and training images/s.

Two protocols:

* ``--protocol binarised`` (default), the literature's: training images binarised afresh for
  every batch (dynamic binarisation), the held-out images binarised once with a fixed seed, so
  that log p(x) is the log-probability of binary images. It runs the headline rows (``--all``
  for every combination).
* ``--protocol grey``: a Bernoulli likelihood on grey levels, every combination. Not a
  normalised density: its "log-likelihoods" cannot be set beside published ones.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/priors_guides.py

Each finished (row, seed) run is appended to a cache file, so an interrupted run resumes where
it stopped, and ``--shard I/N`` splits the work across processes (``make bench-priors`` runs two
one-thread shards, then publishes). The cache is keyed by the protocol, not by the code: delete
it after changing the models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, publish  # noqa: E402

from pyro_gmvae import AE, clustering_scores, load_mnist_test  # noqa: E402
from pyro_gmvae.catalogue import UNSUPPORTED, combinations


def evaluate(model, X_train, X_eval, y_eval, iw_samples: int) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train)
    seconds = time.perf_counter() - start - model.pretrain_seconds_  # SVI epochs only
    row = {
        "images_per_s": len(X_train) * model.epochs / seconds,
        "test_elbo": model.score(X_eval),
        "binarize": model.binarize,
    }
    try:
        row["iw_log_likelihood"] = float(model.log_likelihood(X_eval, iw_samples).mean())
    except ValueError:  # the autoencoder has no density
        row["iw_log_likelihood"] = None
    clusters = model.has_clusters
    row["acc"] = clustering_scores(y_eval, model.predict(X_eval))["acc"] if clusters else None
    return row


BASELINE = "standard-normal / diagonal"  # the plain VAE every prior is measured against
# the mixture priors once more, started from pre-training (autoencoder + clustered codes), and
# the baseline trained for as many epochs in all, since pre-training is extra passes over the data
PRETRAINED = ("mixture-marginal / diagonal", "learned-mixture / enumerate / diagonal")
PRETRAIN_EPOCHS = 15
# the binarised protocol's rows, in order, then the baseline trained for as many epochs as the
# pre-trained rows
HEADLINE = (
    BASELINE,
    "standard-normal / flow",  # the flow guide's own gain, to set the mixture's beside
    "learned-mixture / enumerate / diagonal",
    "learned-mixture / enumerate / flow",
    "vamp / diagonal",
    "mixture-marginal / diagonal, init=pretrain",
    "learned-mixture / enumerate / diagonal, init=pretrain",
)


def mean_sd(values: list[float]) -> dict | None:
    return {"mean": statistics.mean(values), "sd": statistics.pstdev(values)} if values else None


def summarise(runs: list[dict], baseline: list[dict] | None) -> dict:
    """Mean and sd over seeds of each figure, and of the IW log-likelihood's gain over the
    baseline's, paired by seed (same data split, same seed)."""
    out = {
        key: mean_sd([r[key] for r in runs if r[key] is not None])
        for key in ("test_elbo", "iw_log_likelihood", "acc", "images_per_s")
    }
    gains = [
        r["iw_log_likelihood"] - b["iw_log_likelihood"]
        for r, b in zip(runs, baseline or [], strict=False)
        if r["iw_log_likelihood"] is not None
    ]
    out["iw_gain"] = mean_sd(gains)
    return out


def fmt(stat: dict | None, digits: int = 1) -> str:
    if stat is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


PROTOCOL_TEXT = {
    "binarised": "Binarised protocol (the literature's): training images binarised afresh for "
    "every batch, held-out images binarised once (fixed seed 0); IW log p(x) is the "
    "log-probability of binary images in nats.",
    "grey": "Grey-level protocol: a Bernoulli likelihood on grey-level pixels, which is not a "
    "normalised density; these ELBOs and IW figures are not log-likelihoods and are not "
    "comparable with published (binarised-MNIST) numbers.",
}


def markdown(result: dict) -> str:
    lines = [
        PROTOCOL_TEXT[result["protocol"]],
        "",
        f"MNIST-test, {result['n_train']} training / {result['n_eval']} held-out images, "
        f"K=10, latent {result['latent_dim']}, hidden {result['hidden_dims']}, "
        f"{result['epochs']} epochs, seeds {result['seeds']}, IW with S={result['iw_samples']}, "
        f"random init unless the row says init=pretrain ({PRETRAIN_EPOCHS} autoencoder epochs "
        f"first), {result['threads']} torch thread(s), {result['machine']}; mean ± population "
        "standard deviation over the seeds.",
        "",
        "| model | prior / treatment of y / z-guide | held-out ELBO | IW log p(x) "
        f"| IW gain over {BASELINE} | ACC | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        if "unsupported" in row:
            lines.append(
                f"| {row['model']} | {row['name']} | unsupported: {row['unsupported']} | | | | |"
            )
            continue
        s = row["summary"]
        lines.append(
            f"| {row['model']} | {row['name']} | {fmt(s['test_elbo'])} "
            f"| {fmt(s['iw_log_likelihood'])} | {fmt(s['iw_gain'])} | {fmt(s['acc'], 3)} "
            f"| {fmt(s['images_per_s'], 0)} |"
        )
    note = "The gain column pairs each seed with the same seed of the baseline."
    if any(row["name"] == "autoencoder" for row in result["rows"]):
        note = (
            "For the autoencoder the ELBO column is its reconstruction log-likelihood "
            "log p(x | decoder(encoder(x))); it defines no density of x, so no IW estimate. " + note
        )
    lines += ["", note]
    return "\n".join(lines) + "\n"


def split(data, n_train: int, n_eval: int, binarised: bool):
    """The first ``n_train`` images for training and the last ``n_eval`` (with their labels)
    for evaluation; under the binarised protocol the held-out images are binarised once, with a
    fixed seed (the training images are binarised afresh for every batch by the models)."""
    X_train, X_eval, y_eval = data.X[:n_train], data.X[-n_eval:], data.y[-n_eval:]
    if binarised:
        X_eval = torch.bernoulli(X_eval, generator=torch.Generator().manual_seed(0))
    return X_train, X_eval, y_eval


def load_cache(path: Path, protocol: dict) -> dict[tuple[str, int], dict]:
    """Runs already done under this protocol, by (combination, seed)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.pop("protocol") == protocol:
                done[entry.pop("name"), entry.pop("seed")] = entry
    return done


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--protocol", choices=("binarised", "grey"), default="binarised")
    p.add_argument(
        "--all", action="store_true", help="every combination (default for the grey protocol)"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--n-train", type=int, default=8000)
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--iw-samples", type=int, default=1000)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    p.add_argument("--only", default=None, help="run the combinations whose name contains this")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mnist", default=None, help="folder of the MNIST-test IDX files")
    p.add_argument(
        "--cache",
        default="benchmarks/results/priors_guides.runs.jsonl",
        help="one line per finished run; runs found there under the same protocol are not redone",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run only every N-th (combination, seed) starting at I and publish nothing; "
        "a later run without --shard collects the cache and publishes",
    )
    p.add_argument("--json", default=None, help="default benchmarks/results/priors_guides*.json")
    p.add_argument("--markdown", default=None, help="default docs/benchmarks/priors_guides*.md")
    args = p.parse_args(argv)
    suffix = "" if args.protocol == "binarised" else "_grey"
    args.json = args.json or f"benchmarks/results/priors_guides{suffix}.json"
    args.markdown = args.markdown or f"docs/benchmarks/priors_guides{suffix}.md"
    binarised = args.protocol == "binarised"
    try:
        shard, n_shards = (int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    except ValueError:
        p.error(f"--shard must be I/N with integers I and N, got {args.shard}")
    if not 0 <= shard < n_shards:
        p.error(f"--shard must be I/N with 0 <= I < N, got {args.shard}")

    torch.set_num_threads(args.threads)
    data = load_mnist_test(args.mnist).subset(10000, seed=0)  # a fixed shuffle, then split
    X_train, X_eval, y_eval = split(data, args.n_train, args.n_eval, binarised)
    protocol = {
        "n_train": len(X_train),
        "n_eval": len(X_eval),
        "epochs": args.epochs,
        "iw_samples": args.iw_samples,
        "latent_dim": args.latent_dim,
        "hidden_dims": args.hidden,
    }
    if binarised:  # (grey-level runs cached before protocols were named keep their key)
        protocol["data"] = "binarised"
    options = dict(
        latent_dim=args.latent_dim,
        hidden_dims=tuple(args.hidden),
        epochs=args.epochs,
        binarize=binarised,
        progress_bar=False,
    )
    # (row name, combination or None for the autoencoder, extra constructor options)
    entries = [(c.name, c, {}) for c in combinations(include_unsupported=True)]
    by_name = {name: combo for name, combo, _ in entries}
    # pre-trained with t-SNE, as these rows were measured (the GMVAE's default is now 'auto')
    pretrained = {
        "init": "pretrain",
        "pretrain_epochs": PRETRAIN_EPOCHS,
        "pretrain_embedding": "tsne",
    }
    entries += [(f"{n}, init=pretrain", by_name[n], pretrained) for n in PRETRAINED]
    longer = args.epochs + PRETRAIN_EPOCHS
    matched = (f"{BASELINE}, {longer} epochs", by_name[BASELINE], {"epochs": longer})
    entries += [matched, ("autoencoder", None, {})]
    if binarised and not args.all:
        headline = (*HEADLINE, matched[0])
        entries = sorted(
            (e for e in entries if e[0] in headline), key=lambda e: headline.index(e[0])
        )
    entries = [e for e in entries if args.only is None or args.only in e[0]]
    tasks = [(name, c, extra) for name, c, extra in entries if c is None or c.supported]
    cache = Path(args.cache)
    done = load_cache(cache, protocol)
    # seed-major order, so that an interrupted run leaves whole seeds behind
    for i, (seed, (name, combo, extra)) in enumerate((s, t) for s in args.seeds for t in tasks):
        if i % n_shards != shard or (name, seed) in done:
            continue
        model = (
            AE(**options, seed=seed)
            if combo is None
            else combo.build(10, **{**options, "init": "random", **extra}, seed=seed)
        )
        run = {
            "model": type(model).__name__,
            **evaluate(model, X_train, X_eval, y_eval, args.iw_samples),
        }
        done[name, seed] = run
        print(json.dumps({"name": name, "seed": seed, **run}), flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("a") as f:  # appended line by line: shards may share the file
            f.write(json.dumps({"protocol": protocol, "name": name, "seed": seed, **run}) + "\n")
    if args.shard:
        return None

    rows = []
    for name, combo, _ in entries:  # the catalogue's order, unsupported combinations included
        if combo is not None and not combo.supported:
            reason = UNSUPPORTED[(combo.prior, combo.z_guide)]
            rows.append({"model": "VAE", "name": name, "unsupported": reason})
            continue
        model_name = done[name, args.seeds[0]]["model"]
        runs = [{k: v for k, v in done[name, s].items() if k != "model"} for s in args.seeds]
        baseline = [done[BASELINE, seed] for seed in args.seeds if (BASELINE, seed) in done]
        summary = summarise(runs, baseline if len(baseline) == len(runs) else None)
        rows.append({"model": model_name, "name": name, "runs": runs, "summary": summary})
    result = {
        **protocol,
        "protocol": args.protocol,
        "seeds": args.seeds,
        "threads": args.threads,
        "machine": machine(),
        "torch": torch.__version__,
        "rows": rows,
    }
    publish(result, markdown(result), args.json, args.markdown)
    return result


if __name__ == "__main__":
    main()
