"""Benchmark: the autoregressive mixture on simulated series with known parameters, each way of
fitting it beside EM (the exact maximum-likelihood fit of the i.i.d. model) and, for one
dimension, statsmodels' Markov-switching autoregression.

For every problem and seed: a training series and an independent held-out series from the same
parameters (``simulate_ar_mixture``); every method's parameter errors after matching regimes,
regime accuracy beside the Bayes classifier that knows the true parameters (the ceiling that
the regimes' overlap sets), held-out log-likelihood per step and fit time.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/ar_mixture.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, publish  # noqa: E402

from pyro_gmvae.timeseries import ARMixture, ARParameters, fit_em, simulate_ar_mixture  # noqa: E402
from pyro_gmvae.timeseries.evaluate import (  # noqa: E402
    match_regimes,
    oracle_accuracy,
    parameter_errors,
    regime_accuracy,
    regime_posteriors,
)
from pyro_gmvae.timeseries.series import as_series  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"

# (name, d, K, T, markov)
PROBLEMS = [
    ("d=2, K=3, T=5000", 2, 3, 5000, False),
    ("d=5, K=4, T=20000", 5, 4, 20000, False),
    ("Markov, d=2, K=3, T=5000", 2, 3, 5000, True),
    ("Markov, d=1, K=2, T=5000", 1, 2, 5000, True),
]


def methods(markov: bool, dim: int, epochs: int | None) -> dict[str, dict | str]:
    """The compared fits of one problem: estimator settings, or the name of a baseline."""
    extra = {} if epochs is None else {"epochs": epochs}
    if markov:
        out = {
            "ARMixture(markov=True) (defaults)": dict(markov=True, **extra),
            "ARMixture(markov=True), init=random": dict(markov=True, init="random", **extra),
            "EM, i.i.d. regimes (10 restarts)": "em",
        }
        if dim == 1:
            out["statsmodels MarkovAutoregression"] = "statsmodels"
        return out
    return {
        "ARMixture, marginal (defaults)": dict(**extra),
        "EM (10 restarts)": "em",
        "ARMixture, marginal, init=random": dict(init="random", **extra),
        "ARMixture, enumerate (neural guide)": dict(discrete="enumerate", **extra),
        "ARMixture, enumerate, init=random": dict(discrete="enumerate", init="random", **extra),
        "ARMixture, relaxed, temperature 1 -> 0.1": dict(discrete="relaxed", **extra),
        "ARMixture, relaxed 1 -> 0.1, init=random": dict(
            discrete="relaxed", init="random", **extra
        ),
        "ARMixture, relaxed, temperature 1 -> 0.5": dict(
            discrete="relaxed", min_temperature=0.5, **extra
        ),
        "ARMixture, relaxed, temperature 1 (no annealing)": dict(
            discrete="relaxed", min_temperature=1.0, **extra
        ),
    }


def held_out_log_likelihood(parameters: ARParameters, series: np.ndarray) -> float:
    """Exact log-likelihood per step of held-out series under ``parameters``."""
    return ARMixture.from_parameters(parameters).score(series)


def fit_statsmodels(series: np.ndarray, K: int, seed: int) -> tuple[ARParameters, list]:
    """statsmodels' MarkovAutoregression (order 1, no trend, switching AR, one variance): the
    same model for d = 1. Returns the parameters and its smoothed regime probabilities."""
    from statsmodels.tsa.regime_switching.markov_autoregression import MarkovAutoregression

    np.random.seed(seed)  # its random search draws from NumPy's global generator
    x = series[0, :, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MarkovAutoregression(
            x, k_regimes=K, order=1, trend="n", switching_ar=True, switching_variance=False
        )
        res = model.fit(search_reps=10, disp=False)
    params = dict(zip(model.param_names, res.params, strict=True))
    Pi = np.array([[[params[f"ar.L1[{k}]"]]] for k in range(K)])
    A = model.regime_transition_matrix(res.params)[..., 0].T  # rows: from
    initial = np.full(K, 1 / K)
    parameters = ARParameters(initial, Pi, np.array([[params["sigma2"]]]), A)
    return parameters, [np.asarray(res.smoothed_marginal_probabilities)]


def run_one(problem, name, method, seed: int) -> dict:
    label, dim, K, T, markov = problem
    sim = simulate_ar_mixture(T, dim, K, seed=seed, markov=markov)
    test = simulate_ar_mixture(T, dim, K, seed=seed + 1000, markov=markov,
                               parameters=sim.parameters)  # fmt: skip
    start = time.perf_counter()
    extra = {}
    if method == "em":
        prev, nxt = as_series(sim.series).transitions()
        em = fit_em(prev, nxt, K, n_init=10, seed=seed)
        fitted, extra = em.parameters, {"em_iterations": em.n_iter, "em_converged": em.converged}
        posteriors = regime_posteriors(fitted, sim.series)
    elif method == "statsmodels":
        fitted, posteriors = fit_statsmodels(sim.series, K, seed)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = ARMixture(K, seed=seed, progress_bar=False, **method).fit(sim.series)
        fitted = est.parameters_
        posteriors = est.predict_proba(sim.series)[None]
    seconds = time.perf_counter() - start
    order = match_regimes(fitted, sim.parameters)
    predicted = [p.argmax(-1) for p in posteriors]
    accuracy = regime_accuracy(predicted, sim.regimes, order)
    oracle = oracle_accuracy(sim.parameters, sim.series, sim.regimes)
    scored = fitted
    if method == "em" and markov:  # EM's i.i.d. fit scored as what it is: no switching matrix
        scored = ARParameters(fitted.weights, fitted.transition_matrices, fitted.covariance)
    return {
        "problem": label,
        "method": name,
        "seed": seed,
        "errors": parameter_errors(scored if method == "em" else fitted, sim.parameters),
        "accuracy": accuracy,
        "oracle_accuracy": oracle,
        "accuracy_ratio": accuracy / oracle,
        "held_out_log_likelihood": held_out_log_likelihood(scored, test.series),
        "true_held_out_log_likelihood": held_out_log_likelihood(sim.parameters, test.series),
        "fit_seconds": seconds,
        **extra,
    }


def summarise(runs: list[dict]) -> dict:
    """Mean and population sd over seeds of every number, per (problem, method)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["problem"], run["method"]), []).append(run)
    out = {}
    for (problem, method), rows in groups.items():
        flat = [{**r, **{f"error_{k}": v for k, v in r["errors"].items()}} for r in rows]
        keys = [k for k, v in flat[0].items() if isinstance(v, float | int) and k != "seed"]
        keys = [k for k in keys if not isinstance(flat[0][k], bool)]
        out.setdefault(problem, {})[method] = {
            "seeds": len(rows),
            **{
                k: {
                    "mean": statistics.fmean(r[k] for r in flat),
                    "sd": statistics.pstdev(r[k] for r in flat),
                }  # fmt: skip
                for k in keys
            },
        }
    return out


def table(result: dict) -> str:
    lines = [
        "Autoregressive mixture on simulated series (`simulate_ar_mixture`, a fresh held-out "
        f"series per seed; mean ± population sd over seeds {result['seeds']}; "
        f"{result['machine']}, 1 torch thread). Errors: max absolute error after matching "
        "regimes. Accuracy: share of transitions whose most probable regime is right; oracle: "
        "the same with the true parameters (the ceiling the regimes' overlap sets). Held-out: "
        "exact log-likelihood per step of the held-out series (the true parameters' value in "
        "the problem's heading).",
        "",
    ]
    for problem, rows in result["summary"].items():
        first = next(iter(rows.values()))
        truth = first["true_held_out_log_likelihood"]["mean"]
        oracle = first["oracle_accuracy"]["mean"]
        markov = "error_switching_matrix" in first
        lines += [
            f"**{problem}** (true parameters: held-out {truth:.4f} per step, oracle accuracy "
            f"{oracle:.3f})",
            "",
            "| method | max abs error Pi | " + ("A" if markov else "p") + " | Sigma | accuracy "
            "| / oracle | held-out log-lik | fit s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, s in rows.items():
            second = s.get("error_switching_matrix" if markov else "error_weights")

            def f(x, digits=3):
                return f"{x['mean']:.{digits}f} ± {x['sd']:.{digits}f}" if x else "n/a"

            lines.append(
                f"| {method} | {f(s['error_transition_matrices'])} | {f(second)} | "
                f"{f(s['error_covariance'])} | {f(s['accuracy'])} | "
                f"{s['accuracy_ratio']['mean']:.3f} | {f(s['held_out_log_likelihood'], 4)} | "
                f"{s['fit_seconds']['mean']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=None, help="T of every problem (smoke tests)")
    p.add_argument("--epochs", type=int, default=None, help="(default: ARMixture's)")
    p.add_argument("--problems", type=int, nargs="+", default=None, help="indices into PROBLEMS")
    p.add_argument("--json", default=str(RESULTS / "ar_mixture.json"))
    p.add_argument("--markdown", default=str(DOCS / "ar_mixture.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    problems = [PROBLEMS[i] for i in args.problems] if args.problems else PROBLEMS
    if args.steps:
        problems = [
            (label.replace(f"T={T}", f"T={args.steps}"), d, K, args.steps, m)
            for label, d, K, T, m in problems
        ]
    runs = []
    for problem in problems:
        for seed in args.seeds:
            for name, method in methods(problem[4], problem[1], args.epochs).items():
                run = run_one(problem, name, method, seed)
                runs.append(run)
                print(f"{problem[0]}, {name}, seed {seed}: accuracy {run['accuracy']:.3f}, "
                      f"Pi error {run['errors']['transition_matrices']:.3f}, "
                      f"{run['fit_seconds']:.1f} s", file=sys.stderr)  # fmt: skip
    result = {
        "machine": machine(),
        "seeds": args.seeds,
        "defaults": ARMixture().get_params(),
        "runs": runs,
        "summary": summarise(runs),
    }
    publish(result, table(result), args.json, args.markdown)
    return result


if __name__ == "__main__":
    main()
