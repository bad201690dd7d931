"""Each benchmark script runs end to end at tiny size and writes its JSON and markdown."""

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gmvae_mnist_test_benchmark_tiny(mnist_dir, tmp_path):
    bench = load("gmvae_mnist_test")
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    result = bench.main(["--n", "200", "--epochs-enumerate", "1", "--epochs-relaxed", "1",
                         "--seeds", "0", "1", "--speed-steps", "3", "--mnist", str(mnist_dir),
                         "--json", str(out_json), "--markdown", str(out_md)])
    saved = json.loads(out_json.read_text())
    assert saved["n"] == 200 and len(saved["runs"]) == 4
    assert set(saved["summary"]) == {"enumerate", "relaxed"}
    assert 0 < saved["summary"]["enumerate"]["acc"]["mean"] <= 1
    assert saved["speed"]["ratio"] > 0
    table = out_md.read_text()
    assert "GMVAE enumerate" in table and "k-means" in table and "plain PyTorch" in table
    assert result["kmeans"]["acc"] > 0
