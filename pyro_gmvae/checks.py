"""Checks of user arguments shared by every estimator."""

from __future__ import annotations

from typing import Any

import numpy as np


class NotFittedError(RuntimeError):
    """A method that needs a fitted model was called before ``fit`` or ``load``."""


def check_int(name: str, value: Any, minimum: int | None = 1) -> None:
    """Raise a ``TypeError`` unless ``value`` is an integer, and a ``ValueError`` if it is below
    ``minimum`` (no bound when None)."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def check_positive_int(name: str, value: Any) -> None:
    check_int(name, value, None)
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
