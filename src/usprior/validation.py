"""Input checks of the public boundary: bad images and options fail loudly, never as a NaN image.

Every public entry point (``usprior.denoise``, a :class:`usprior.Denoiser`, the baselines, the
simulators, the configs' ``__post_init__``) validates through these helpers, once.

Image conventions follow scikit-image, with one safeguard for integer arrays:

* float images must lie in [0, 1], except where the method models values outside it (MAP with
  the Gaussian likelihood takes the observation as it comes: noise pushes it below 0 and above 1,
  and clipping it would bias every dark region);
* ``uint8`` / ``uint16`` images are divided by their dtype maximum (255, 65535);
* any other integer dtype (``int64`` from ``(img * 255).astype(int)``, ``int32``, ``uint32``, ...)
  holds 8-bit data if its values lie in [0, 255] and 16-bit data if they lie in [0, 65535], and
  is divided by 255 or 65535 accordingly. Larger or negative values raise ``ValueError`` with
  the conversion to do, instead of the near-black image that dividing by ``iinfo(int64).max``
  would give;
* a trailing channel axis of size 1, (H, W, 1), is one grayscale image.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

_BITS = ((255, 8), (65535, 16))


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Return ``image`` as a numpy array after checking it is a usable 2-D image, (H, W).

    A trailing channel axis of size 1, (H, W, 1), is dropped. Raises ``ValueError`` for
    non-numeric or boolean/complex data, any other ndim, an empty array and NaN/inf values.
    The dtype and values are left unchanged.
    """
    arr = np.asarray(image)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a numeric (integer or float) array, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        hint = " (convert colour images with skimage.color.rgb2gray)" if arr.ndim == 3 else ""
        raise ValueError(f"{name} must be 2-D (H, W), got shape {arr.shape}{hint}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def integer_scale(arr: np.ndarray, name: str = "image") -> int:
    """The value that maps an integer array onto [0, 1]: its bit depth's maximum (see module doc).

    ``uint8`` -> 255 and ``uint16`` -> 65535 (the dtype range); other integer dtypes -> 255 if
    every value lies in [0, 255], 65535 if in [0, 65535]. Raises ``ValueError`` for negative
    values or values above 65535 in a wider dtype.
    """
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} has negative values in an integer image (dtype {arr.dtype})")
    if arr.dtype in (np.uint8, np.uint16):
        return int(np.iinfo(arr.dtype).max)
    top = int(arr.max()) if arr.size else 0
    for maximum, _ in _BITS:
        if top <= maximum:
            return maximum
    raise ValueError(
        f"{name} of dtype {arr.dtype} has values up to {top}, beyond 16 bits: convert it to float "
        "in [0, 1] first, e.g. image / image.max() or skimage.exposure.rescale_intensity(image, out_range=(0, 1))"
    )


def as_float_image(
    image: object, min_size: int = 32, name: str = "image", bounds: tuple[float | None, float | None] = (0.0, 1.0),
    why: str = "",
) -> np.ndarray:
    """Validate a 2-D grayscale image and return it as float32, shape (H, W).

    On top of :func:`check_image`, raises ``ValueError`` for a side shorter than ``min_size``
    (the patch size), integer values that fit no 8- or 16-bit range (:func:`integer_scale`) and
    float values outside ``bounds`` (default [0, 1]; None: unbounded on that side; ``why`` is
    appended to the message).
    """
    arr = check_image(image, name)
    if min(arr.shape) < min_size:
        raise ValueError(f"{name} of shape {arr.shape} is smaller than the {min_size}x{min_size} patch size")
    if np.issubdtype(arr.dtype, np.integer):
        return (arr.astype(np.float64) / integer_scale(arr, name)).astype(np.float32)
    low, high = bounds
    lo, hi = float(arr.min()), float(arr.max())
    if (low is not None and lo < low) or (high is not None and hi > high):
        if bounds == (0.0, 1.0):
            hint = "; rescale it (e.g. skimage.exposure.rescale_intensity) or clip it first"
        else:
            hint = f" ({why})" if why else ""
        span = "[0, 1]" if bounds == (0.0, 1.0) else (f">= {low:g}" if high is None else f"<= {high:g}")
        raise ValueError(f"float {name} must lie in {span}, got range [{lo:.4g}, {hi:.4g}]{hint}")
    return arr.astype(np.float32)


def as_float_frames(
    frames: object, min_size: int = 32, name: str = "image", bounds: tuple[float | None, float | None] = (0.0, 1.0),
    why: str = "",
) -> np.ndarray:
    """Validate one image (H, W) or a stack of frames (T, H, W) (cine); float32 (T, H, W).

    (H, W, 1) is one grayscale image. Every frame goes through :func:`as_float_image` (float
    values within ``bounds``, default [0, 1]; integers always map into [0, 1]); an integer
    stack is scaled once, by the bit depth of the whole stack. A 3-D array whose last axis has
    2, 3 or 4 entries is refused as a colour (or gray + alpha) image.
    """
    arr = np.asarray(frames)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return as_float_image(arr, min_size, name, bounds, why)[None]
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
        raise ValueError(
            f"{name} of shape {arr.shape} looks like a colour image (or gray + alpha): convert it with "
            "skimage.color.rgb2gray or take its first channel (a stack of frames is (T, H, W))"
        )
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 2-D (H, W) or a stack of frames (T, H, W), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty stack of frames: shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype not in (np.uint8, np.uint16):
        check_image(arr[0], f"{name} frame 0")  # the dtype check, before the scale of the stack
        arr = (arr.astype(np.float64) / integer_scale(arr, name)).astype(np.float32)
    return np.stack([as_float_image(f, min_size, f"{name} frame {t}", bounds, why) for t, f in enumerate(arr)])


def check_real(
    value: object, name: str, *, low: float | None = None, high: float | None = None, strict: bool = False
) -> float:
    """Return ``float(value)`` if it is a finite real number within the bounds, else raise ``ValueError``.

    ``low`` / ``high``: inclusive bounds (None: unbounded); ``strict=True`` makes ``low``
    exclusive (``value > low``). Booleans, strings and non-finite numbers are refused.
    """
    if low is not None and high is not None:
        bound = f" and in {'(' if strict else '['}{low:g}, {high:g}]"
    elif low is not None:
        bound = f" and {'>' if strict else '>='} {low:g}"
    else:
        bound = "" if high is None else f" and <= {high:g}"
    arr = None if isinstance(value, (bool, np.bool_, str, bytes)) else np.asarray(value)
    ok = arr is not None and arr.ndim == 0 and arr.dtype.kind in "iuf" and math.isfinite(float(arr))
    v = float(arr) if ok else math.nan
    if not ok or (low is not None and (v <= low if strict else v < low)) or (high is not None and v > high):
        raise ValueError(f"{name} must be finite{bound}, got {value!r}")
    return v


def check_positive(value: object, name: str) -> float:
    """Return ``float(value)`` if it is finite and > 0, else raise ``ValueError``."""
    return check_real(value, name, low=0.0, strict=True)


def check_nonnegative(value: object, name: str) -> float:
    """Return ``float(value)`` if it is finite and >= 0, else raise ``ValueError``."""
    return check_real(value, name, low=0.0)


def check_unit(value: object, name: str) -> float:
    """Return ``float(value)`` if it is finite and in [0, 1], else raise ``ValueError``."""
    return check_real(value, name, low=0.0, high=1.0)


def check_int(value: object, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in [minimum, maximum], else raise ``ValueError``.

    Strict: Python / numpy integers only; ``6.0``, ``1.5``, ``True`` and strings are refused.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def check_shape(shape: object, name: str = "shape") -> tuple[int, int]:
    """Return ``shape`` as (H, W) ints if it is two integers >= 1, else raise ``ValueError``."""
    try:
        ok = len(shape) == 2 and all(not isinstance(n, bool) and isinstance(n, numbers.Integral) and n >= 1 for n in shape)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be two integers (H, W) >= 1, got {shape!r}")
    return int(shape[0]), int(shape[1])


def unit_image(estimate: object) -> np.ndarray:
    """A denoiser's output as float32 numpy clipped to [0, 1] (blocks on JAX arrays)."""
    return np.clip(np.asarray(estimate, dtype=np.float32), 0.0, 1.0)
