"""Images and cine stacks as float arrays, and the checks an output path gets before any work.

:func:`read_image` reads any input of :func:`usprior.io.scans.read_scan` as its luminance:
float32 (H, W) for one image, (T, H, W) for a stack, in [0, 1]. :func:`check_output` validates a
destination before the work that produces it (the writers of :mod:`usprior.io.scans` write to
a temporary name and rename, so an interrupted or failed write leaves no partial file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from usprior.io.scans import read_scan


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a file as float32 luminance in [0, 1]: (H, W) for one image, (T, H, W) for a stack.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unsupported
    suffix, a file that cannot be decoded, or pixel data that is not a usable image.
    """
    scan = read_scan(path)
    return scan.frames[0] if scan.single else scan.frames


def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check that a file can be written at ``path``, before the work that produces it.

    Raises ``IsADirectoryError`` for a directory, ``FileExistsError`` for an existing file
    (unless ``overwrite``), ``NotADirectoryError`` when a parent is a file and ``PermissionError``
    when the folder cannot be written. Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory: give a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"output {path} exists; pass --overwrite (overwrite=True) to replace it")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: no write permission in {folder}")
    return path


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 8, axis: int = -1) -> np.ndarray:
    """[before | white gap | after] along ``axis`` (the width): (..., H, W[, 3]) images or stacks."""
    shape = list(before.shape)
    shape[axis] = gap
    white = np.full(shape, 1.0 if before.dtype.kind == "f" else np.iinfo(before.dtype).max, before.dtype)
    return np.concatenate([before, white, after], axis=axis)
