"""Data on disk: memory-mapped arrays and torch datasets, read a batch at a time."""

import json
import warnings

import numpy as np
import pytest
import torch

from pyro_gmvae import AE, GMVAE, VAE, VAEGMM, DilokthanakulGMVAE, load_digits
from pyro_gmvae.analysis import cluster_summaries, posterior_samples
from pyro_gmvae.cli import main
from pyro_gmvae.data import load_array
from pyro_gmvae.disk import DiskData

SMALL = dict(latent_dim=4, hidden_dims=(32,), epochs=2, batch_size=64, progress_bar=False)


@pytest.fixture(scope="module")
def digits():
    return load_digits().subset(300, seed=0)


@pytest.fixture
def on_disk(digits, tmp_path):
    """The digits as a read-only memory-mapped float32 .npy file."""
    np.save(tmp_path / "x.npy", digits.X.numpy())
    return np.load(tmp_path / "x.npy", mmap_mode="r")


def test_rows_read_as_the_array_gives_them(digits, on_disk):
    data = DiskData(on_disk)
    X = digits.X
    assert data.shape == tuple(X.shape) and len(data) == len(X) and data.image_shape == (8, 8)
    torch.testing.assert_close(data[5], X[5])
    torch.testing.assert_close(data[10:20], X[10:20])
    index = [7, 3, 250, 3]
    torch.testing.assert_close(data[index], X[index])
    torch.testing.assert_close(data[torch.tensor(index)], X[index])
    torch.testing.assert_close(torch.cat(list(data.split(64))), X)
    torch.testing.assert_close(data.extremes, torch.stack([X.min(0).values, X.max(0).values]))
    mask = np.zeros(len(X), dtype=bool)
    mask[[4, 9]] = True
    torch.testing.assert_close(data[mask], X[[4, 9]])
    torch.testing.assert_close(data[torch.from_numpy(mask)], X[[4, 9]])
    with pytest.raises(IndexError, match="a mask of 3"):
        data[np.ones(3, dtype=bool)]
    with pytest.raises(IndexError, match="int or bool"):
        data[np.array([0.5, 1.5])]
    assert not data.binary and DiskData(np.asarray(on_disk > 0.5, dtype=np.float32)).binary
    # rows by index come from a mapping of its own (advised for random access), the user's
    # stays as it was
    assert data._by_index is not on_disk and data._by_index.filename == on_disk.filename


def test_bytes_are_scaled_and_images_flattened(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (50, 1, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "b.npy", images)
    data = DiskData(np.load(tmp_path / "b.npy", mmap_mode="r"), scale=1 / 255)
    assert data.shape == (50, 36) and data.image_shape == (6, 6)
    expected = torch.from_numpy(images.reshape(50, 36)).float() / 255  # as in memory
    assert torch.equal(data[:], expected)


@pytest.mark.parametrize("model", [GMVAE, AE, VAE, DilokthanakulGMVAE])
def test_fitting_from_disk_gives_the_in_memory_fit(model, digits, on_disk):
    options = dict(SMALL, seed=3)
    if model is not AE:
        options["n_clusters" if model is not VAE else "n_components"] = 3
    if model is VAE:
        options["prior"] = "mixture-marginal"
    if model in (GMVAE,):
        options["pretrain_epochs"] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few epochs: collapse warnings
        memory = model(**options).fit(digits.X)
        disk = model(**options).fit(on_disk)
    np.testing.assert_array_equal(memory.transform(digits.X), disk.transform(on_disk))
    np.testing.assert_array_equal(memory.score_samples(digits.X), disk.score_samples(on_disk))
    if model is not AE:
        np.testing.assert_array_equal(memory.predict_proba(digits.X), disk.predict_proba(on_disk))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # grey levels: a cross-entropy, said elsewhere
            iw_memory = memory.log_likelihood(digits.X, 5)
            iw_disk = disk.log_likelihood(on_disk, 5)
        np.testing.assert_array_equal(iw_memory, iw_disk)


def test_vae_gmm_fits_from_disk_as_from_memory(digits, on_disk):
    options = dict(SMALL, n_clusters=3, n_rounds=1, gibbs_sweeps=20, gibbs_burn_in=10, seed=1)
    options["pretrain_epochs"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = VAEGMM(**options).fit(digits.X)
        disk = VAEGMM(**options).fit(on_disk)
    np.testing.assert_array_equal(memory.labels_, disk.labels_)
    np.testing.assert_array_equal(memory.predict_proba(digits.X), disk.predict_proba(on_disk))


def test_no_read_takes_more_than_a_chunk(tmp_path, monkeypatch):
    """Fitting, scoring and predicting read the data in batches and chunks, never whole."""
    np.save(tmp_path / "all.npy", load_digits().X.numpy())  # 1,797 samples
    on_disk = np.load(tmp_path / "all.npy", mmap_mode="r")
    sizes = []
    real = DiskData._read

    def recording(self, index):
        rows = real(self, index)
        sizes.append(len(rows))
        return rows

    monkeypatch.setattr(DiskData, "_read", recording)
    monkeypatch.setattr("pyro_gmvae.disk.CHUNK", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GMVAE(**SMALL, n_clusters=3, pretrain_epochs=1, monitor_size=50).fit(on_disk)
    model.score(on_disk)
    model.predict(on_disk)
    assert sum(sizes) > 5 * len(on_disk)  # the check, the epochs, the codes, the scores ...
    # the checking pass's chunks (shrunk here from 4,096), the scores' and codes' 1,000
    assert max(sizes) <= 1000 < len(on_disk)


def test_a_torchvision_dataset_on_disk_fits_as_its_array(tmp_path):
    """Image files read through torchvision's ImageFolder (one file per sample) give the fit
    of the same pixels held in memory."""
    from PIL import Image
    from torchvision import datasets, transforms

    digits = load_digits().subset(120, seed=0)
    pixels = np.round(digits.X.numpy().reshape(-1, 8, 8) * 255).astype(np.uint8)
    for i, (image, label) in enumerate(zip(pixels, digits.y, strict=True)):
        folder = tmp_path / str(label)
        folder.mkdir(exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i:04d}.png")
    dataset = datasets.ImageFolder(tmp_path, transform=transforms.ToTensor(), loader=_grey)
    X = torch.stack([dataset[i][0] for i in range(len(dataset))]).reshape(len(dataset), -1)
    options = dict(SMALL, n_clusters=3, pretrain_epochs=1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        disk = GMVAE(**options).fit(dataset)
        memory = GMVAE(**options).fit(X)
    assert disk.image_shape_ == (8, 8)
    np.testing.assert_array_equal(disk.predict_proba(dataset), memory.predict_proba(X))


def _grey(path):
    from PIL import Image

    with open(path, "rb") as f:
        return Image.open(f).convert("L")


def test_bad_data_on_disk_is_refused_clearly(tmp_path, digits):
    bad = digits.X.numpy().copy()
    bad[3, 5] = np.nan
    bad[7, 1] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="2 NaN or infinite"):
        GMVAE(**SMALL).fit(np.load(tmp_path / "nan.npy", mmap_mode="r"))
    np.save(tmp_path / "bytes.npy", (digits.X.numpy() * 255).astype(np.uint8))
    raw = np.load(tmp_path / "bytes.npy", mmap_mode="r")
    with pytest.raises(ValueError, match=r"needs values in \[0, 1\]; the data spans \[0, 255\]"):
        GMVAE(**SMALL).fit(raw)
    with pytest.raises(ValueError, match="binarize=True"):
        GMVAE(**SMALL, binarize=True).fit(raw)
    with pytest.raises(ValueError, match="n_clusters=400 is larger than the number of samples"):
        GMVAE(**SMALL, n_clusters=400).fit(DiskData(raw, scale=1 / 255))
    np.save(tmp_path / "text.npy", np.array([["a", "b"]] * 5))
    with pytest.raises(TypeError, match="numeric"):
        DiskData(np.load(tmp_path / "text.npy", mmap_mode="r"))
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        DiskData(raw, scale=0)
    with pytest.raises(ValueError, match="shaped"):
        DiskData(np.zeros((4, 2, 2, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="transform=ToTensor"):
        DiskData(_ListDataset(["not an image"] * 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GMVAE(**SMALL, n_clusters=3, pretrain_epochs=1).fit(digits.X)
    np.save(tmp_path / "wide.npy", np.zeros((5, 65), dtype=np.float32))
    with pytest.raises(ValueError, match="fitted on 64 features per sample, this data has 65"):
        model.predict(np.load(tmp_path / "wide.npy", mmap_mode="r"))


def test_what_needs_every_sample_in_memory_refuses_data_on_disk(digits, on_disk):
    """Posterior analysis, cluster summaries and a monitor of every sample would read the
    whole data into memory: they say so and ask for a subset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GMVAE(**SMALL, n_clusters=3, pretrain_epochs=1).fit(on_disk)
        with pytest.raises(ValueError, match="monitor_size=None watches every sample"):
            GMVAE(**SMALL, n_clusters=3, pretrain_epochs=1, monitor_size=None).fit(on_disk)
    for analyse in (lambda: posterior_samples(model, on_disk, 2),
                    lambda: cluster_summaries(model, on_disk)):  # fmt: skip
        with pytest.raises(ValueError, match=r"on disk .* pass a subset"):
            analyse()
    assert len(cluster_summaries(model, np.array(on_disk[:50]))) == 3  # a subset in memory

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter([])

    with pytest.raises(TypeError, match="IterableDataset has no index"):
        model.predict(Stream())


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


def test_the_file_stays_as_it_was(digits, tmp_path):
    np.save(tmp_path / "x.npy", digits.X.numpy())
    before = (tmp_path / "x.npy").read_bytes()
    writable = np.load(tmp_path / "x.npy", mmap_mode="r+")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GMVAE(**SMALL, n_clusters=3, pretrain_epochs=1, binarize=True).fit(writable)
    del writable
    assert (tmp_path / "x.npy").read_bytes() == before


def test_the_command_line_trains_on_an_npy_file(digits, tmp_path, capsys):
    """`--dataset FILE.npy` memory-maps the file; labels and a byte scale come with it, and
    `evaluate` finds them again from the run's summary."""
    np.save(tmp_path / "bytes.npy", np.round(digits.X.numpy() * 255).astype(np.uint8))
    np.save(tmp_path / "labels.npy", digits.y)
    out = tmp_path / "run"
    common = "--epochs 2 --clusters 3 --latent-dim 4 --hidden 32 --pretrain-epochs 1".split()
    args = ["train", "--dataset", str(tmp_path / "bytes.npy"), "--labels"]
    args += [str(tmp_path / "labels.npy"), "--max-value", "255", *common, "--no-progress"]
    assert main([*args, "--out", str(out), "--no-figures"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == summary["kmeans_fitted_on"] == 300 and summary["max_value"] == 255
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scores"] == summary["scores"] and result["elbo"] == summary["elbo"]
    api = GMVAE(n_clusters=3, latent_dim=4, hidden_dims=(32,), epochs=2, pretrain_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api.set_params(progress_bar=False).fit(load_array(tmp_path / "bytes.npy", max_value=255).X)
    cli = GMVAE.load(out / "model.pt")
    x = load_array(tmp_path / "bytes.npy", max_value=255).X
    np.testing.assert_array_equal(cli.predict_proba(x), api.predict_proba(x))
    refused = ["train", "--dataset", "digits", "--max-value", "255", "--out", str(tmp_path / "r")]
    assert main(refused) == 2 and not (tmp_path / "r").exists()
    assert "apply to an .npy file" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--max-value", "255"]) == 2  # without --dataset
    assert "go with --dataset FILE.npy" in capsys.readouterr().err
    # another .npy file takes the run's scale unless told otherwise
    assert main(["evaluate", str(out), "--dataset", str(tmp_path / "bytes.npy")]) == 0
    assert json.loads(capsys.readouterr().out)["elbo"] == summary["elbo"]
    # a file inside the run folder that --overwrite would replace is refused, the run kept
    np.save(out / "inside.npy", np.round(digits.X.numpy() * 255).astype(np.uint8))
    before = sorted(p.name for p in out.iterdir())
    inside = ["train", "--dataset", str(out / "inside.npy"), "--max-value", "255", *common]
    assert main([*inside, "--out", str(out), "--overwrite", "--no-figures"]) == 2
    assert "inside the run folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_scoring_batches_shrink_with_wide_data():
    """The ELBO's (K, rows, D) temporaries stay near 32 MB: 1,000 rows of MNIST-sized images
    with K = 10, fewer for wider images."""
    model = GMVAE(n_clusters=10)
    assert model._scoring_rows(torch.zeros(1, 784)) == 1000
    assert model._scoring_rows(torch.zeros(1, 48 * 48)) == 2**23 // (48 * 48 * 10) == 364
    assert AE()._scoring_rows(torch.zeros(1, 10**9)) == 1
