"""Data that stay on disk: fitting, scoring and predicting read them a batch at a time.

:class:`DiskData` wraps a memory-mapped NumPy array (``np.load(path, mmap_mode="r")``) or a
map-style torch ``Dataset`` (e.g. a torchvision dataset with ``transform=ToTensor()``). The
estimators take one wherever they take an array, and take a ``np.memmap`` or a torch
``Dataset`` directly (wrapped with ``scale=1``). Only the rows of the current batch are in
memory: the checks run in one pass over the data in chunks, the training batches are read by
index, and scoring, predicting and pre-training's codes go through the data in chunks. What
grows with the number of samples is what has one small row per sample: codes (latent size),
responsibilities (K) and the results.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

CHUNK = 4096  # rows per chunk of the checking pass


class DiskData:
    """Samples read from disk a batch at a time, as float32 rows of shape (n, D).

    Parameters
    ----------
    source : a NumPy array, usually memory-mapped (``np.load(path, mmap_mode="r")`` or
        ``np.memmap``), shaped (N, D), (N, H, W) or (N, 1, H, W); or a map-style torch
        ``Dataset`` whose items are such a sample, or a tuple whose first element is one
        (``(image, label)``, as torchvision's datasets give with ``transform=ToTensor()``).
    scale : every value is multiplied by it as it is read, e.g. ``1 / 255`` for images
        stored as bytes.

    Constructing one reads the whole data once, in chunks of 4,096 samples, to check it: a
    numeric type, one shape for every sample, no NaN or infinite values. The pass also keeps
    each feature's minimum and maximum (:attr:`extremes`, what the likelihoods' support checks
    read) and whether every value is 0 or 1 (:attr:`binary`). The source is only read, never
    written.
    """

    def __init__(self, source: Any, scale: float = 1.0) -> None:
        if not (isinstance(scale, int | float | np.number) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.source, self.scale = source, float(scale)
        self._is_array = isinstance(source, np.ndarray)
        if isinstance(source, torch.utils.data.IterableDataset):
            raise TypeError("DiskData reads samples by index: an IterableDataset has no index")
        if not self._is_array and not isinstance(source, torch.utils.data.Dataset):
            raise TypeError(
                "DiskData reads a NumPy array (e.g. np.load(path, mmap_mode='r')) or a torch "
                f"Dataset, got {type(source).__name__}"
            )
        n = len(source)
        if n == 0:
            raise ValueError("the data holds no samples")
        first = self._sample(0) if not self._is_array else np.asarray(source[:1])[0]
        sample_shape = tuple(first.shape)
        if self._is_array and source.dtype.kind not in "iuf":
            raise TypeError(f"expected numeric data, got dtype {source.dtype}")
        if len(sample_shape) == 3 and sample_shape[0] == 1:
            sample_shape = sample_shape[1:]
        if len(sample_shape) == 2:
            self.image_shape = sample_shape
        elif len(sample_shape) == 1:
            self.image_shape = image_shape_for(sample_shape[0])
        else:
            raise ValueError(
                "expected data shaped (N, D), (N, H, W) or (N, 1, H, W), got samples of shape "
                f"{tuple(first.shape)}"
            )
        self._sample_shape = tuple(first.shape)
        self.shape = (n, int(np.prod(sample_shape)))
        self._scan()  # sequential: through the source, with the kernel's read-ahead
        self._by_index = _random_access(source) if self._is_array else source

    # ------------------------------------------------------------------ reading
    def _sample(self, i: int) -> np.ndarray:
        """One item of a torch Dataset as a NumPy array (its first element for a tuple)."""
        item = self.source[i]
        if isinstance(item, tuple | list):
            item = item[0]
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy()
        elif not isinstance(item, np.ndarray):
            raise TypeError(
                f"the dataset's items are {type(item).__name__}, not arrays or tensors: give "
                "it a transform that makes tensors (for torchvision, transform=ToTensor())"
            )
        if item.dtype.kind not in "iuf":
            raise TypeError(f"expected numeric data, got dtype {item.dtype}")
        return item

    def _read(self, index: np.ndarray | slice) -> np.ndarray:
        if self._is_array:
            source = self.source if isinstance(index, slice) else self._by_index
            rows = np.asarray(source[index])
        else:
            picked = range(len(self))[index] if isinstance(index, slice) else index
            rows = [self._sample(int(i)) for i in picked]
            for row in rows:
                if row.shape != self._sample_shape:
                    raise ValueError(
                        f"the dataset's samples differ in shape: {row.shape} and "
                        f"{self._sample_shape}"
                    )
            rows = np.stack(rows) if rows else np.empty((0, *self._sample_shape))
        rows = rows.reshape(len(rows), self.shape[1])
        if self.scale == 1.0:
            return rows.astype(np.float32)  # a copy: ours
        # in float64, so that bytes / 255 round as they do in memory (1 / 255 is not exact)
        return (rows.astype(np.float64) * self.scale).astype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> torch.Tensor:
        """Rows as a float32 tensor: (D,) for an integer, (n, D) for a slice or a sequence,
        array or tensor of indices."""
        if isinstance(index, int | np.integer):
            return self[np.array([int(index)])][0]
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.ndim != 1 or not (index.dtype.kind in "iub" or index.size == 0):
                raise IndexError("DiskData takes an integer, a slice, or 1-D int or bool indices")
            if index.dtype.kind == "b":
                if len(index) != len(self):
                    raise IndexError(f"a mask of {len(index)} for {len(self)} samples")
                index = np.flatnonzero(index)
            index = index.astype(np.int64)
        return torch.from_numpy(self._read(index))

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive chunks of ``size`` rows, as ``torch.Tensor.split`` gives them."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    # ------------------------------------------------------------------ checks
    def _scan(self) -> None:
        """One pass: finiteness, each feature's range, whether the data are binary."""
        low = np.full(self.shape[1], np.inf, dtype=np.float32)
        high = np.full(self.shape[1], -np.inf, dtype=np.float32)
        bad, binary = 0, True
        for start in range(0, len(self), CHUNK):
            chunk = self._read(slice(start, start + CHUNK))
            finite = np.isfinite(chunk)
            if not finite.all():
                bad += int((~finite).sum())
                continue
            low, high = np.minimum(low, chunk.min(0)), np.maximum(high, chunk.max(0))
            binary = binary and bool(((chunk == 0) | (chunk == 1)).all())
        if bad:
            raise ValueError(f"the data contains {bad} NaN or infinite values")
        self.extremes = torch.from_numpy(np.stack([low, high]))
        self.binary = binary

    def __repr__(self) -> str:
        kind = type(self.source).__name__
        return f"DiskData({kind}, {self.shape[0]} samples x {self.shape[1]} features)"


def _random_access(array: np.ndarray) -> np.ndarray:
    """A read-only mapping of its own of a memory-mapped array's file, advised for random
    access; the array itself where it is not a whole memory map (a view, or in memory).

    Why: a batch's rows lie anywhere in the file, and the kernel reads ahead around each (128
    KiB by default) for every row it faults in. With data larger than memory those pages
    evict each other before they are used: a fit of 4.5 GiB of images under a 1.5 GiB limit
    read 670 GB from disk in its first 25 minutes, and was still pre-training."""
    own = getattr(array, "_mmap", None)
    if own is None or not hasattr(mmap, "MADV_RANDOM") or array.filename is None:
        return array
    mapped = np.memmap(
        array.filename, dtype=array.dtype, mode="r", offset=array.offset, shape=array.shape,
        order="F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C",
    )  # fmt: skip
    mapped._mmap.madvise(mmap.MADV_RANDOM)
    return mapped


def image_shape_for(n_features: int) -> tuple[int, int]:
    """The image shape of flat samples: square where ``n_features`` is a square, else one row."""
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else (1, int(n_features))


def is_on_disk(X: Any) -> bool:
    """Whether ``X`` is read from disk rather than held in memory: a :class:`DiskData`, a
    ``np.memmap`` or a torch ``Dataset`` (a :class:`DiskData` refuses an ``IterableDataset``)."""
    return isinstance(X, DiskData | np.memmap | torch.utils.data.Dataset)


def in_memory(X: Any, what: str) -> None:
    """Raise a ``ValueError`` for data on disk where ``what`` needs every sample in memory."""
    if is_on_disk(X):
        raise ValueError(
            f"{what} works on data in memory; these are on disk (a {type(X).__name__} of "
            f"{len(X)} samples): pass a subset in memory, e.g. np.array(X[:10000])"
        )


def rows_within(budget: int, per_row: int, at_most: int, at_least: int = 1) -> int:
    """How many rows of ``per_row`` units a step may take so that it holds about ``budget``
    units, between ``at_least`` and ``at_most``: the batch sizes that bound memory on wide
    data (the ELBO's scoring, the command line's k-means)."""
    return max(at_least, min(at_most, budget // per_row))


def support_rows(X: torch.Tensor | DiskData) -> torch.Tensor:
    """What a support check reads: the data in memory, or each feature's minimum and maximum
    (2, D) of data on disk."""
    return X.extremes if isinstance(X, DiskData) else X
