"""Data loaders: the embedded digits, IDX files, MNIST-test, torchvision's MNIST."""

import gzip
import struct

import numpy as np
import pytest
import torch

from pyro_gmvae.data import as_data_tensor, load_dataset, load_digits, load_idx, load_mnist_test


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def test_digits_is_scaled_to_unit_interval():
    d = load_digits()
    assert d.X.shape == (1797, 64) and d.X.dtype == torch.float32
    assert d.X.min() == 0.0 and d.X.max() == 1.0
    assert d.image_shape == (8, 8) and set(d.y) == set(range(10))


@pytest.mark.parametrize("compress", [True, False])
def test_idx_roundtrip(tmp_path, compress):
    images = np.arange(3 * 4 * 5).reshape(3, 4, 5) % 256
    labels = np.array([3, 1, 4])
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"img{suffix}", images, compress)
    write_idx(tmp_path / f"lab{suffix}", labels, compress)
    d = load_idx(tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}")
    assert d.image_shape == (4, 5)
    np.testing.assert_allclose(d.X.numpy(), images.reshape(3, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y, labels)


def test_idx_label_count_mismatch(tmp_path):
    write_idx(tmp_path / "img", np.zeros((3, 2, 2)), False)
    write_idx(tmp_path / "lab", np.zeros(2), False)
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        load_idx(tmp_path / "img", tmp_path / "lab")


def test_mnist_test_split(mnist_dir):
    d = load_mnist_test(mnist_dir)
    assert d.X.shape == (10000, 784) and d.image_shape == (28, 28)
    assert 0.0 <= d.X.min() and d.X.max() <= 1.0
    assert np.bincount(d.y).tolist()[:3] == [980, 1135, 1032]  # the real test split's counts


def test_missing_data_says_what_to_put_where(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="FashionMNIST"):
        load_dataset("fashion-mnist", root=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")


def test_user_arrays_in_every_layout():
    imgs = np.random.default_rng(0).random((5, 1, 6, 7))
    for arr in (imgs, imgs[:, 0], torch.as_tensor(imgs).reshape(5, -1)):
        X, _ = as_data_tensor(arr)
        assert X.shape == (5, 42) and X.dtype == torch.float32
    assert as_data_tensor(imgs)[1] == (6, 7)
    assert as_data_tensor(np.zeros((2, 49)))[1] == (7, 7)
    uint8 = (np.ones((2, 4)) * 255).astype(np.uint8)
    assert as_data_tensor(uint8)[0].max() == 255  # no silent rescaling: the likelihood decides


def test_subset_is_seeded():
    d = load_digits()
    a, b = d.subset(50, seed=3), d.subset(50, seed=3)
    assert torch.equal(a.X, b.X) and len(a) == 50
    assert not torch.equal(a.X, d.subset(50, seed=4).X)


def test_the_one_dimensional_mixture_is_standardised_labelled_and_seeded():
    from pyro_gmvae import make_mixture_1d

    data = make_mixture_1d(5000, n_components=4, seed=3)
    assert data.X.shape == (5000, 1) and data.y.shape == (5000,)
    assert abs(float(data.X.mean())) < 1e-5 and abs(float(data.X.std()) - 1) < 1e-3
    # the components are ordered along the line and well apart
    means = [float(data.X[data.y == k].mean()) for k in range(4)]
    assert means == sorted(means) and min(np.diff(means)) > 0.5
    again = make_mixture_1d(5000, n_components=4, seed=3)
    assert (again.X == data.X).all() and (again.y == data.y).all()
    with pytest.raises(ValueError, match="separation"):
        make_mixture_1d(separation=0)
    with pytest.raises(ValueError, match="separation"):
        make_mixture_1d(separation=float("nan"))
    with pytest.raises(ValueError, match="n_samples"):
        make_mixture_1d(1)  # one point has no spread to standardise by
