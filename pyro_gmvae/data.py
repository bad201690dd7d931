"""Datasets: scikit-learn's digits (embedded default), MNIST and Fashion-MNIST through torchvision,
a single IDX split (e.g. the 10,000-image MNIST-test), user arrays, and ``.npy`` files read from
disk a batch at a time (:func:`load_array`).

Every loader returns a :class:`Dataset` with pixels as float32 in [0, 1], flattened to (N, D):
a tensor, or for an ``.npy`` file a :class:`~pyro_gmvae.disk.DiskData`.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .disk import DiskData, image_shape_for, is_on_disk

MNIST_ENV = "PYRO_GMVAE_MNIST"
DATASETS = ("digits", "mnist", "fashion-mnist", "mnist-test", "mixture-1d")
# data that are not pixels: the command line fits them with a Gaussian likelihood
NOT_IMAGES = ("mixture-1d",)


@dataclass
class Dataset:
    """Flattened images in [0, 1] (or, for synthetic data, other values) with optional
    labels."""

    X: torch.Tensor | DiskData
    y: np.ndarray | None
    image_shape: tuple[int, int]
    name: str

    def __len__(self) -> int:
        return self.X.shape[0]

    def subset(self, n: int | None, seed: int = 0) -> Dataset:
        """The first ``n`` points of a seeded permutation (all of them when ``n`` is None), in
        memory (data on disk too: a subset is read whole)."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        y = None if self.y is None else self.y[idx.numpy()]
        return Dataset(self.X[idx], y, self.image_shape, self.name)


def as_data_tensor(
    X, n_features: int | None = None
) -> tuple[torch.Tensor | DiskData, tuple[int, int]]:
    """Validate user data and flatten it to a float32 tensor of shape (N, D).

    Accepts arrays or tensors shaped (N, D), (N, H, W) or (N, 1, H, W). Data on disk (a
    :class:`~pyro_gmvae.disk.DiskData`, a ``np.memmap`` or a torch ``Dataset``) stay there: they
    come back as a ``DiskData``, checked in one pass. Raises ``TypeError`` for non-numeric input
    and ``ValueError`` for wrong shapes, NaN/inf, or a feature count different from
    ``n_features`` (the one the model was fitted on).
    """
    if isinstance(X, Dataset):
        X = X.X
    if is_on_disk(X):
        X = X if isinstance(X, DiskData) else DiskData(X)
        _check_features(X.shape[1], n_features)
        return X, X.image_shape
    if not isinstance(X, torch.Tensor):
        try:
            X = torch.from_numpy(np.array(X, dtype=np.float32))  # a copy: writable, ours
        except (TypeError, ValueError) as err:
            raise TypeError(f"expected a numeric array or tensor, got {type(X).__name__}") from err
    if X.dtype == torch.bool or not (X.is_floating_point() or X.dtype in _INT_DTYPES):
        raise TypeError(f"expected a numeric array or tensor, got dtype {X.dtype}")
    if X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim == 3:
        image_shape = (int(X.shape[1]), int(X.shape[2]))
        X = X.reshape(X.shape[0], -1)
    elif X.ndim == 2:
        image_shape = image_shape_for(X.shape[1])
    else:
        raise ValueError(
            f"expected data shaped (N, D), (N, H, W) or (N, 1, H, W), got shape {tuple(X.shape)}"
        )
    if X.shape[0] == 0:
        raise ValueError("the data holds no samples")
    X = X.detach().to(torch.float32).cpu().contiguous()
    if not torch.isfinite(X).all():
        n_bad = int((~torch.isfinite(X)).sum())
        raise ValueError(f"the data contains {n_bad} NaN or infinite values")
    _check_features(X.shape[1], n_features)
    return X, image_shape


def _check_features(found: int, expected: int | None) -> None:
    if expected is not None and found != expected:
        raise ValueError(
            f"the model was fitted on {expected} features per sample, this data has {found}"
        )


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def load_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits (ships with scikit-learn; no network)."""
    from sklearn.datasets import load_digits as sk_load_digits

    data = sk_load_digits()
    X = torch.as_tensor(data.data / 16.0, dtype=torch.float32)
    return Dataset(X, data.target.astype(np.int64), (8, 8), "digits")


def make_mixture_1d(
    n_samples: int = 10_000, n_components: int = 10, separation: float = 4.0, seed: int = 0
) -> Dataset:
    """A one-dimensional Gaussian mixture with its component labels, standard-normalised (the
    kind of synthetic data of the Dilokthanakul GMVAE study; its report gives no generator,
    so this one is ours): component k has mean ``separation * k`` and standard deviation 1
    (neighbours overlap by about 2.3% at the default 4), weights from a Dirichlet(10), and
    the whole sample is centred and scaled to unit variance. Shape (N, 1); not pixels, so fit
    it with ``likelihood="gaussian"``. Same seed, same data."""
    from .checks import check_int, check_positive_int

    check_int("n_samples", n_samples, 2)  # standardising needs a spread
    check_positive_int("n_components", n_components)
    check_int("seed", seed, 0)
    if not separation > 0 or separation == float("inf"):  # NaN fails the first test
        raise ValueError(f"separation must be a positive finite number, got {separation}")
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 10.0))
    y = rng.choice(n_components, size=n_samples, p=weights)
    x = separation * y + rng.standard_normal(n_samples)
    x = (x - x.mean()) / x.std()
    X = torch.as_tensor(x[:, None], dtype=torch.float32)
    return Dataset(X, y.astype(np.int64), (1, 1), "mixture-1d")


def _read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) with torchvision's own reader."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    if path.suffix != ".gz":
        return read_sn3_pascalvincent_tensor(str(path), strict=False)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / path.stem
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return read_sn3_pascalvincent_tensor(str(plain), strict=False)


def load_idx(
    images: str | os.PathLike, labels: str | os.PathLike | None = None, name: str = "idx"
) -> Dataset:
    """One IDX split: an images file and (optionally) its labels file, gzipped or not."""
    images = Path(images)
    if not images.exists():
        raise FileNotFoundError(f"no IDX image file at {images}")
    raw = _read_idx(images)
    if raw.ndim != 3:
        raise ValueError(f"{images} holds a tensor of shape {tuple(raw.shape)}, not images")
    X = raw.reshape(raw.shape[0], -1).to(torch.float32) / 255.0
    y = None
    if labels is not None:
        y = _read_idx(Path(labels)).numpy().astype(np.int64)
        if len(y) != len(X):
            raise ValueError(f"{labels} has {len(y)} labels for {len(X)} images")
    return Dataset(X, y, (int(raw.shape[1]), int(raw.shape[2])), name)


def find_mnist_test_dir() -> Path | None:
    """Where MNIST-test lives: ``$PYRO_GMVAE_MNIST`` or ``../shared/data/mnist``, else None."""
    candidates = []
    if os.environ.get(MNIST_ENV):
        candidates.append(Path(os.environ[MNIST_ENV]))
    here = Path(__file__).resolve().parent.parent
    candidates += [Path.cwd() / "../shared/data/mnist", here / "../shared/data/mnist"]
    for c in candidates:
        if (c / "t10k-images-idx3-ubyte.gz").exists() or (c / "t10k-images-idx3-ubyte").exists():
            return c.resolve()
    return None


def load_mnist_test(root: str | os.PathLike | None = None) -> Dataset:
    """The real 10,000-image MNIST test split on its own (the deep-clustering "MNIST-test")."""
    folder = Path(root) if root is not None else find_mnist_test_dir()
    if folder is None:
        raise FileNotFoundError(
            "MNIST-test not found: put t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
            f"in a folder and set {MNIST_ENV} to it (or use ../shared/data/mnist)"
        )

    def pick(stem: str) -> Path:
        gz = folder / f"{stem}.gz"
        return gz if gz.exists() else folder / stem

    return load_idx(pick("t10k-images-idx3-ubyte"), pick("t10k-labels-idx1-ubyte"), "mnist-test")


def load_torchvision(
    name: str, root: str | os.PathLike, train: bool = True, download: bool = False
) -> Dataset:
    """MNIST or Fashion-MNIST through torchvision (all four IDX files under ``root``)."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    try:
        ds = cls(str(root), train=train, download=download)
    except RuntimeError as err:
        folder = Path(root) / cls.__name__ / "raw"
        files = ", ".join(f for f, _ in cls.resources)
        raise FileNotFoundError(
            f"{name} is not under {root}: put {files} in {folder}, or pass download=True "
            f"where a network exists ({err})"
        ) from err
    X = ds.data.reshape(len(ds.data), -1).to(torch.float32) / 255.0
    return Dataset(X, ds.targets.numpy().astype(np.int64), (28, 28), name)


def load_array(
    path: str | os.PathLike, labels: str | os.PathLike | None = None, max_value: float = 1.0
) -> Dataset:
    """An ``.npy`` file of samples ((N, D), (N, H, W) or (N, 1, H, W)), memory-mapped: its
    ``X`` is a :class:`~pyro_gmvae.disk.DiskData` that the estimators read a batch at a time,
    never whole. Values are divided by ``max_value`` as they are read (255 for bytes).
    ``labels``: an ``.npy`` file of one label per sample, or None."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no array file at {path}")
    if not max_value > 0 or not math.isfinite(max_value):
        raise ValueError(f"max_value must be a positive finite number, got {max_value}")
    X = DiskData(np.load(path, mmap_mode="r"), scale=1.0 / max_value)
    y = None
    if labels is not None:
        y = np.load(labels).ravel()
        if len(y) != len(X):
            raise ValueError(f"{labels} has {len(y)} labels for {len(X)} samples")
    return Dataset(X, y, X.image_shape, path.name)  # the file's name: never a dataset's


def is_array_file(name: str) -> bool:
    """Whether a dataset name is the path of an ``.npy`` file (:func:`load_array`)."""
    return str(name).endswith(".npy")


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    train: bool = True,
    download: bool = False,
    labels: str | os.PathLike | None = None,
    max_value: float = 1.0,
) -> Dataset:
    """A dataset by name: ``digits``, ``mnist``, ``fashion-mnist``, ``mnist-test`` or
    ``mixture-1d`` (:func:`make_mixture_1d` at its defaults); or the path of an ``.npy`` file,
    memory-mapped, with ``labels`` and ``max_value`` (:func:`load_array`)."""
    if is_array_file(name):
        return load_array(name, labels, max_value)
    if labels is not None or max_value != 1.0:
        raise ValueError("labels and max_value apply to an .npy file, not to a named dataset")
    if name == "digits":
        return load_digits()
    if name == "mixture-1d":
        return make_mixture_1d()
    if name == "mnist-test":
        return load_mnist_test(root)
    if name in ("mnist", "fashion-mnist"):
        return load_torchvision(name, root or "data", train=train, download=download)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
