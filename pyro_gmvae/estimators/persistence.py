"""Saving and loading fitted estimators.

A model file holds plain data only (parameters, fitted attributes, tensors), so it is read with
``torch.load(weights_only=True)``: loading never runs code from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import files
from ..training import local_seed
from .base import LatentEstimator, describe, is_object

FORMAT = "pyro-gmvae"
FORMAT_VERSION = 2


def save(est: LatentEstimator, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``est`` (fitted) to ``path``; see :meth:`LatentEstimator.save`."""
    est._check_fitted()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    fitted = est._fitted_state()
    params = {name: _stored(value) for name, value in est.get_params(deep=False).items()}
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": type(est).__name__,
        "params": params,
        "state_dict": est.module_.state_dict(),
        "fitted": fitted,
    }
    files.torch_save(payload, path)
    return path


def _stored(value: Any) -> Any:
    """A parameter as saved: plain data (a tuple stays a tuple), a component object described."""
    plain = describe(value)
    return tuple(plain) if isinstance(value, tuple) and isinstance(plain, list) else plain


def _read(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not its own
        raise ValueError(f"{path} is not a pyro-gmvae model file ({err})") from err
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyro-gmvae model file")
    if saved.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in model-file format {saved.get('version')}; this version of "
            f"pyro-gmvae reads format {FORMAT_VERSION}: fit and save the model again"
        )
    return saved


def load(cls: type[LatentEstimator], path: str | Path, components: dict[str, Any]):
    """Read a model written by :func:`save` as an instance of ``cls``; ``components`` are the
    objects it was saved with (see :meth:`LatentEstimator.load`)."""
    path = Path(path)
    saved = _read(path)
    params, model = saved["params"], saved["model"]
    if model != cls.__name__:
        raise ValueError(f"{path} holds a {model}, not a {cls.__name__}")
    objects = {name for name, value in params.items() if is_object(value)}
    unexpected = set(components) - objects
    if unexpected:
        raise TypeError(
            f"load takes only the components that {path} was saved with as objects "
            f"({', '.join(sorted(objects)) or 'none'}), not {', '.join(sorted(unexpected))}; "
            "change other settings with set_params after loading"
        )
    missing = objects - set(components)
    if missing:
        described = ", ".join(f"{n}={params[n]['object']}" for n in sorted(missing))
        raise ValueError(
            f"{path} was saved with components given as objects ({described}); pass them "
            f"again: {cls.__name__}.load(path, {', '.join(f'{n}=...' for n in sorted(missing))})"
        )
    for name, value in components.items():
        given = describe(value)
        if given != params[name]:
            shown = given["object"] if is_object(given) else repr(given)
            raise ValueError(
                f"{path} was saved with {name} a {params[name]['object']}, not {shown}"
            )
    est = cls(**{**params, **components})
    fitted = saved["fitted"]
    # what the data chose the module's build to be (absent in files from before such choices)
    chosen = {k: fitted[k] for k in getattr(est, "_chosen_from_data", ()) if k in fitted}
    with local_seed(est.seed):  # building draws a random start, overwritten by the weights
        module = est._build(fitted["n_features_in_"], **chosen)
    module.load_state_dict(saved["state_dict"])
    est.module_ = module.eval()
    est._restore_fitted(fitted)
    return est
