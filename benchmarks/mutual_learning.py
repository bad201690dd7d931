"""Benchmark: VAE + GMM mutual learning on MNIST-test, and the Gibbs sampler's speed.

1. Quality (fit and score on the same 10,000 images; labels only for the metrics), paired by
   seed: ``VAEGMM()`` with its defaults (pre-training, then mutual learning) against the same
   VAE and GMM fitted once, one after the other, for as many epochs (``n_rounds=1``); then the
   variants (the per-point prior, grey levels, and both without pre-training). The table gives
   ACC/NMI/ARI mean and spread over the seeds, and the paired gain set against the seed-to-seed
   spread.
2. Speed: ``GibbsGMM`` at N=10,000, K=10, full covariances, on the latents (D=12) of a VAE
   trained once, for 1 and 2 threads, beside scikit-learn's ``BayesianGaussianMixture`` on the
   same latents (fit time, ACC, and the log joint log p(Z, c, params) each one's solution reaches
   under the Gibbs model's prior).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/mutual_learning.py

Runs are cached (``--cache``, one JSON line per fit) so an interrupted benchmark continues; the
table is printed and written as JSON (``--json``) and markdown (``--markdown``).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.mixture import BayesianGaussianMixture  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RunCache, machine, mnist_parser, publish, shard_jobs, summarise  # noqa: E402

from pyro_gmvae import VAEGMM, GibbsGMM, clustering_scores, load_mnist_test, plots  # noqa: E402
from pyro_gmvae.gmm import conjugate as cj  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
METRICS = ("acc", "nmi", "ari")
# bumped when a change of the library changes what a cached run would give
BENCH_VERSION = 4  # 3: float32 densities in the Gibbs assignment step; 4: its uniform in (0, 1]
# the seed's figures are drawn for the first two configurations
FIGURE_PREFIX = {"mutual learning (defaults)": "mutual", "fitted once (no mutual learning)": "once"}


def configurations(rounds: int, epochs: int, sweeps: int, burn_in: int) -> dict[str, dict]:
    """The compared fits: the defaults first (mutual learning), then fitting once for as many
    VAE epochs and Gibbs sweeps (and as many kept draws), then the variants."""
    once = dict(
        n_rounds=1,
        epochs=rounds * epochs,
        gibbs_sweeps=rounds * sweeps,
        gibbs_burn_in=rounds * sweeps - (sweeps - burn_in),
    )
    mutual = dict(n_rounds=rounds, epochs=epochs)
    return {
        "mutual learning (defaults)": mutual,
        "fitted once (no mutual learning)": once,
        "mutual learning, prior_mode=assigned": dict(mutual, prior_mode="assigned"),
        "mutual learning, binarize=False (grey levels)": dict(mutual, binarize=False),
        "mutual learning, init=random (no pre-training)": dict(mutual, init="random"),
        "fitted once, init=random": dict(once, init="random"),
    }


def fit_one(X, y, name: str, options: dict, seed: int, extra: dict, figures: Path | None):
    """One fit and its scores; with ``figures``, its latent t-SNE, mixture ellipses and samples
    of each cluster's Gaussian are saved there."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = VAEGMM(seed=seed, progress_bar=False, **{**extra, **options}).fit(X, y)
    seconds = time.perf_counter() - start
    if figures is not None and name in FIGURE_PREFIX:
        prefix = figures / FIGURE_PREFIX[name]
        Z = model.transform(X)
        plots.plot_latent_tsne(Z, model.labels_, y, seed=seed, path=f"{prefix}_tsne.png")
        gmm = model.gmm_
        plots.plot_gaussians_2d(
            Z, gmm.means_, gmm.covariances_, model.labels_, path=f"{prefix}_gaussians.png"
        )
        plots.plot_cluster_samples(model, 10, seed, path=f"{prefix}_cluster_samples.png")
        plt.close("all")
    return {
        "method": name,
        "seed": seed,
        **clustering_scores(y, model.labels_),
        "elbo": model.score(X),
        "best_round": model.best_round_,
        "rounds": model.rounds_,
        "acc_per_sweep": [row["acc"] for row in model.gibbs_history_],
        "elbo_per_epoch": [row["train_elbo"] for row in model.history_],
        "fit_seconds": seconds,
        "threads": torch.get_num_threads(),
    }


def plot_curves(runs: list[dict], names: list[str], seed: int, folder: Path) -> None:
    """The seed's curves for one seed: the ELBO over training and ACC over Gibbs sweeps, with
    and without mutual learning."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name in names[:2]:
        row = next((r for r in runs if r["method"] == name and r["seed"] == seed), None)
        if row is None:
            continue
        axes[0].plot(
            np.arange(1, len(row["elbo_per_epoch"]) + 1), row["elbo_per_epoch"], label=name
        )
        axes[1].plot(np.arange(1, len(row["acc_per_sweep"]) + 1), row["acc_per_sweep"], label=name)
    axes[0].set(xlabel="VAE epoch", ylabel="ELBO under the mixture prior (nats)",
                title=f"ELBO over training (seed {seed})")  # fmt: skip
    axes[1].set(xlabel="Gibbs sweep (all rounds, end to end)", ylabel="ACC", ylim=(0, 1),
                title=f"ACC over Gibbs sweeps (seed {seed})")  # fmt: skip
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / "curves.png", dpi=100)
    plt.close(fig)


def paired_gain(runs: list[dict], a: str, b: str) -> dict:
    """Per-seed differences a - b of ACC and ARI: their mean, sd and standard error, the number
    of seeds where a wins, and the seed-to-seed sd of b for comparison."""
    by_seed = {(r["method"], r["seed"]): r for r in runs}
    seeds = sorted(s for (m, s) in by_seed if m == a and (b, s) in by_seed)
    out = {"seeds": seeds}
    for k in ("acc", "ari"):
        diffs = [by_seed[a, s][k] - by_seed[b, s][k] for s in seeds]
        if diffs:
            out[k] = {
                "gains": diffs,
                "mean": statistics.fmean(diffs),
                "sd": statistics.pstdev(diffs),
                "standard_error": (
                    statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
                ),
                "spread_of_baseline": statistics.pstdev(by_seed[b, s][k] for s in seeds),
                "wins": sum(d > 0 for d in diffs),
            }
    return out


def log_joint(prior: cj.MixturePrior, Z: torch.Tensor, weights, means, covariances, labels):
    """log p(Z, c, params) of one solution under ``prior`` (covariances full)."""
    params = cj.Parameters(
        torch.as_tensor(np.log(np.maximum(weights, 1e-300)))[None],
        torch.as_tensor(means)[None],
        torch.linalg.inv(torch.as_tensor(covariances))[None],
    )
    feats_t = cj.features(Z, "full").T.contiguous()
    log_probs = cj.log_joint_terms(feats_t, params)[0]
    chosen = log_probs.gather(0, torch.as_tensor(labels).long()[None]).sum()
    return float(chosen + cj.log_prior(prior, params)[0])


def speed(Z: np.ndarray, y: np.ndarray, sweeps: int, seed: int) -> dict:
    """Sweeps per second of one chain (1 and 2 threads; the median of 3 fits, interleaved with
    3 fits of the all-float64 sampler on the same latents), and the comparison with
    scikit-learn."""
    out = {"n": len(Z), "dim": Z.shape[1], "components": 10, "sweeps": sweeps, "repeats": 3}
    out.update(threads={}, float64={}, float32_share={})
    threads_before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rates: dict[str, list] = {"auto": [], "float64": []}
            for _ in range(out["repeats"]):
                for precision, runs in rates.items():
                    gmm = GibbsGMM(10, n_sweeps=sweeps, burn_in=sweeps // 2, n_chains=1,
                                   seed=seed, precision=precision, progress_bar=False)  # fmt: skip
                    gmm.fit(Z)
                    runs.append(gmm.sweeps_per_second_)
                    if precision == "auto":
                        share = statistics.fmean(row["float32"] for row in gmm.history_)
            out["threads"][str(threads)] = statistics.median(rates["auto"])
            out["float64"][str(threads)] = statistics.median(rates["float64"])
            out["float32_share"][str(threads)] = share
    finally:
        torch.set_num_threads(threads_before)
    Zt = torch.as_tensor(Z, dtype=torch.float64)
    start = time.perf_counter()
    gmm = GibbsGMM(10, n_sweeps=sweeps, burn_in=sweeps // 2, n_chains=1, seed=seed,
                   progress_bar=False).fit(Z)  # fmt: skip
    gibbs_seconds = time.perf_counter() - start
    start = time.perf_counter()
    prior = gmm.prior_  # the same prior for both: a Dirichlet (not a Dirichlet process)
    bgm = BayesianGaussianMixture(
        n_components=10,
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=prior.weight_concentration,
        mean_precision_prior=prior.mean_precision,
        mean_prior=prior.mean.numpy(),
        degrees_of_freedom_prior=prior.degrees_of_freedom,
        covariance_prior=prior.covariance.numpy(),
        n_init=1,
        max_iter=500,
        random_state=seed,
    ).fit(Z)
    sk_seconds = time.perf_counter() - start
    sk_labels = bgm.predict(Z)
    out["gibbs"] = {
        "fit_seconds": gibbs_seconds,
        **clustering_scores(y, gmm.labels_),
        "log_joint": log_joint(prior, Zt, gmm.weights_, gmm.means_, gmm.covariances_, gmm.labels_),
    }
    out["sklearn"] = {
        "fit_seconds": sk_seconds,
        **clustering_scores(y, sk_labels),
        "log_joint": log_joint(prior, Zt, bgm.weights_, bgm.means_, bgm.covariances_, sk_labels),
        "converged": bool(bgm.converged_),
    }
    return out


def table(result: dict) -> str:
    names = list(result["summary"])
    lines = [
        f"VAE + GMM mutual learning on MNIST-test ({result['n']} images; trained with dynamic "
        f"binarization unless marked; mean ± population sd over the seeds of each row; "
        f"{result['machine']}; fits on {result['fit_threads']} torch thread(s) each). ELBO: nats "
        "per image under the "
        "mixture prior, scored on the grey-level images with the Bernoulli likelihood: a "
        "cross-entropy bound, not comparable with binarised-MNIST log-likelihoods.",
        "",
        "| method | seeds | ACC | NMI | ARI | ELBO | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        s = result["summary"][name]
        cells = [f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}" for k in METRICS]
        cells += [f"{s['elbo']['mean']:.1f} ± {s['elbo']['sd']:.1f}"]
        cells += [f"{s['fit_seconds']['mean']:.0f}"]
        lines.append(f"| {name} | {s['seeds']} | " + " | ".join(cells) + " |")
    gain = result["gain"]
    if "acc" in gain:
        lines += ["", f"Paired by seed ({names[0]} minus {names[1]}):", ""]
        for k in ("acc", "ari"):
            g = gain[k]
            size = "larger" if abs(g["mean"]) > g["spread_of_baseline"] else "smaller"
            lines.append(
                f"- {k.upper()}: difference {g['mean']:+.3f} ± {g['sd']:.3f} (standard error of "
                f"the paired mean {g['standard_error']:.3f}; mutual learning better on "
                f"{g['wins']} of {len(gain['seeds'])} seeds); its size is {size} than the "
                f"seed-to-seed spread of fitting once ({g['spread_of_baseline']:.3f})."
            )
    sp = result.get("speed")
    if sp:
        t, f64 = sp["threads"], sp["float64"]
        g, s = sp["gibbs"], sp["sklearn"]
        lines += [
            "",
            f"Gibbs speed, N={sp['n']}, D={sp['dim']}, K={sp['components']}, full covariances, "
            f"one chain, the latents of a VAE fitted once (seed 0, with its pre-training), median "
            f"of {sp['repeats']} fits: **{t['1']:.0f} sweeps/s on 1 thread, {t['2']:.0f} on 2** "
            f"(target 250); float32 densities in {100 * sp['float32_share']['1']:.0f} % of the "
            "sweeps. The all-float64 sampler (`precision='float64'`), fitted in turn with "
            f"them on the same latents: {f64['1']:.0f} and {f64['2']:.0f} sweeps/s.",
            "",
            "| on the same latents | fit s | ACC | NMI | ARI | log joint |",
            "|---|---|---|---|---|---|",
            f"| GibbsGMM, {sp['sweeps']} sweeps (half burn-in) | {g['fit_seconds']:.1f} | "
            f"{g['acc']:.3f} | {g['nmi']:.3f} | {g['ari']:.3f} | {g['log_joint']:.0f} |",
            f"| sklearn BayesianGaussianMixture (variational, the same prior, max_iter=500"
            f"{'' if s['converged'] else ', not converged'}) | {s['fit_seconds']:.1f} | "
            f"{s['acc']:.3f} | {s['nmi']:.3f} | {s['ari']:.3f} | {s['log_joint']:.0f} |",
            "",
            "The log joint is log p(Z, c, params) under the Gibbs model's prior, at each "
            "method's posterior-mean parameters and most probable assignments.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = mnist_parser(__doc__)
    p.add_argument("--rounds", type=int, default=VAEGMM().n_rounds)
    p.add_argument("--epochs", type=int, default=VAEGMM().epochs, help="per round")
    p.add_argument("--gibbs-sweeps", type=int, default=None, help="(default: VAEGMM's)")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="(default: VAEGMM's)")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="(default: VAEGMM's)")
    p.add_argument("--speed-sweeps", type=int, default=400)
    p.add_argument("--speed-epochs", type=int, default=20, help="the VAE behind the latents")
    p.add_argument("--only", choices=["quality", "speed"], default=None)
    p.add_argument(
        "--rows",
        type=int,
        default=None,
        help="fit only the first ROWS configurations (the table shows every cached one)",
    )
    p.add_argument("--cache", default=str(RESULTS / "mutual_learning.runs.jsonl"))
    p.add_argument("--json", default=str(RESULTS / "mutual_learning.json"))
    p.add_argument("--markdown", default=str(DOCS / "mutual_learning.md"))
    p.add_argument(
        "--figures",
        default=str(DOCS / "mutual_learning"),
        help="folder for the first seed's figures ('' for none)",
    )
    args = p.parse_args(argv)

    data = load_mnist_test(args.mnist).subset(args.n, seed=0)
    X, y = data.X, data.y
    extra = {}
    if args.gibbs_sweeps:
        extra.update(gibbs_sweeps=args.gibbs_sweeps, gibbs_burn_in=args.gibbs_sweeps // 2)
    if args.hidden:
        extra.update(hidden_dims=tuple(args.hidden))
    if args.pretrain_epochs is not None:
        extra.update(pretrain_epochs=args.pretrain_epochs)
    defaults = VAEGMM()
    sweeps = args.gibbs_sweeps or defaults.gibbs_sweeps
    burn_in = sweeps // 2 if args.gibbs_sweeps else defaults.gibbs_burn_in
    configs = configurations(args.rounds, args.epochs, sweeps, burn_in)
    cache = Path(args.cache)

    def key(name: str, seed: int) -> dict:  # every parameter of the fit, and the code's version
        options = {**extra, **configs[name]}
        model = VAEGMM(seed=seed, progress_bar=False, **options)
        return {"n": len(X), "version": BENCH_VERSION, **model.configuration()}

    runs = RunCache(cache, lambda name, seed: key(name, seed) if name in configs else None)
    fitted = list(configs)[: args.rows]
    jobs = [(seed, name) for seed in args.seeds for name in fitted]
    if args.only != "speed":
        for seed, name in shard_jobs(jobs, args.shard):
            if runs.get(name, seed) is not None:
                continue
            figures = Path(args.figures) if args.figures and seed == args.seeds[0] else None
            if figures is not None:
                figures.mkdir(parents=True, exist_ok=True)
            row = fit_one(X, y, name, configs[name], seed, extra, figures)
            runs.add(name, seed, row)
            print(f"{name}, seed {seed}: ACC {row['acc']:.3f}", file=sys.stderr)
    if args.shard != "0/1":  # a shard only fills the cache; the call without --shard publishes
        return {"runs": list(runs.rows.values())}
    runs = [r for (name, seed), r in runs.rows.items() if name in configs and seed in args.seeds]
    names = list(configs)
    if args.figures:
        plot_curves(runs, names, args.seeds[0], Path(args.figures))
    result = {
        "n": len(X),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "fit_threads": ", ".join(map(str, sorted({r["threads"] for r in runs}))),
        "seeds": args.seeds,
        "settings": {"rounds": args.rounds, "epochs": args.epochs, **extra},
        "runs": runs,
        "summary": summarise(runs, names, (*METRICS, "elbo", "fit_seconds")),
        "gain": paired_gain(runs, names[0], names[1]),
    }
    if args.only != "quality":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vae = VAEGMM(n_rounds=1, latent_dim=12, epochs=args.speed_epochs, seed=0,
                         progress_bar=False, **extra).fit(X)  # fmt: skip
        result["speed"] = speed(vae.transform(X).astype(np.float64), y, args.speed_sweeps, 0)
    publish(result, table(result), args.json, args.markdown)
    return result


if __name__ == "__main__":
    main()
