"""Benchmark: fitting data several times larger than the memory the process may use.

Writes synthetic images to an ``.npy`` file of float32 pixels (``--gib`` GiB), then trains
``pyro-gmvae train --dataset FILE.npy`` (the command line memory-maps the file and reads it a
batch at a time) in a child process whose memory is limited to ``--limit-mib`` MiB by a
cgroup (the v1 memory controller: ``memory.limit_in_bytes``, and ``memory.memsw.limit_in_bytes``
where swap accounting exists, so nothing goes to swap either; run as root). The cgroup counts
the memory the process allocates and the pages of files it brings into memory, the
memory-mapped data's included (the file is dropped from the page cache after it is written):
the kernel evicts the data's pages to stay under the limit, and a process that needed more
anonymous memory than the limit would be killed. Pages of libraries that other processes
already hold in the page cache are not charged to it; its resident memory (``RssFile``)
shows them.

The synthetic images: MNIST-test's digits (scikit-learn's 8x8 digits with ``--source
digits``), each resized to (side - 4) pixels square and placed at a random offset on a
side x side canvas, its contrast scaled by a random factor in [0.7, 1]; labels are the digit,
for the scores. Reported: the data's size against the limit, the child's peak resident memory
(``ru_maxrss``, file pages included), its peak anonymous and file-backed resident memory
(``RssAnon``/``RssFile`` sampled every 0.2 s), the cgroup's peak usage and how often it met
the limit (``failcnt`` of memory or of memory+swap), the wall time and the fit's own summary
(ACC, ELBO).

    python benchmarks/larger_than_memory.py --gib 4.5 --limit-mib 1536 --mnist ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, publish, refuse_published_paths  # noqa: E402

from pyro_gmvae import load_digits, load_mnist_test  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
ROWS_PER_WRITE = 8192


def write_images(path: Path, n: int, side: int, source: str, mnist: str | None, seed: int):
    """``n`` synthetic side x side images (float32, flattened) to ``path`` and their labels to
    ``path``'s ``.labels.npy``, written chunk by chunk: never more than 8,192 images in memory."""
    data = load_mnist_test(mnist) if source == "mnist-test" else load_digits()
    h, w = data.image_shape
    inner = side - 4
    digits = F.interpolate(
        data.X.reshape(-1, 1, h, w), size=(inner, inner), mode="bilinear", antialias=True
    )[:, 0].clamp(0, 1)
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, side * side))
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, ROWS_PER_WRITE):
        m = min(ROWS_PER_WRITE, n - start)
        pick = rng.integers(len(digits), size=m)
        dy, dx = rng.integers(5, size=(2, m))
        contrast = torch.from_numpy(rng.uniform(0.7, 1.0, m).astype(np.float32))
        canvas = torch.zeros(m, side, side)
        for oy in range(5):
            for ox in range(5):
                rows = np.flatnonzero((dy == oy) & (dx == ox))
                canvas[rows, oy : oy + inner, ox : ox + inner] = digits[pick[rows]]
        out[start : start + m] = (canvas * contrast[:, None, None]).reshape(m, -1).numpy()
        labels[start : start + m] = data.y[pick]
    out.flush()
    del out
    np.save(path.with_suffix(".labels.npy"), labels)
    # Out of the page cache: pages cached now would be charged to this process's cgroup, so the
    # child would read them without its limit counting them.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def memory_cgroup(limit_bytes: int) -> Path:
    """A new v1 memory cgroup limited to ``limit_bytes`` (memory, and memory + swap where the
    kernel accounts swap)."""
    if not (CGROUP_V1 / "memory.limit_in_bytes").exists() or not os.access(CGROUP_V1, os.W_OK):
        raise SystemExit(
            f"limiting memory needs the cgroup v1 memory controller, writable, at {CGROUP_V1} "
            "(run as root), or pass --limit-mib 0 to run without a limit"
        )
    group = CGROUP_V1 / f"pyro-gmvae-benchmark-{os.getpid()}"
    group.mkdir()
    (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
    swap = group / "memory.memsw.limit_in_bytes"
    if swap.exists():
        swap.write_text(str(limit_bytes))
    return group


class ResidentSampler(threading.Thread):
    """The peaks of a process's anonymous and file-backed resident memory (``/proc``)."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
            except OSError:
                return
            for line in lines:
                key, _, value = line.partition(":")
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(value.split()[0]) * 1024)


def train_limited(argv: list[str], limit_bytes: int, threads: int) -> dict:
    """Run ``pyro-gmvae`` with ``argv`` in a child process inside the memory cgroup (none when
    ``limit_bytes`` is 0); its exit code, time and memory peaks."""
    group = memory_cgroup(limit_bytes) if limit_bytes else None
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
    code = "import sys; from pyro_gmvae.cli import main; sys.exit(main(sys.argv[1:]))"

    def enter_group() -> None:  # runs in the child before Python starts: it all counts
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    try:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", code, *argv], env=env, preexec_fn=enter_group
        )
        sampler = ResidentSampler(child.pid)
        sampler.start()
        returncode = child.wait()
        seconds = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
        result = {
            "returncode": returncode,
            "seconds": seconds,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "peak_rss_anon_bytes": sampler.peak["RssAnon"],
            "peak_rss_file_bytes": sampler.peak["RssFile"],
        }
        if group is not None:
            result["cgroup_peak_bytes"] = int((group / "memory.max_usage_in_bytes").read_text())
            # with swap accounted, the memory+swap counter meets its (equal) limit first and
            # counts the hits; memory.failcnt alone stays at 0
            result["cgroup_limit_hits"] = max(
                int((group / name).read_text())
                for name in ("memory.failcnt", "memory.memsw.failcnt")
                if (group / name).exists()
            )
    finally:
        if group is not None:
            group.rmdir()  # empty once the child has gone
    return result


def markdown(r: dict) -> str:
    gib, mib = 2**30, 2**20
    s = r["summary"]
    limit = f"{r['limit_bytes'] / mib:.0f} MiB" if r["limit_bytes"] else "none"
    ratio = f" ({r['data_bytes'] / r['limit_bytes']:.1f}x the limit)" if r["limit_bytes"] else ""
    rows = [
        ("data", f"{r['n']:,} synthetic {r['side']}x{r['side']} images ({r['source']}), "
                 f"float32: {r['data_bytes'] / gib:.2f} GiB{ratio}"),
        ("memory limit", f"{limit} (cgroup v1 memory controller, swap included)"),
        ("command", f"`pyro-gmvae {' '.join(r['argv'])}`"),
        ("exit code", str(r["returncode"])),
        ("wall time", f"{r['seconds'] / 60:.1f} min, {r['threads']} thread(s), {r['machine']}"),
        ("peak resident memory (ru_maxrss)", f"{r['peak_rss_bytes'] / mib:.0f} MiB"),
        ("of which anonymous / file-backed (peaks)",
         f"{r['peak_rss_anon_bytes'] / mib:.0f} / {r['peak_rss_file_bytes'] / mib:.0f} MiB"),
    ]  # fmt: skip
    if "cgroup_peak_bytes" in r:
        rows.append(
            ("cgroup peak usage, times it met the limit",
             f"{r['cgroup_peak_bytes'] / mib:.0f} MiB, "
             + (f"{hits:,}" if (hits := r["cgroup_limit_hits"]) is not None else "not recorded"))
        )  # fmt: skip
    if s:
        sc, km = s.get("scores", {}), s.get("kmeans_scores", {})
        rows.append(("ELBO per sample (grey levels: a cross-entropy bound)", f"{s['elbo']:.1f}"))
        if sc:
            rows.append(
                ("ACC / NMI / ARI of q(y|x), all samples",
                 f"{sc['acc']:.3f} / {sc['nmi']:.3f} / {sc['ari']:.3f} (k-means on pixels, "
                 f"fitted on {s['kmeans_fitted_on']:,}: ACC {km['acc']:.3f})")
            )  # fmt: skip
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=4.5, help="size of the data file, GiB")
    p.add_argument("--side", type=int, default=48, help="image side in pixels")
    p.add_argument("--limit-mib", type=int, default=1536, help="memory limit (0: none)")
    p.add_argument("--source", choices=["mnist-test", "digits"], default="mnist-test")
    p.add_argument("--mnist", default=None, help="folder of MNIST-test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--pretrain-epochs", type=int, default=1)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256],
                   help="hidden layers (smaller than GMVAE's: this is about memory)")  # fmt: skip
    p.add_argument("--workdir", default=None, help="where the data and the run go (default: a "
                   "temporary folder, removed afterwards)")  # fmt: skip
    p.add_argument("--tiny", action="store_true", help="a smoke run (so is any other size)")
    p.add_argument("--json", default=str(RESULTS / "larger_than_memory.json"))
    p.add_argument("--markdown", default=str(DOCS / "larger_than_memory.md"))
    args = p.parse_args(argv)
    # a run of other settings than the published one is a smoke run: it names its own paths
    sized = ("gib", "side", "limit_mib", "source", "epochs", "pretrain_epochs", "hidden")
    args.tiny = args.tiny or any(getattr(args, k) != p.get_default(k) for k in sized)
    refuse_published_paths(
        args, {"json": p.get_default("json"), "markdown": p.get_default("markdown")}
    )
    n = int(args.gib * 2**30 // (4 * args.side**2))
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        path = Path(work) / "images.npy"
        start = time.perf_counter()
        write_images(path, n, args.side, args.source, args.mnist, args.seed)
        written = time.perf_counter() - start
        labels, out = str(path.with_suffix(".labels.npy")), str(Path(work) / "run")
        cli = ["train", "--dataset", str(path), "--labels", labels,
               "--epochs", str(args.epochs), "--pretrain-epochs", str(args.pretrain_epochs),
               "--seed", str(args.seed), "--out", out, "--no-progress"]  # fmt: skip
        cli += ["--hidden", *map(str, args.hidden)]
        run = train_limited(cli, args.limit_mib * 2**20, args.threads)
        summary_path = Path(work) / "run" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    shown = [a if not a.startswith(work) else a.replace(work, "DIR") for a in cli]
    result = {
        "n": n,
        "side": args.side,
        "source": args.source,
        "data_bytes": n * 4 * args.side**2,
        "limit_bytes": args.limit_mib * 2**20,
        "write_seconds": written,
        "argv": shown,
        "threads": args.threads,
        "machine": machine(),
        "torch": torch.__version__,
        **run,
        "summary": {k: summary[k] for k in ("elbo", "scores", "kmeans_scores",
                                            "kmeans_fitted_on", "fit_seconds") if k in summary},
    }  # fmt: skip
    if run["returncode"] != 0:  # nothing published: the last published run stays
        raise SystemExit(f"the training run failed with exit code {run['returncode']}")
    publish(result, markdown(result), args.json, args.markdown)
    return result


if __name__ == "__main__":
    main()
