"""Time series as the models see them: checked, in float64, as transitions or padded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Series:
    """Several series of one dimension d, each at least two steps long.

    ``values`` is (S, T_max, d), padded with zeros after each series' end; ``lengths`` (S,)."""

    values: torch.Tensor
    lengths: torch.Tensor

    @property
    def dim(self) -> int:
        return self.values.shape[-1]

    @property
    def n_transitions(self) -> int:
        return int((self.lengths - 1).sum())

    def mask(self) -> torch.Tensor:
        """(S, T_max - 1): whether transition t -> t+1 lies inside its series."""
        steps = torch.arange(1, self.values.shape[1])
        return steps < self.lengths.unsqueeze(1)

    def transitions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (x_{t-1}, x_t) pair of every series, in order: two (N, d) tensors."""
        mask = self.mask()
        return self.values[:, :-1][mask], self.values[:, 1:][mask]

    def unpad(self, per_step: torch.Tensor) -> list[np.ndarray]:
        """(S, T_max - 1, ...) values per transition -> one array per series."""
        return [per_step[s, : n - 1].numpy() for s, n in enumerate(self.lengths.tolist())]


def as_series(X, dim: int | None = None) -> Series:
    """Check user series and pad them into one tensor.

    ``X``: one series (T, d) or (T,) (for d = 1), several of one length (S, T, d), or a list of
    (T_i, d) arrays (NumPy arrays or tensors) whose lengths may differ; a list of plain lists or
    numbers is read as one array (e.g. ``df.values.tolist()`` is one series of rows).
    ``dim``: the dimension the model was fitted on. Raises ``TypeError`` for non-numeric input
    and ``ValueError`` for NaN/inf, d = 0, a series shorter than two steps, dimensions that
    differ between series or from ``dim``.
    """
    if isinstance(X, Series):
        if dim is not None and X.dim != dim:
            raise ValueError(f"the model was fitted on series of dimension {dim}, got {X.dim}")
        return X
    if isinstance(X, list | tuple) and X and all(_is_array(x) for x in X):
        items = [_array(x, f"series {i}") for i, x in enumerate(X)]
    else:
        array = _array(X, "series")
        items = list(array) if array.ndim == 3 else [array]
    for i, x in enumerate(items):
        if x.ndim == 1:
            items[i] = x = x[:, None]
        if x.ndim != 2:
            raise ValueError(
                f"a series must be (T,), (T, d), (S, T, d) or a list of (T, d) arrays; "
                f"series {i} has shape {tuple(x.shape)}"
            )
        if len(x) < 2:
            raise ValueError(f"series {i} has {len(x)} step(s): a series needs at least 2")
        if x.shape[1] == 0:
            raise ValueError(f"series {i} has d = 0 dimensions")
    dims = sorted({x.shape[1] for x in items})
    if len(dims) > 1:
        raise ValueError(f"all series must have the same dimension d, got d in {dims}")
    if dim is not None and dims[0] != dim:
        raise ValueError(f"the model was fitted on series of dimension {dim}, got {dims[0]}")
    lengths = torch.tensor([len(x) for x in items])
    values = torch.zeros(len(items), int(lengths.max()), dims[0], dtype=torch.float64)
    for s, x in enumerate(items):
        values[s, : len(x)] = torch.as_tensor(x)
    return Series(values, lengths)


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray | torch.Tensor)


def _array(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, list | tuple) and not x:
        raise ValueError(f"{what}: expected at least one series, got an empty list")
    try:
        raw = np.asarray(x)
        array = np.array(raw, dtype=np.float64)  # a copy: the user's array is never touched
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what}: expected numbers, got {type(x).__name__} ({err})") from err
    if raw.dtype.kind in "USb" or array.ndim == 0:  # strings and booleans are not numbers
        raise TypeError(f"{what}: expected a numeric array, got dtype {raw.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return array
