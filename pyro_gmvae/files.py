"""Writing a user's files safely: a new version is written beside the old one and renamed over it,
so an error or an interrupt leaves the earlier file as it was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch


@contextlib.contextmanager
def _replacing(path: Path, mode: str, **open_args: Any) -> Iterator[IO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a plain open() would not
    try:
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step."""
    with _replacing(Path(path), "w", encoding="utf-8", newline="") as f:
        f.write(text)


def torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` that replaces ``path`` in one step."""
    with _replacing(Path(path), "wb") as f:
        torch.save(obj, f)
