"""What every benchmark script shares: how it names the machine and how it publishes."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

from pyro_gmvae.files import write_text


def machine() -> str:
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def code_version() -> str:
    """The library's git commit (with ``+changes`` when its files differ from it), recorded with
    each cached fit: a cached row stays valid while its settings are unchanged, and this says
    which code produced it (a change of rounding, e.g. another optimiser kernel, changes a
    seed's numbers without changing what the row measures)."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git("status", "--porcelain", "pyro_gmvae")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def publish(result: dict, table: str, json_path: str, markdown_path: str) -> None:
    """Print the markdown table and write it and the full result (JSON) to their files."""
    print(table)
    for path, text in ((json_path, json.dumps(result, indent=2)), (markdown_path, table)):
        write_text(path, text)  # renamed into place: an interrupt leaves the old file


def shard_jobs(jobs: list, shard: str) -> list:
    """The jobs of shard ``"i/n"``: every n-th from the i-th, so that n one-thread processes
    can share one run cache."""
    try:
        i, n = map(int, shard.split("/"))
    except ValueError:
        raise SystemExit(f"--shard {shard}: expected i/n") from None
    if not 0 <= i < n:
        raise SystemExit(f"--shard {shard}: expected i/n with 0 <= i < n")
    return jobs[i::n]


class RunCache:
    """Finished fits, one JSON line each, so that an interrupted benchmark continues. A line
    counts only while its ``key`` (every parameter of the fit, from ``key(method, seed)``) is
    what the fit would be now; lines of changed settings, of methods ``key`` does not know
    (it raises ``KeyError``) and a line cut short by a killed process are ignored."""

    def __init__(self, path: Path, key: Callable[[str, int], dict]) -> None:
        self.path, self.key = path, key
        self.code = code_version()  # read before any fit: the code this process loaded
        self.rows: dict[tuple[str, int], dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    stored = row.pop("key")
                    current = key(row["method"], row["seed"])
                except (json.JSONDecodeError, KeyError):
                    continue
                if _settled(stored) == _settled(current):
                    self.rows[row["method"], row["seed"]] = row

    def get(self, method: str, seed: int) -> dict | None:
        return self.rows.get((method, seed))

    def add(self, method: str, seed: int, row: dict) -> None:
        row = {"method": method, **row, "seed": seed, "code": self.code}
        self.rows[method, seed] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:  # appended whole lines: earlier fits are never lost
            f.write(json.dumps({"key": self.key(method, seed), **row}) + "\n")


# Settings added to the estimators after rows were cached, with the value those rows ran with:
# a key that holds that value matches a row without the setting.
LATER_SETTINGS = {"num_nodes": 1}


def _settled(key: dict) -> dict:
    return {k: v for k, v in key.items() if LATER_SETTINGS.get(k, object()) != v}


def mnist_parser(doc: str) -> argparse.ArgumentParser:
    """The options every MNIST-test benchmark takes: seeds, a subset for smoke tests, the data
    folder, and the shard of the fits this process runs."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--n", type=int, default=None, help="a subset of MNIST-test (smoke tests)")
    p.add_argument("--mnist", default=None, help="folder of MNIST-test")
    p.add_argument(
        "--shard",
        default="0/1",
        help="i/n: fit only every n-th (seed, configuration) pair from the i-th, to run n "
        "one-thread processes side by side on the same cache; a last call without it publishes",
    )
    return p


def summarise(runs: list[dict], names: list[str], keys: tuple[str, ...]) -> dict:
    """Per method (in ``names``' order, those with runs): the mean, population sd, minimum and
    maximum of each of ``keys`` over its runs, and the number of runs (``seeds``)."""
    out = {}
    for name in names:
        rows = [r for r in runs if r["method"] == name]
        if rows:
            out[name] = {
                k: {
                    "mean": statistics.fmean(r[k] for r in rows),
                    "sd": statistics.pstdev(r[k] for r in rows),
                    "min": min(r[k] for r in rows),
                    "max": max(r[k] for r in rows),
                }
                for k in keys
            }
            out[name]["seeds"] = len(rows)
    return out


def refuse_published_paths(args, defaults: dict[str, str]) -> None:
    """A smoke run (a subset, tiny networks) must not write over the published results: it
    has to name its own output paths."""
    if getattr(args, "n", None) or getattr(args, "tiny", False):
        kept = [f"--{name}" for name, default in defaults.items() if getattr(args, name) == default]
        if kept:
            raise SystemExit(
                "a smoke run (--n/--tiny) must not write the published files: pass "
                + " ".join(kept)
            )
