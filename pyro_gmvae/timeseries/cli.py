"""``pyro-gmvae ar``: fit an autoregressive mixture to a series (CSV or .npy) or a simulated
one, and write a run folder: the model, a summary with the fitted parameters, the regimes of
every transition, a forecast and their figures.

The estimator is built as the API builds it: ``ARMixture(**options)`` with the options given
on the command line, the API's defaults for the others.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
import warnings
from pathlib import Path

import numpy as np

from .. import files
from ..checks import check_positive_int
from ..training import is_global_zero
from .estimator import ARMixture
from .evaluate import match_regimes, oracle_accuracy, parameter_errors, regime_accuracy
from .series import as_series
from .simulate import simulate_ar_mixture

# command-line option -> ARMixture parameter
OPTIONS = {
    "components": "n_components",
    "covariance_type": "covariance_type",
    "discrete": "discrete",
    "markov": "markov",
    "global_guide": "global_guide",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "n_init": "n_init",
    "seed": "seed",
    "accelerator": "accelerator",
    "devices": "devices",
    "strategy": "strategy",
    "num_nodes": "num_nodes",
}


def read_series(path: str | Path) -> np.ndarray:
    """A series from a ``.npy`` file ((T,), (T, d) or (S, T, d)) or a CSV file (one row per
    step, one column per dimension, an optional header row)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no series at {path}")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix != ".csv":
        raise ValueError(f"{path}: expected a .csv or .npy file")
    try:
        return np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError:  # a header row
        return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)


def build(args: argparse.Namespace) -> ARMixture:
    """The estimator with the options given (``None``: the API's default)."""
    given = {param: getattr(args, opt) for opt, param in OPTIONS.items()}
    return ARMixture(**{k: v for k, v in given.items() if v is not None})


def cmd_ar(args: argparse.Namespace) -> dict:
    from ..cli import _prepare_run_dir, _replace_run  # the train command's run-folder rules
    from ..plots import plot_forecast, plot_regimes, plot_training_curves

    if (args.data is None) == (not args.simulate):
        raise ValueError("give a series file (--data FILE) or --simulate, not both or neither")
    model = build(args)  # bad options fail before any file is written
    simulation = None
    if args.simulate:
        simulation = simulate_ar_mixture(
            args.steps, args.dim, model.n_components, seed=model.seed, markov=model.markov
        )
        X = simulation.series
    else:
        X = read_series(args.data)
    as_series(X)  # bad data and settings fail before any file is written
    check_positive_int("--forecast-steps", args.forecast_steps)
    if not is_global_zero():  # a process that data-parallel training started: it only trains
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        return {}
    target = Path(args.out) if args.out else Path("runs") / "ar-mixture"
    out = _prepare_run_dir(target, args.overwrite, resume=None)  # no resuming here
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    model.save(out / "model.pt")
    proba = model.predict_proba(X)
    first = proba if np.ndim(X) <= 2 else proba[0]
    forecast = model.forecast(X, args.forecast_steps, n_samples=1000, seed=model.seed)
    summary = {
        "data": str(args.data) if args.data else "simulated",
        "config": model.get_params(),
        "fit_seconds": seconds,
        "log_likelihood_per_step": model.log_likelihood_,
        "parameters": {
            k: None if v is None else np.asarray(v).tolist()
            for k, v in vars(model.parameters_).items()
        },
    }
    order = None
    if simulation is not None:
        truth = simulation.parameters
        order = match_regimes(model.parameters_, truth)
        summary["against_truth"] = {
            "errors": parameter_errors(model.parameters_, truth),
            "accuracy": regime_accuracy(model.predict(X), simulation.regimes, order),
            "oracle_accuracy": oracle_accuracy(truth, X, simulation.regimes),
        }
    series0 = np.asarray(X if np.ndim(X) <= 2 else X[0], dtype=float).reshape(len(first) + 1, -1)
    header = ",".join(["t", "regime"] + [f"p{k}" for k in range(first.shape[1])])
    rows = np.column_stack([np.arange(1, len(first) + 1), first.argmax(1), first])
    files.write_text(out / "regimes.csv", header + "\n" + _csv(rows))
    files.write_text(out / "summary.json", json.dumps(summary, indent=2))
    if not args.no_figures:
        figures = out / "figures"
        # the true regimes in the fitted model's labels, so that the colours agree
        true = None if simulation is None else order[simulation.regimes[0]]
        plot_regimes(series0, first, true, path=figures / "regimes.png")
        from .estimator import Forecast

        one = Forecast(forecast.samples[:1], forecast.mean[:1], forecast.lower[:1],
                       forecast.upper[:1], forecast.level)  # fmt: skip
        plot_forecast(series0, one, path=figures / "forecast.png")
        plot_training_curves(model.history_, path=figures / "training.png")
    if out != target:
        _replace_run(out, target)
    print(f"run folder: {target}")
    print(f"log-likelihood per step: {model.log_likelihood_:.4f}; fit in {seconds:.1f} s")
    if simulation is not None:
        truth = summary["against_truth"]
        print(
            f"regime accuracy {truth['accuracy']:.3f} (oracle {truth['oracle_accuracy']:.3f}); "
            f"max |Pi error| {truth['errors']['transition_matrices']:.3f}"
        )
    return summary


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:.6g}" for v in row) for row in rows) + "\n"


def add_parser(sub) -> None:
    """Register ``ar`` on the main parser's subcommands."""
    defaults = inspect.signature(ARMixture).parameters
    a = sub.add_parser("ar", help="fit an autoregressive mixture to a time series")
    a.add_argument("--data", default=None, help="a .csv (T rows, d columns) or .npy series")
    a.add_argument("--simulate", action="store_true", help="fit a simulated series instead")
    a.add_argument("--steps", type=int, default=5000, help="length of the simulated series")
    a.add_argument("--dim", type=int, default=2, help="dimension of the simulated series")
    a.add_argument("--components", type=int, default=None,
                   help=f"K (default {defaults['n_components'].default})")  # fmt: skip
    a.add_argument("--covariance-type", choices=["full", "diag"], default=None)
    a.add_argument("--discrete", choices=["marginal", "enumerate", "relaxed"], default=None,
                   help=f"(default {defaults['discrete'].default})")  # fmt: skip
    a.add_argument("--markov", action="store_true", default=None, help="Markov-switching regimes")
    a.add_argument("--global-guide", choices=["map", "normal"], default=None,
                   help="priors on the globals, fitted by AutoDelta or AutoNormal")  # fmt: skip
    a.add_argument("--epochs", type=int, default=None,
                   help="(default 100, or 400 with --markov)")  # fmt: skip
    a.add_argument("--batch-size", type=int, default=None, help="(default: all transitions)")
    a.add_argument("--lr", type=float, default=None)
    a.add_argument("--n-init", type=int, default=None)
    a.add_argument("--seed", type=int, default=None)
    a.add_argument("--accelerator", default=None, help="(default cpu)")
    a.add_argument("--devices", type=lambda v: int(v) if v.isdigit() else v, default=None,
                   help="several: data-parallel, with --strategy ddp")  # fmt: skip
    a.add_argument("--strategy", default=None, help="'auto' (one device) or 'ddp'")
    a.add_argument("--num-nodes", type=int, default=None,
                   help="machines of a data-parallel run (see train --help)")  # fmt: skip
    a.add_argument("--forecast-steps", type=int, default=50)
    a.add_argument("--out", default=None, help="run folder (default runs/ar-mixture)")
    a.add_argument("--overwrite", action="store_true")
    a.add_argument("--no-figures", action="store_true")
    a.set_defaults(func=cmd_ar)
