"""Input checks shared by the public API: bad images fail loudly, never as a NaN image.

Conventions follow scikit-image: integer images are rescaled by their dtype range
(uint8 / 255, uint16 / 65535, ...), float images must already lie in [0, 1].
"""

from __future__ import annotations

import numpy as np


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Return ``image`` as a numpy array after checking it is a usable 2-D image, (H, W).

    Raises ``ValueError`` for non-numeric or boolean/complex data, ndim != 2, an empty array and
    NaN/inf values. The dtype and values are left unchanged.
    """
    arr = np.asarray(image)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a numeric (integer or float) array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = " (convert colour images with skimage.color.rgb2gray)" if arr.ndim == 3 else ""
        raise ValueError(f"{name} must be 2-D (H, W), got shape {arr.shape}{hint}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_float_image(image: object, min_size: int = 32, name: str = "image") -> np.ndarray:
    """Validate a 2-D grayscale image and return it as float32 in [0, 1], shape (H, W).

    On top of :func:`check_image`, raises ``ValueError`` for a side shorter than ``min_size``
    (the patch size), negative integers and float values outside [0, 1].
    """
    arr = check_image(image, name)
    if min(arr.shape) < min_size:
        raise ValueError(f"{name} of shape {arr.shape} is smaller than the {min_size}x{min_size} patch size")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0:
            raise ValueError(f"{name} has negative values in an integer image (dtype {arr.dtype})")
        return (arr.astype(np.float64) / np.iinfo(arr.dtype).max).astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"float {name} must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]; "
            "rescale it (e.g. skimage.exposure.rescale_intensity) or clip it first"
        )
    return arr.astype(np.float32)


def as_float_frames(frames: object, min_size: int = 32, name: str = "image") -> np.ndarray:
    """Validate one image (H, W) or a stack of frames (T, H, W) (cine); float32 (T, H, W) in [0, 1].

    Every frame goes through :func:`as_float_image`. A 3-D array whose last axis has 3 or 4
    entries is refused as a colour image (convert it with ``skimage.color.rgb2gray``).
    """
    arr = np.asarray(frames)
    if arr.ndim == 2:
        return as_float_image(arr, min_size, name)[None]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise ValueError(
            f"{name} of shape {arr.shape} looks like a colour image: convert it with "
            "skimage.color.rgb2gray (a stack of frames is (T, H, W))"
        )
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 2-D (H, W) or a stack of frames (T, H, W), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty stack of frames: shape {arr.shape}")
    return np.stack([as_float_image(f, min_size, f"{name} frame {t}") for t, f in enumerate(arr)])


def check_positive(value: float, name: str) -> float:
    """Return ``float(value)`` if it is finite and > 0, else raise ``ValueError``."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def check_int(value: int, name: str, minimum: int = 1) -> int:
    """Return ``int(value)`` if it is an integer >= ``minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_shape(shape: object, name: str = "shape") -> tuple[int, int]:
    """Return ``shape`` as (H, W) ints if it is two integers >= 1, else raise ``ValueError``."""
    try:
        ok = len(shape) == 2 and all(not isinstance(n, bool) and int(n) == n and n >= 1 for n in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be two integers (H, W) >= 1, got {shape!r}")
    return int(shape[0]), int(shape[1])


def unit_image(estimate: object) -> np.ndarray:
    """A denoiser's output as float32 numpy clipped to [0, 1] (blocks on JAX arrays)."""
    return np.clip(np.asarray(estimate, dtype=np.float32), 0.0, 1.0)
