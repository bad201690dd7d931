"""The command line on the embedded digits."""

import json

import pytest

from pyro_gmvae.cli import main

TINY = (
    "--dataset digits --n 200 --epochs 2 --clusters 3 --latent-dim 4 --hidden 32 "
    "--pretrain-epochs 2 --no-progress"
).split()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_train_writes_a_run_folder(run):
    for name in (
        "model.pt",
        "metrics.csv",
        "summary.json",
        "checkpoints/last.ckpt",
        "figures/samples_per_cluster.png",
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


def test_resume_extends_a_run(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    args = [*TINY, "--epochs", "3"]  # the later --epochs wins
    assert main(["train", *args, "--out", str(copy), "--resume", "--no-figures"]) == 0
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["epochs"] == 3


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
