"""The command line on the embedded digits."""

import json

import numpy as np
import pytest
import torch

from pyro_gmvae import GMVAE, load_digits
from pyro_gmvae.cli import main

TINY = (
    "--dataset digits --n 200 --epochs 2 --clusters 3 --latent-dim 4 --hidden 32 "
    "--pretrain-epochs 2 --no-progress"
).split()


def tiny(options=()):
    """TINY less the options that a prior without clusters (or the autoencoder) refuses."""
    prior = options[options.index("--prior") + 1] if "--prior" in options else None
    drop = {"vamp": ("--clusters",), "standard-normal": ("--clusters",)}.get(prior, ())
    if prior == "none":
        drop = ("--clusters", "--pretrain-epochs")
    out = list(TINY)
    for option in drop:
        i = out.index(option)
        del out[i : i + 2]
    return [*out, *options]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_train_writes_a_run_folder(run):
    for name in (
        "model.pt",
        "data.json",
        "metrics.csv",
        "summary.json",
        "checkpoints/last.ckpt",
        "figures/samples.png",
        "figures/latent_tsne.png",
        "figures/reconstructions.png",
        "figures/training_curves.png",
    ):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n"] == 200 and summary["epochs"] == 2
    assert 0 < summary["scores"]["acc"] <= 1 and 0 < summary["kmeans_scores"]["acc"] <= 1
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "acc", "nmi", "ari", "train_kl_y", "train_kl_z"} <= set(header)


def test_train_refuses_to_overwrite(run, capsys):
    with pytest.raises(SystemExit, match="--overwrite"):
        main(["train", *TINY, "--out", str(run)])


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(SystemExit, match="not a pyro-gmvae run folder"):
        main(["train", *TINY, "--out", str(tmp_path), "--overwrite"])
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_resume_continues_the_run_exactly(run, tmp_path, trained_epochs):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    args = [*TINY, "--epochs", "3", "--no-figures"]  # the later --epochs wins
    assert main(["train", *args, "--out", str(copy), "--resume"]) == 0
    assert trained_epochs == [3]  # only the missing epoch ran: a resume, not a restart
    assert main(["train", *args, "--out", str(tmp_path / "straight")]) == 0
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["epochs"] == 3
    resumed, straight = (GMVAE.load(f / "model.pt") for f in (copy, tmp_path / "straight"))
    X = load_digits().subset(200, seed=0).X
    np.testing.assert_allclose(resumed.predict_proba(X), straight.predict_proba(X), atol=1e-6)
    rows = (copy / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2", "3"]
    assert rows[:3] == (run / "metrics.csv").read_text().splitlines()  # kept as they were
    assert rows == (tmp_path / "straight/metrics.csv").read_text().splitlines()
    # a copied (moved) run folder still checkpoints to last.ckpt, so it resumes again
    assert [p.name for p in (copy / "checkpoints").iterdir()] == ["last.ckpt"]
    trained_epochs.clear()
    again = [*TINY, "--epochs", "4", "--no-figures", "--out", str(copy), "--resume"]
    assert main(["train", *again]) == 0
    assert trained_epochs == [4]
    assert [r.split(",")[0] for r in (copy / "metrics.csv").read_text().splitlines()][1:] == [
        "1",
        "2",
        "3",
        "4",
    ]


def test_a_refused_resume_leaves_every_file_as_it_was(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = _files(copy)
    assert main(["train", *TINY, "--clusters", "7", "--out", str(copy), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "other settings: n_clusters: 3 -> 7" in err and err.count("\n") == 1
    assert _files(copy) == before
    assert main(["train", *TINY, "--n", "150", "--out", str(copy), "--resume"]) == 2
    assert "trained on other data: n: 200 -> 150" in capsys.readouterr().err
    assert _files(copy) == before


def test_an_interrupted_resume_or_overwrite_leaves_every_file_as_it_was(run, tmp_path, monkeypatch):
    import shutil

    from pyro_gmvae import training

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = _files(copy)

    def interrupt(*args):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(training.EpochMetricsCallback, "on_train_epoch_end", interrupt)
    for extra in (["--resume", "--epochs", "3"], ["--overwrite"]):
        with pytest.raises(RuntimeError, match="interrupted"):
            main(["train", *TINY, *extra, "--no-figures", "--out", str(copy)])
        assert _files(copy) == before, extra


def test_the_command_line_builds_the_model_the_api_builds(run):
    cli = GMVAE.load(run / "model.pt")  # built-in components: loads with no arguments
    data = load_digits().subset(200, seed=0)
    settings = dict(n_clusters=3, latent_dim=4, hidden_dims=(32,), epochs=2, pretrain_epochs=2)
    api = GMVAE(**settings, progress_bar=False).fit(data.X)
    assert cli.set_params(progress_bar=False).get_params() == api.get_params()
    np.testing.assert_array_equal(cli.predict_proba(data.X), api.predict_proba(data.X))


def test_evaluate_and_sample(run, capsys):
    assert main(["evaluate", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 200 and result["elbo"] < 0 and "acc" in result["scores"]
    assert main(["sample", str(run), "--n-per-cluster", "4", "--npy"]) == 0
    assert (run / "figures/samples_seed0.png").exists()
    assert (run / "figures/samples_seed0.npy").exists()
    with pytest.raises(SystemExit, match="exists"):
        main(["sample", str(run), "--n-per-cluster", "4"])


def test_errors_are_reported_cleanly(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not a finished pyro-gmvae run"):
        main(["evaluate", str(tmp_path)])
    assert main(["train", *TINY, "--clusters", "1", "--out", str(tmp_path / "r")]) == 2
    assert "at least 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, clusters",
    [
        (["--prior", "vamp", "--z-guide", "full"], False),
        (["--prior", "mixture-marginal", "--likelihood", "continuous-bernoulli"], True),
        (["--prior", "fixed-mixture", "--discrete", "relaxed", "--z-guide", "flow"], True),
    ],
    ids=["vamp-full", "vade-cb", "fixed-relaxed-flow"],
)
def test_a_prior_or_guide_is_one_option(options, clusters, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny(options), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["prior"] == options[1]
    assert ("scores" in summary) == clusters
    capsys.readouterr()
    assert main(["evaluate", str(out), "--iw-samples", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert np.isfinite([result["iw_log_likelihood"], result["elbo"]]).all()
    # labelled where a Bernoulli likelihood meets grey levels; the continuous one is a density
    bernoulli = "continuous-bernoulli" not in options
    assert ("not a normalised density" in result.get("note", "")) == bernoulli
    summary = json.loads((out / "summary.json").read_text())
    assert ("elbo_note" in summary) == bernoulli
    assert ("scores" in result) == clusters
    assert main(["sample", str(out), "--n-per-cluster", "3", "--npy"]) == 0
    assert (out / "figures/samples_seed0.png").exists()
    assert np.load(out / "figures/samples_seed0.npy").shape[1:] == (3, 64)


def test_the_autoencoder_trains_but_has_no_density(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["train", *tiny(["--prior", "none"]), "--out", str(out)]) == 0
    assert not (out / "figures/samples.png").exists() and (out / "figures/latent_tsne.png").exists()
    assert main(["evaluate", str(out)]) == 0
    assert main(["evaluate", str(out), "--iw-samples", "8"]) == 2
    assert main(["sample", str(out)]) == 2
    assert "no prior on z" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--prior", "vamp", "--discrete", "relaxed"], "--discrete does not apply to --prior vamp"),
        (["--prior", "none", "--z-guide", "flow"], "--z-guide does not apply"),
        (["--prior", "none", "--init", "random"], "--init does not apply"),
        (["--prior", "vamp", "--init", "pretrain"], "the 'vamp' prior has none"),
        (["--prior", "vamp", "--z-guide", "flow"], "not supported: VampPrior needs a Gaussian"),
        (["--prior", "fixed-mixture", "--init", "pretrain"], "init='random'"),
        (["--prior", "vamp", "--clusters", "5"], "--clusters does not apply to --prior vamp"),
        (["--prior", "none", "--pretrain-epochs", "3"], "--pretrain-epochs does not apply"),
    ],
)
def test_options_that_do_not_fit_the_prior_are_refused(options, message, tmp_path, capsys):
    out = tmp_path / "refused"
    assert main(["train", *tiny(options), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # refused before any file is written


def test_default_run_folders_name_what_differs_from_the_default():
    from pyro_gmvae.cli import _default_out, _model, build_parser

    def folder(*options):
        args = build_parser().parse_args(["train", *options])
        return _default_out(args, _model(args, 1)).name

    assert folder() == "digits-seed0"
    assert folder("--discrete", "enumerate") == "digits-enumerate-seed0"
    assert folder("--prior", "vamp", "--seed", "2") == "digits-vamp-seed2"
    assert folder("--discrete", "relaxed", "--z-guide", "flow") == "digits-relaxed-flow-seed0"
    assert folder("--prior", "none") == "digits-autoencoder-seed0"


def test_the_same_seed_gives_the_same_run_whatever_the_global_random_state(tmp_path):
    import torch

    summaries = []
    for i in (0, 1):
        torch.manual_seed(100 + i)  # the prior's random start must come from --seed alone
        out = tmp_path / f"vamp{i}"
        options = tiny(["--prior", "vamp", "--no-figures"])
        assert main(["train", *options, "--out", str(out)]) == 0
        summaries.append(json.loads((out / "summary.json").read_text()))
    assert summaries[0]["elbo"] == summaries[1]["elbo"]


MUTUAL = (
    "--model vae-gmm --dataset digits --n 200 --epochs 2 --rounds 2 --clusters 3 "
    "--latent-dim 3 --hidden 32 --gibbs-sweeps 10 --gibbs-burn-in 3 --pretrain-epochs 2 "
    "--no-progress"
).split()


def test_vae_gmm_run_folder_matches_the_api(tmp_path, capsys):
    from pyro_gmvae import VAEGMM

    out = tmp_path / "mutual"
    assert main(["train", *MUTUAL, "--out", str(out)]) == 0
    for name in ("model.pt", "summary.json", "metrics.csv", "rounds.csv", "gibbs.csv"):
        assert (out / name).exists(), name
    for name in ("gibbs_trace", "gaussians_2d", "samples", "latent_tsne", "training_curves"):
        assert (out / "figures" / f"{name}.png").exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["model"] == "VAEGMM" and len(summary["rounds"]) == 2
    # the CLI builds what the API builds from the same settings
    api = VAEGMM(
        n_clusters=3,
        latent_dim=3,
        hidden_dims=(32,),
        epochs=2,
        n_rounds=2,
        gibbs_sweeps=10,
        gibbs_burn_in=3,
        pretrain_epochs=2,
        progress_bar=False,
    )
    assert summary["config"] == api.configuration()
    data = load_digits().subset(200, seed=0)
    api.fit(data.X, data.y)
    loaded = VAEGMM.load(out / "model.pt")
    assert np.array_equal(loaded.predict(data.X), api.predict(data.X))
    assert main(["evaluate", str(out)]) == 0
    assert main(["sample", str(out), "--n-per-cluster", "2"]) == 0
    assert (out / "figures" / "samples_seed0.png").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--prior", "vamp"], "--prior does not apply to --model vae-gmm"),
        (["--init", "auto"], "init must be 'pretrain' or 'random'"),
        (["--resume"], "--resume does not apply"),
    ],
)
def test_vae_gmm_refuses_options_it_has_no_use_for(tmp_path, capsys, options, message):
    assert main(["train", *MUTUAL, "--out", str(tmp_path / "x"), *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_gibbs_options_are_refused_without_vae_gmm(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path / "x"), "--gibbs-sweeps", "5"]) == 2
    assert "only to --model vae-gmm" in capsys.readouterr().err


def test_ar_on_a_simulated_series_matches_the_api(tmp_path, capsys):
    from pyro_gmvae.timeseries import ARMixture, simulate_ar_mixture

    out = tmp_path / "ar"
    argv = ["ar", "--simulate", "--steps", "300", "--epochs", "3", "--components", "2",
            "--forecast-steps", "5", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    for name in ("model.pt", "summary.json", "regimes.csv"):
        assert (out / name).exists(), name
    for name in ("regimes", "forecast", "training"):
        assert (out / "figures" / f"{name}.png").exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert "oracle_accuracy" in summary["against_truth"]
    sim = simulate_ar_mixture(300, 2, 2, seed=0)
    api = ARMixture(2, epochs=3, progress_bar=False).fit(sim.series)
    config = {**api.get_params(), "hidden_dims": list(api.hidden_dims), "progress_bar": True}
    assert summary["config"] == config  # all the API's defaults, and the options given
    loaded = ARMixture.load(out / "model.pt")
    np.testing.assert_allclose(loaded.transition_matrices_, api.transition_matrices_)
    # a second run into the same folder is refused and leaves it as it was
    before = (out / "summary.json").read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        main(argv)
    assert (out / "summary.json").read_bytes() == before


def test_ar_reads_csv_and_npy_and_reports_bad_input(tmp_path, capsys):
    from pyro_gmvae.timeseries import simulate_ar_mixture

    x = simulate_ar_mixture(150, 2, 2, seed=1).series[0]
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n" + "\n".join(f"{u},{v}" for u, v in x))
    np.save(tmp_path / "x.npy", x)
    for path in (csv, tmp_path / "x.npy"):
        out = tmp_path / f"run-{path.suffix[1:]}"
        assert main(["ar", "--data", str(path), "--epochs", "2", "--components", "2",
                     "--no-figures", "--out", str(out)]) == 0  # fmt: skip
        assert (out / "model.pt").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,nan\n4,5\n")
    assert main(["ar", "--data", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert "NaN" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before any file was written
    argv = ["ar", "--data", str(csv), "--forecast-steps", "0", "--out", str(tmp_path / "f0")]
    assert main(argv) == 2 and not (tmp_path / "f0").exists()
    assert main(["ar", "--out", str(tmp_path / "none")]) == 2  # neither a file nor --simulate


def test_dilokthanakul_run_folder_matches_the_api(tmp_path, capsys):
    from pyro_gmvae import DilokthanakulGMVAE

    out = tmp_path / "dk"
    argv = ["train", "--model", "dilokthanakul", "--n", "200", "--clusters", "3",
            "--latent-dim", "4", "--w-dim", "2", "--hidden", "32", "--epochs", "2",
            "--mc-samples", "2", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    for name in ("model.pt", "summary.json", "metrics.csv"):
        assert (out / name).exists(), name
    assert (out / "figures" / "samples.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    api = DilokthanakulGMVAE(n_clusters=3, latent_dim=4, w_dim=2, hidden_dims=(32,), epochs=2,
                             n_samples=2, progress_bar=False)  # fmt: skip
    assert summary["config"] == api.configuration()  # the model's own lr, batch size, ...
    assert "train_y_prior" in (out / "metrics.csv").read_text()
    data = load_digits().subset(200, seed=0)
    api.fit(data.X, data.y)
    loaded = DilokthanakulGMVAE.load(out / "model.pt")
    assert np.array_equal(loaded.predict(data.X), api.predict(data.X))
    assert main(["train", "--model", "dilokthanakul", "--prior", "vamp",
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "--prior does not apply" in capsys.readouterr().err
    assert main(["train", "--w-dim", "3", "--out", str(tmp_path / "y")]) == 2


def test_the_one_dimensional_mixture_trains_with_a_gaussian_likelihood(tmp_path):
    out = tmp_path / "mix"
    argv = ["train", "--model", "dilokthanakul", "--dataset", "mixture-1d", "--n", "300",
            "--clusters", "3", "--latent-dim", "2", "--w-dim", "2", "--hidden", "16",
            "--epochs", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["likelihood"] == "gaussian"  # not pixels: no Bernoulli
    assert summary["n"] == 300 and "scores" in summary
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["latent_pca.png", "samples.png", "training_curves.png"]
    assert main(["sample", str(out), "--npy"]) == 0  # histograms, not 1x1 "images"
    assert np.load(out / "figures" / "samples_seed0.npy").shape == (3, 10, 1)


def test_data_that_are_not_pixels_are_not_binarised_by_default():
    from pyro_gmvae.cli import _model, build_parser

    args = build_parser().parse_args(["train", "--model", "vae-gmm", "--dataset", "mixture-1d"])
    model = _model(args, None)
    assert model.binarize is False and model.likelihood == "gaussian"


def test_options_given_as_zero_reach_the_estimator_and_unused_ones_are_refused():
    """A zero is a value, not "not given": it reaches the estimator, which refuses it, instead
    of being replaced by the default."""
    from pyro_gmvae.cli import _model, build_parser

    def build(*options):
        model = _model(build_parser().parse_args(["train", *options]), None)
        model._check_params()  # what fit checks first
        return model

    with pytest.raises(ValueError, match="pretrain_epochs"):
        build("--pretrain-epochs", "0")
    for model in ([], ["--model", "dilokthanakul"]):
        with pytest.raises(ValueError, match="lr"):
            build(*model, "--lr", "0")
        with pytest.raises(ValueError, match="batch_size"):
            build(*model, "--batch-size", "0")
    assert build("--model", "dilokthanakul").lr == 1e-4  # its own default when not given
    with pytest.raises(ValueError, match="--threshold does not apply"):
        build("--model", "dilokthanakul", "--objective", "elbo", "--threshold", "3")


def test_kmeans_on_wide_samples_fits_and_predicts_a_bounded_number_at_a_time(monkeypatch):
    """The k-means baseline fits at most 20,000 samples, fewer of wider ones (its copies near
    KMEANS_BYTES), and labels every sample, a chunk of as many at a time."""
    import sklearn.cluster

    from pyro_gmvae import cli

    assert cli._kmeans_rows(784, 10) == 20_000
    assert cli._kmeans_rows(48 * 48, 10) == 2**26 // (4 * 2304)
    assert cli._kmeans_rows(1024 * 1024, 20) == 20  # never fewer rows than clusters
    monkeypatch.setattr(cli, "KMEANS_BYTES", 4 * 64 * 100)  # 100 rows of the digits' 64 pixels
    data = load_digits().subset(300, seed=0)
    before = data.X.clone()
    seen = []

    class Watched(sklearn.cluster.KMeans):
        def fit(self, X, *args, **kwargs):
            seen.append(("fit", X.shape, X.dtype))
            return super().fit(X, *args, **kwargs)

        def predict(self, X):
            seen.append(("predict", X.shape, X.dtype))
            return super().predict(X)

    monkeypatch.setattr(sklearn.cluster, "KMeans", Watched)
    labels, fitted_on = cli._kmeans_labels(data, 10, seed=0)
    assert fitted_on == 100 and labels.shape == (300,)
    assert seen == [("fit", (100, 64), np.float32)] + [("predict", (100, 64), np.float32)] * 3
    assert cli.clustering_scores(data.y, labels)["acc"] > 0.5  # the digits' k-means, as usual
    assert torch.equal(data.X, before)  # centred in place (copy_x=False): a copy of the rows
