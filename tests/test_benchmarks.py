"""Each benchmark script runs end to end at tiny size and writes its JSON and markdown."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as a script's import would: its workers find it by name
    spec.loader.exec_module(module)
    return module


def test_gmvae_mnist_test_benchmark_tiny(mnist_dir, tmp_path):
    bench = load("gmvae_mnist_test")
    paths = {name: tmp_path / f"r.{name}" for name in ("json", "markdown", "cache")}
    argv = ["--n", "200", "--epochs", "2", "--pretrain-epochs", "1", "--hidden", "32",
            "--seeds", "0", "1", "--ablation-seeds", "0", "--iw-samples", "4",
            "--speed-steps", "3", "--mnist", str(mnist_dir)]  # fmt: skip
    for name, path in paths.items():
        argv += [f"--{name}", str(path)]
    bench.main(argv)
    saved = json.loads(paths["json"].read_text())
    assert saved["n"] == 200 and saved["n_train"] == 180 and saved["n_held_out"] == 20
    # the defaults' row first (GMVAE() with no arguments), over both seeds; each ablation once
    assert next(iter(bench.CONFIGURATIONS.items())) == ("GMVAE() defaults", {})
    assert list(saved["summary"]) == list(bench.CONFIGURATIONS)
    assert saved["summary"]["GMVAE() defaults"]["seeds"] == [0, 1]
    assert len(saved["runs"]) == 2 + len(bench.CONFIGURATIONS) - 1
    for run in saved["runs"]:
        assert 0 < run["acc"] <= 1 and run["iw_log_px"] < 0 and run["epochs"] == 2
        assert len(run["monitored_acc"]) == 2 and run["seconds_per_epoch"] > 0
        assert 0 < run["start_acc"] <= 1  # the ACC after pre-training (random start: at init)
    table = paths["markdown"].read_text()
    assert table.index("GMVAE() defaults") < table.index("diagonal prior")
    assert saved["speed"]["ratio"] > 0
    # a second call fits nothing again: every row comes from the cache
    lines = paths["cache"].read_text().splitlines()
    bench.main(argv + ["--only", "quality"])
    assert paths["cache"].read_text().splitlines() == lines
    assert "k-means" in table and "plain PyTorch" in table and saved["kmeans"]["acc"] > 0
    assert {run["code"] for run in saved["runs"]} == {load("common").code_version()}


def test_gmvae_benchmark_times_to_an_acc_mark_and_their_median():
    """The first epoch whose monitored ACC reaches the mark, after pre-training; the table's
    median is over the seeds that reached it."""
    bench = load("gmvae_mnist_test")
    assert bench.time_to([0.80, 0.92, 0.96], 0.90, before=10.0, per_epoch=5.0) == 20.0
    assert bench.time_to([0.80, 0.92, 0.96], 0.95, before=10.0, per_epoch=5.0) == 25.0
    assert bench.time_to([0.80, 0.92], 0.95, before=10.0, per_epoch=5.0) is None
    # an ACC recorded after pre-training counts at the end of pre-training, where it reaches
    assert bench.time_to([0.92, 0.96], 0.90, before=10.0, per_epoch=5.0, start=0.91) == 10.0
    assert bench.time_to([0.92, 0.96], 0.95, before=10.0, per_epoch=5.0, start=0.91) == 20.0
    assert bench.time_to([0.92, 0.96], 0.90, before=10.0, per_epoch=5.0, start=0.90) == 10.0
    stats = {key: 1.0 for key in bench.STATS}
    timing = {"pretrain_seconds": 10.0, "seconds_per_epoch": 10.0}
    runs = [  # 0.90 after 30, 40 and 10 s (the start), 0.95 never, after 100 and 60 s
        {"method": "GMVAE() defaults", "seed": 0, **stats, **timing,
         "monitored_acc": [0.8, 0.91, 0.94]},
        {"method": "GMVAE() defaults", "seed": 1, **stats, **timing,
         "monitored_acc": [0.8, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.95], "start_acc": 0.5},
        {"method": "GMVAE() defaults", "seed": 2, **stats, **timing,
         "monitored_acc": [0.93, 0.93, 0.93, 0.93, 0.95], "start_acc": 0.9},
    ]  # fmt: skip
    summary = bench.summarise(runs)["GMVAE() defaults"]
    assert summary["to_0.90"] == {"median": 30.0, "reached": 3}
    assert summary["to_0.95"] == {"median": 80.0, "reached": 2}
    assert summary["seeds"] == [0, 1, 2]
    assert bench.start_recorded(runs) == "recorded by GMVAE() defaults"


def test_priors_guides_benchmark_tiny_in_shards(mnist_dir, tmp_path):
    """Two shards fill the run cache; the final call reruns nothing and publishes the table."""
    bench = load("priors_guides")
    out_json, out_md, cache = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "runs.jsonl"
    tiny = ["--epochs", "1", "--seeds", "0", "--n-train", "120", "--n-eval", "40"]
    tiny += ["--iw-samples", "4", "--latent-dim", "3", "--hidden", "16", "--only", "vamp"]
    tiny += ["--protocol", "grey", "--mnist", str(mnist_dir), "--cache", str(cache)]
    tiny += ["--json", str(out_json), "--markdown", str(out_md)]
    assert bench.main([*tiny, "--shard", "0/2"]) is None and not out_json.exists()
    assert len(cache.read_text().splitlines()) == 2  # tasks 0 and 2 of the three VampPrior fits
    assert bench.main([*tiny, "--shard", "1/2"]) is None
    result = bench.main(tiny)
    assert len(cache.read_text().splitlines()) == 3  # nothing was fitted twice
    rows = {r["name"]: r for r in json.loads(out_json.read_text())["rows"]}
    assert set(rows) == {f"vamp / {g}" for g in ("diagonal", "low-rank", "full", "flow")}
    assert "unsupported" in rows["vamp / flow"]
    summary = rows["vamp / diagonal"]["summary"]
    assert summary["iw_log_likelihood"]["mean"] < 0 and summary["acc"] is None
    assert rows["vamp / diagonal"]["model"] == "VAE"
    table = out_md.read_text()
    assert "unsupported: VampPrior needs a Gaussian z-guide" in table
    assert table.startswith("Grey-level protocol") and "not log-likelihoods" in table
    assert len(result["rows"]) == 4


def test_priors_guides_binarised_protocol_runs_the_headline_rows(mnist_dir, tmp_path):
    """The default protocol trains on binarised images, scores one fixed binarisation of the
    held-out images, and runs the headline rows, the standard-normal baseline first."""
    bench = load("priors_guides")
    tiny = ["--epochs", "1", "--seeds", "0", "--n-train", "120", "--n-eval", "40"]
    tiny += ["--iw-samples", "4", "--latent-dim", "3", "--hidden", "16"]
    tiny += ["--mnist", str(mnist_dir), "--cache", str(tmp_path / "runs.jsonl")]
    tiny += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    result = bench.main(tiny)
    names = [r["name"] for r in result["rows"]]
    assert names == [*bench.HEADLINE, f"{bench.BASELINE}, 16 epochs"]
    cached = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert all(run["protocol"]["data"] == "binarised" and run["binarize"] for run in cached)
    assert result["protocol"] == "binarised" and result["data"] == "binarised"
    assert (tmp_path / "r.md").read_text().startswith("Binarised protocol")
    assert result["rows"][0]["summary"]["iw_gain"] == {"mean": 0.0, "sd": 0.0}
    # log-probabilities of binary images
    for row in result["rows"]:
        assert row["summary"]["iw_log_likelihood"]["mean"] < 0


def test_priors_guides_benchmark_runs_the_pretrained_mixture_priors(mnist_dir, tmp_path):
    bench = load("priors_guides")
    tiny = ["--epochs", "1", "--seeds", "0", "--n-train", "120", "--n-eval", "40"]
    tiny += ["--iw-samples", "4", "--latent-dim", "3", "--hidden", "16", "--only", "pretrain"]
    tiny += ["--all", "--mnist", str(mnist_dir), "--cache", str(tmp_path / "runs.jsonl")]
    tiny += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    rows = {r["name"]: r for r in bench.main(tiny)["rows"]}
    assert set(rows) == {f"{name}, init=pretrain" for name in bench.PRETRAINED}
    for row in rows.values():
        assert 0 < row["summary"]["acc"]["mean"] <= 1
        assert row["summary"]["iw_log_likelihood"]["mean"] < 0


def test_priors_guides_gain_pairs_each_seed_with_the_baseline():
    bench = load("priors_guides")

    def run(iw):
        return {"test_elbo": iw - 5, "iw_log_likelihood": iw, "acc": None, "images_per_s": 1.0}

    summary = bench.summarise([run(-100.0), run(-104.0)], [run(-101.0), run(-106.0)])
    assert summary["iw_gain"] == {"mean": 1.5, "sd": 0.5}
    assert summary["iw_log_likelihood"]["mean"] == -102.0
    assert bench.summarise([run(-100.0)], None)["iw_gain"] is None


def test_plain_pytorch_reference_computes_the_same_loss():
    """The speed comparison is fair only if both sides compute the same enumerated loss."""
    import pyro
    import torch

    from pyro_gmvae.components import Enumerate
    from pyro_gmvae.models import GMVAEModule

    reference = load("reference_torch")
    torch.manual_seed(0)
    net = GMVAEModule(12, 3, 2, (8,))
    x = torch.rand(5, 12)
    pyro.set_rng_seed(1)
    pyro_loss = Enumerate().elbo().differentiable_loss(net.model, net.guide, x)
    pyro.set_rng_seed(1)
    torch_loss = reference.enumerated_loss(net, x)
    assert abs(pyro_loss.item() - torch_loss.item()) < 1e-4


def test_priors_guides_split_binarises_the_held_out_images_once(digits_small):
    bench = load("priors_guides")
    X_train, X_eval, y_eval = bench.split(digits_small, 200, 40, binarised=True)
    assert torch.equal(X_train, digits_small.X[:200]) and len(y_eval) == 40
    assert set(X_eval.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(X_eval, bench.split(digits_small, 200, 40, binarised=True)[1])  # fixed
    assert torch.equal(bench.split(digits_small, 200, 40, False)[1], digits_small.X[-40:])


def test_mutual_learning_benchmark_tiny(mnist_dir, tmp_path):
    bench = load("mutual_learning")
    paths = {k: tmp_path / f"r.{k}" for k in ("json", "md", "jsonl")}
    argv = (
        f"--n 300 --seeds 0 1 --rounds 2 --epochs 1 --gibbs-sweeps 10 --hidden 32 "
        f"--pretrain-epochs 1 "
        f"--speed-sweeps 10 --speed-epochs 1 --mnist {mnist_dir} --cache {paths['jsonl']} "
        f"--json {paths['json']} --markdown {paths['md']} --figures {tmp_path / 'fig'}"
    ).split()
    result = bench.main(argv)
    assert len(result["runs"]) == 2 * 6 and result["summary"]
    first = next(iter(result["summary"]))
    assert first == "mutual learning (defaults)"  # the defaults are the first row
    assert len(result["gain"]["acc"]["gains"]) == 2
    assert result["speed"]["threads"]["1"] > 0 and "log_joint" in result["speed"]["sklearn"]
    table = paths["md"].read_text()
    assert "Paired by seed" in table and "sweeps/s" in table
    for name in (
        "curves",
        "mutual_tsne",
        "once_tsne",
        "mutual_gaussians",
        "mutual_cluster_samples",
    ):
        assert (tmp_path / "fig" / f"{name}.png").exists(), name
    # a second call reads the cached runs instead of fitting again; a shard only fills the cache
    again = bench.main([*argv, "--only", "quality"])
    assert again["runs"] == json.loads(paths["json"].read_text())["runs"]
    assert bench.main([*argv, "--only", "quality", "--shard", "1/2"]) == {"runs": again["runs"]}


def test_ar_mixture_benchmark_tiny(tmp_path):
    bench = load("ar_mixture")
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    result = bench.main(
        f"--steps 200 --seeds 0 --epochs 2 --json {out_json} --markdown {out_md}".split()
    )
    problems = result["summary"]
    assert list(problems) == [
        "d=2, K=3, T=200", "d=5, K=4, T=200", "Markov, d=2, K=3, T=200", "Markov, d=1, K=2, T=200"
    ]  # fmt: skip
    first = next(iter(problems.values()))
    assert next(iter(first)) == "ARMixture, marginal (defaults)"  # the defaults are the first row
    assert "statsmodels MarkovAutoregression" in problems["Markov, d=1, K=2, T=200"]
    for rows in problems.values():
        for row in rows.values():
            assert 0 < row["accuracy"]["mean"] <= 1 and row["fit_seconds"]["mean"] > 0
    assert json.loads(out_json.read_text())["runs"] == result["runs"]
    assert "oracle" in out_md.read_text()


def test_dilokthanakul_benchmark_tiny_in_shards(mnist_dir, tmp_path):
    bench = load("dilokthanakul")
    out_json, out_md, cache = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "runs.jsonl"
    tiny = ["--n", "120", "--epochs", "1", "--seeds", "0", "--tiny", "--rows", "2"]
    tiny += ["--mnist", str(mnist_dir), "--cache", str(cache)]
    tiny += ["--json", str(out_json), "--markdown", str(out_md)]
    assert bench.main([*tiny, "--shard", "1/2"]) == {} and not out_json.exists()
    assert len(cache.read_text().splitlines()) == 1  # the second row only
    partial = bench.main([*tiny, "--no-fit"])  # publishes the cached fit, fits nothing
    assert list(partial["summary"]) == ["K=10, M=10"] and len(cache.read_text().splitlines()) == 1
    result = bench.main(tiny)
    assert len(cache.read_text().splitlines()) == 2  # the cached fit was not repeated
    # one epoch is not the defaults' training length, so no row is named the defaults
    assert list(result["summary"]) == ["K=10, M=1", "K=10, M=10"]
    assert list(bench.configurations(100))[0] == "K=10, M=1 (defaults)"
    for run in result["runs"]:
        for score in ("acc_hungarian", "acc_majority", "acc_paper_code"):
            assert 0 < run[score] <= 1
        assert run["acc_majority"] >= run["acc_hungarian"]  # many-to-one is never worse
    assert "74.5 ± 10.2 (87.7)" in out_md.read_text()  # the paper's row beside ours
    # settings other than the published table's cannot overwrite it, nor publish nothing
    with pytest.raises(SystemExit, match="--json --markdown"):
        bench.main(["--epochs", "100", "--no-fit", "--cache", str(cache)])
    with pytest.raises(SystemExit, match="nothing to publish"):
        bench.main([*tiny[:-6], "--json", str(out_json), "--markdown", str(out_md),
                    "--cache", str(tmp_path / "empty.jsonl"), "--no-fit"])  # fmt: skip
    where = "CPU" if not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    assert f"| {where}" in out_md.read_text()  # where the fits ran


def test_dilokthanakul_study_tiny(mnist_dir, tmp_path):
    bench = load("dilokthanakul_study")
    figures, out_json, out_md = tmp_path / "fig", tmp_path / "r.json", tmp_path / "r.md"
    result = bench.main(["--n", "150", "--epochs-synthetic", "1", "--epochs-mnist", "1", "--tiny",
                         "--mnist", str(mnist_dir), "--figures", str(figures),
                         "--json", str(out_json), "--markdown", str(out_md)])  # fmt: skip
    for dataset in ("synthetic", "mnist-test"):
        rows = result["datasets"][dataset]
        assert list(rows) == ["AE", "VAE", "GMVAE"]
        assert 0 < rows["GMVAE"]["clusters"]["acc"] <= 1 and "elbo" not in rows["AE"]
        assert len(rows["GMVAE"]["y_prior_per_epoch"]) == 1
        for name in ("same_w", "prior_terms", "vae_samples", "gmvae_latent_pca"):
            assert (figures / f"{dataset}_{name}.png").exists(), name
    assert "| mnist-test | GMVAE |" in out_md.read_text()


def test_posterior_analysis_benchmark_tiny(tmp_path):
    bench = load("posterior_analysis")
    with pytest.raises(SystemExit, match="--cache"):
        bench.main(["--tiny", "--parts", "gibbs-k3"])
    paths = ["--cache", str(tmp_path / "runs.jsonl"), "--json", str(tmp_path / "r.json"),
             "--markdown", str(tmp_path / "r.md")]  # fmt: skip
    result = bench.main(["--tiny", "--data-seeds", "0", "--parts", "gibbs-k3", "ar-k3",
                         "digits-k", "digits-entropy", *paths])  # fmt: skip
    rows = {r["method"]: r for r in result["runs"]}
    assert set(rows) == {"gibbs-k3", "ar-k3", "digits-k", "digits-entropy"}
    # digits-k: one process per seed, combined
    assert np.shape(rows["digits-k"]["scores"]) == (2, 2) and rows["digits-k"]["best_k"] in (9, 10)
    assert rows["gibbs-k3"]["best_k"] in rows["gibbs-k3"]["ks"] and "best_k_loo" in rows["gibbs-k3"]
    assert 0 <= rows["digits-entropy"]["auc"] <= 1
    assert "Picks: [" in (tmp_path / "r.md").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["runs"] == result["runs"]


# A stand-in with the reference's interface (jariasf/GMVAE's pytorch/ folder): the benchmark
# imports model/GMVAE.py from the folder it is given and calls only these names.
FAKE_REFERENCE = """
import torch

class Net(torch.nn.Module):
    def __init__(self, size, classes):
        super().__init__()
        self.logits = torch.nn.Linear(size, classes)

    def forward(self, x, temperature, hard):
        return {"logits": self.logits(x)}

class GMVAE:
    def __init__(self, args):
        self.num_epochs, self.gumbel_temp, self.hard_gumbel = args.epochs, args.init_temp, 0
        self.init_temp, self.min_temp = args.init_temp, args.min_temp
        self.decay_temp_rate = args.decay_temp_rate
        self.network = Net(args.input_size, args.num_classes)

    def train_epoch(self, optimizer, loader):
        for x, _ in loader:
            optimizer.zero_grad()
            loss = -self.network(x, 1.0, 0)["logits"].log_softmax(1).max(1)[0].mean()
            loss.backward()
            optimizer.step()

    def train(self, train_loader, val_loader):
        optimizer = torch.optim.Adam(self.network.parameters(), lr=1e-3)
        history = []
        for epoch in range(self.num_epochs):
            self.train_epoch(optimizer, train_loader)
            print("epoch", epoch)
            history.append(50.0 + epoch)
        return {"val_history_acc": history}
"""


def test_gmvae_benchmark_runs_the_reference_beside_the_defaults(mnist_dir, tmp_path, monkeypatch):
    """With --reference, its rows are fitted on the same split, validated on the rows GMVAE()
    monitors, and cached with the hash of its code; the time to its final ACC and the
    relaxed-mode throughput ratio are published. A call without --reference publishes none of
    its rows; with it, they come from the cache."""
    (tmp_path / "ref" / "pytorch" / "model").mkdir(parents=True)
    (tmp_path / "ref" / "pytorch" / "model" / "GMVAE.py").write_text(FAKE_REFERENCE)
    bench = load("gmvae_mnist_test")
    watched = {}
    fit = bench.Reference.fit

    def recording(self, X_train, y_train, monitor, seed, epochs):
        watched[seed] = X_train[monitor]
        return fit(self, X_train, y_train, monitor, seed, epochs)

    monkeypatch.setattr(bench.Reference, "fit", recording)
    argv = ["--n", "200", "--epochs", "2", "--pretrain-epochs", "1", "--hidden", "32",
            "--seeds", "0", "--ablation-seeds", "--reference-seeds", "0", "1",
            "--iw-samples", "4", "--speed-steps", "2", "--relaxed-speed-epochs", "1",
            "--mnist", str(mnist_dir)]  # fmt: skip
    for name in ("json", "markdown", "cache"):
        argv += [f"--{name}", str(tmp_path / f"r.{name}")]
    with_reference = [*argv, "--reference", str(tmp_path / "ref")]
    result = bench.main(with_reference)
    ref = [r for r in result["runs"] if r["method"] == bench.REFERENCE]
    assert [r["seed"] for r in ref] == [0, 1] and all(len(r["code_sha256"]) == 16 for r in ref)
    assert all(r["monitored_acc"] == [0.50, 0.51] and r["epochs"] == 2 for r in ref)
    assert result["summary"][bench.REFERENCE]["seeds"] == [0, 1]
    train, _, _ = bench.split(bench.load_mnist_test(mnist_dir).subset(200, seed=0).X)
    X = bench.load_mnist_test(mnist_dir).subset(200, seed=0).X[train]
    for seed in (0, 1):  # the reference validates on exactly the images GMVAE(seed) monitors
        ours, _ = bench.GMVAE(seed=seed)._monitor_data(X.reshape(len(X), -1), None)
        assert torch.equal(watched[seed].reshape(len(ours), -1), ours)
    assert [p["seed"] for p in result["versus_reference"]["per_reference_seed"]] == [0, 1]
    speed = result["relaxed_speed"]
    for part in (speed, speed["with_evaluation"]):
        assert part["ratio"] == pytest.approx(
            part["ours_images_per_s"] / part["reference_images_per_s"]
        )
    assert {len(v) for v in speed["all_rounds"].values()} == {3}
    table = (tmp_path / "r.markdown").read_text()
    assert bench.REFERENCE in table and "reference's configuration" in table
    lines = (tmp_path / "r.cache").read_text().splitlines()
    without = bench.main([*argv, "--only", "quality"])
    assert not [r for r in without["runs"] if r["method"] == bench.REFERENCE]
    again = bench.main([*with_reference, "--only", "quality"])
    assert [r["seed"] for r in again["runs"] if r["method"] == bench.REFERENCE] == [0, 1]
    assert (tmp_path / "r.cache").read_text().splitlines() == lines  # nothing refitted
    assert "relaxed_speed" not in again
    with pytest.raises(SystemExit, match="no model/GMVAE.py"):
        bench.main([*argv, "--reference", str(tmp_path)])


def test_gmvae_benchmark_times_both_to_the_references_final_acc():
    """Per reference seed: its final monitored ACC, when it first reached it, and the median
    over the defaults' seeds of when GMVAE() did, pre-training included."""
    bench = load("gmvae_mnist_test")
    ref = {"method": bench.REFERENCE, "threads": 1, "seconds_per_epoch": 10.0, "seconds": 40.0,
           "pretrain_seconds": 0.0}  # fmt: skip
    ours = {"method": "GMVAE() defaults", "threads": 1, "seconds_per_epoch": 5.0}
    runs = [
        {**ref, "seed": 0, "monitored_acc": [0.3, 0.6, 0.5, 0.6]},  # 0.6 first after epoch 2
        {**ref, "seed": 1, "monitored_acc": [0.2, 0.3, 0.4, 0.99]},
        {**ours, "seed": 0, "pretrain_seconds": 2.0, "monitored_acc": [0.5, 0.7]},  # 12 s
        {**ours, "seed": 1, "pretrain_seconds": 4.0, "monitored_acc": [0.9, 0.9]},  # 9 s
        {**ours, "seed": 2, "pretrain_seconds": 1.0, "monitored_acc": [0.61, 0.9]},  # 6 s
    ]
    vs = bench.versus_reference(runs)
    first, second = vs["per_reference_seed"]
    assert first["target_acc"] == 0.6 and first["reference_seconds_to_target"] == 20.0
    assert first["ours_seconds_to_target"] == 9.0 and first["reached"] == 3
    assert first["speed_up"] == pytest.approx(20.0 / 9.0)
    assert second["ours_seconds_to_target"] is None and second["speed_up"] is None
    assert vs["speed_up_mean"] == pytest.approx(20.0 / 9.0)
    runs[2]["threads"] = 2  # timed on other thread counts: not compared
    assert bench.versus_reference(runs) is None


def test_larger_than_memory_benchmark_tiny(tmp_path):
    """The synthetic data are written, the command line trains on them in a child process
    (inside a memory cgroup where this machine lets us make one) and the peaks are reported."""
    bench = load("larger_than_memory")
    limited = os.access(bench.CGROUP_V1, os.W_OK) and (bench.CGROUP_V1 / "cgroup.procs").exists()
    paths = {name: tmp_path / f"r.{name}" for name in ("json", "markdown")}
    argv = ["--tiny", "--gib", "0.0005", "--side", "12", "--source", "digits", "--hidden", "8",
            "--limit-mib", "2048" if limited else "0", "--workdir", str(tmp_path)]  # fmt: skip
    for name, path in paths.items():
        argv += [f"--{name}", str(path)]
    bench.main(argv)
    saved = json.loads(paths["json"].read_text())
    assert saved["returncode"] == 0 and saved["n"] == 0.0005 * 2**30 // (4 * 144)
    assert saved["data_bytes"] == saved["n"] * 4 * 144
    assert (
        saved["peak_rss_anon_bytes"] > 0 and saved["peak_rss_bytes"] >= saved["peak_rss_anon_bytes"]
    )
    assert 0 < saved["summary"]["scores"]["acc"] <= 1
    if limited:
        assert 0 < saved["cgroup_peak_bytes"] <= 2048 * 2**20
    assert set(tmp_path.iterdir()) == set(paths.values())  # the data and the run are gone
    with pytest.raises(SystemExit, match="smoke run"):
        bench.main(["--tiny"])
