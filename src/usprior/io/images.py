"""Images and cine stacks in and out: PNG / JPEG / TIFF / NPY, checked before any work starts.

Reading (:func:`read_image`) gives float32 in [0, 1], (H, W) for one image or (T, H, W) for a
stack: colour (RGB / RGBA) goes through ``skimage.color.rgb2gray``, gray + alpha keeps the gray
channel, (H, W, 1) is one image, a multi-page TIFF is a stack (tifffile keeps pages as frames;
imageio would guess RGB for three pages), and integer data is scaled by its bit depth
(:mod:`usprior.validation`). A file that cannot be decoded raises ``ValueError`` naming it.

Writing (:func:`write_image`) picks the format by suffix: ``.png`` (8-bit, one image), ``.tif`` /
``.tiff`` (float32, one page per frame) or ``.npy`` (float32). :func:`check_output` validates a
destination before the work that produces it; the file is written to a temporary name in the
same folder and renamed into place, so an interrupted or failed write leaves no partial file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from usprior.validation import as_float_frames

READ_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")
WRITE_SUFFIXES = (".png", ".tif", ".tiff", ".npy")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a grayscale image as float32 (H, W), or a stack as (T, H, W), in [0, 1].

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unsupported
    suffix, a file that cannot be decoded, or pixel data that is not a usable image.
    """
    import skimage.color
    import skimage.io
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input image not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise ValueError(f"unsupported input format {suffix!r} of {path}: use {', '.join(READ_SUFFIXES)}")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            arr = tifffile.imread(path)
        else:
            arr = skimage.io.imread(path)
    except Exception as err:  # decoders raise many types (OSError, ValueError, SyntaxError, ...)
        raise ValueError(f"cannot read {path} as a {suffix} file: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if suffix != ".npy" and arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = skimage.color.rgb2gray(arr[..., :3])
    elif suffix != ".npy" and arr.ndim == 3 and arr.shape[-1] == 2:
        arr = arr[..., 0]  # gray + alpha
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    frames = as_float_frames(arr, min_size=1, name=str(path))
    return frames if arr.ndim == 3 else frames[0]


def check_output(path: str | os.PathLike, frames: int = 1, *, overwrite: bool = False) -> Path:
    """Check that ``path`` can take an image (``frames`` = 1) or a stack, before the work starts.

    Raises ``ValueError`` for an unknown suffix or a stack of several frames as PNG,
    ``FileExistsError`` for an existing file (unless ``overwrite``), ``IsADirectoryError`` for a
    directory, ``NotADirectoryError`` when a parent is a file and ``PermissionError`` when the
    folder cannot be written. Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory: give a file name")
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise ValueError(f"unsupported output format {suffix!r} of {path}: use {', '.join(WRITE_SUFFIXES)}")
    if suffix == ".png" and frames != 1:
        raise ValueError(f"{path}: PNG holds one image; write a stack of {frames} frames as .tif or .npy")
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


def write_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a float image (H, W) or stack (T, H, W) in [0, 1] by suffix (see the module docstring).

    :func:`check_output` runs first; the data go to a temporary file that is renamed into place.
    """
    import skimage.io
    import skimage.util
    import tifffile

    image = np.asarray(image)
    path = check_output(path, 1 if image.ndim == 2 else image.shape[0], overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        if suffix == ".npy":
            np.save(tmp, image.astype(np.float32))
        elif suffix in (".tif", ".tiff"):
            tifffile.imwrite(tmp, image.astype(np.float32), photometric="minisblack")
        else:
            skimage.io.imsave(tmp, skimage.util.img_as_ubyte(np.clip(image, 0, 1)), check_contrast=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 8) -> np.ndarray:
    """[before | white gap | after]: (..., H, W) -> (..., H, 2W + gap) float image(s)."""
    white = np.ones((*before.shape[:-1], gap), before.dtype)
    return np.concatenate([before, white, after], axis=-1)
