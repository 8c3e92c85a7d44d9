"""Local-statistics speckle filters: Lee, Kuan and Frost, on a square ``window x window`` neighbourhood.

All three assume multiplicative speckle ``y = x n`` with ``E[n] = 1`` and ``std(n) = Cu`` (the
noise coefficient of variation), and adapt to the local coefficient of variation of the image

    Ci^2 = var_y / m^2,    m = local mean, var_y = local variance (population, ddof = 0),

computed with a box filter (``scipy.ndimage.uniform_filter``, ``mode="reflect"``: the image is
mirrored about its border, edge pixels repeated). Homogeneous speckle has ``Ci ~ Cu`` and is
smoothed; edges and point targets have ``Ci >> Cu`` and are preserved.

* :func:`lee` -- J.-S. Lee, "Digital image enhancement and noise filtering by use of local
  statistics", IEEE TPAMI 2(2):165-168, 1980, in the multiplicative form of Lopes et al. (1990).
* :func:`kuan` -- D. T. Kuan, A. A. Sawchuk, T. C. Strand, P. Chavel, "Adaptive noise smoothing
  filter for images with signal-dependent noise", IEEE TPAMI 7(2):165-177, 1985.
* :func:`frost` -- V. S. Frost, J. A. Stiles, K. S. Shanmugan, J. C. Holtzman, "A model for
  radar images and its application to adaptive digital filtering of multiplicative noise",
  IEEE TPAMI 4(2):157-166, 1982.

``Cu`` defaults to :func:`estimate_cu`, the median of the local ``Ci`` over the image: a robust
estimate when most of the image is homogeneous speckle. Every filter maps a 2-D image in [0, 1]
(integer images are rescaled by their dtype range) to float32 (H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np

from usprior.eval.metrics import local_moments
from usprior.validation import as_float_image, check_int, check_nonnegative, check_positive, unit_image

__all__ = ["estimate_cu", "frost", "frost_weights", "kuan", "lee"]

_TINY = 1e-12  # floor of variances and squared means in divisions (float64 data in [0, 1])


def _check_window(window: int) -> int:
    """Return ``window`` if it is an odd integer >= 3, else raise ``ValueError``."""
    window = check_int(window, "window", 3)
    if window % 2 == 0:
        raise ValueError(f"window must be odd (a centred square neighbourhood), got {window}")
    return window


def _check_cu(cu: float | None, image: np.ndarray, window: int) -> float:
    """``cu`` as a float >= 0, or :func:`estimate_cu` of ``image`` when ``cu`` is None."""
    if cu is None:
        return estimate_cu(image, window)
    return check_nonnegative(cu, "cu")


def estimate_cu(image: np.ndarray, window: int = 5) -> float:
    """Noise coefficient of variation ``Cu = median_i sqrt(var_i) / m_i`` over pixels with ``m_i > 0``.

    ``image`` is a float (H, W) array, ``var_i`` and ``m_i`` its :func:`local_moments` in a
    ``window`` box. Returns 0.0 for an image without positive local mean (all zero).
    """
    mean, var = local_moments(image, window)
    positive = mean > 0.0
    if not positive.any():
        return 0.0
    return float(np.median(np.sqrt(var[positive]) / mean[positive]))


def _noise_ratio(y: np.ndarray, window: int, cu: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Local mean ``m`` (H, W), ``Cu^2 / Ci^2 = Cu^2 m^2 / max(var, 1e-12)`` (H, W) and ``Cu``."""
    cu = _check_cu(cu, y, window)
    mean, var = local_moments(y, window)
    return mean, cu * cu * mean * mean / np.maximum(var, _TINY), cu


def lee(image: np.ndarray, window: int = 5, cu: float | None = None) -> np.ndarray:
    """Lee filter: ``x = m + k (y - m)``, ``k = clip(1 - Cu^2 / Ci^2, 0, 1)``.

    ``1 - Cu^2 / Ci^2 = (var_y - m^2 Cu^2) / var_y``: the fraction of the local variance that is
    signal (Lee 1980 for ``y = x n``, with the ``Cu^2`` term of the signal variance dropped, as
    in Lopes et al. 1990). ``cu = 0`` returns the input; a flat window (``var_y = 0``) returns ``m``.

    Args:
        image: (H, W) in [0, 1], both sides >= ``window``.
        window: odd box side >= 3 (default 5).
        cu: noise coefficient of variation >= 0; None (default) uses :func:`estimate_cu`.

    Returns:
        float32 (H, W) in [0, 1].
    """
    window = _check_window(window)
    y = as_float_image(image, min_size=window, name="image").astype(np.float64)
    mean, ratio, _ = _noise_ratio(y, window, cu)
    k = np.clip(1.0 - ratio, 0.0, 1.0)
    return unit_image(mean + k * (y - mean))


def kuan(image: np.ndarray, window: int = 5, cu: float | None = None) -> np.ndarray:
    """Kuan filter: ``x = m + k (y - m)``, ``k = clip((1 - Cu^2 / Ci^2) / (1 + Cu^2), 0, 1)``.

    The LMMSE estimate for ``y = x n`` (Kuan et al. 1985). ``cu = 0`` returns the input.

    Args:
        image: (H, W) in [0, 1], both sides >= ``window``.
        window: odd box side >= 3 (default 5).
        cu: noise coefficient of variation >= 0; None (default) uses :func:`estimate_cu`.

    Returns:
        float32 (H, W) in [0, 1].
    """
    window = _check_window(window)
    y = as_float_image(image, min_size=window, name="image").astype(np.float64)
    mean, ratio, cu = _noise_ratio(y, window, cu)
    k = np.clip((1.0 - ratio) / (1.0 + cu * cu), 0.0, 1.0)
    return unit_image(mean + k * (y - mean))


def frost_weights(image: np.ndarray, window: int = 5, damping: float = 5.0) -> np.ndarray:
    """Normalised Frost kernels, one per pixel: ``w_i(r) = exp(-K Ci_i^2 |r|) / sum_r exp(-K Ci_i^2 |r|)``.

    ``|r|`` is the Euclidean distance in pixels from the window centre, ``K = damping`` and
    ``Ci_i^2 = var_i / max(m_i^2, 1e-12)`` the squared local coefficient of variation at pixel i.

    Args:
        image: float (H, W) array (not validated: :func:`frost` validates its input).
        window: odd window side >= 3.
        damping: ``K`` > 0.

    Returns:
        float64 (H, W, window, window); every (window, window) kernel sums to one.
    """
    mean, var = local_moments(image, window)
    ci2 = var / np.maximum(mean * mean, _TINY)
    offsets = np.arange(window) - window // 2
    distance = np.hypot(offsets[:, None], offsets[None, :])
    weights = np.exp(-damping * ci2[:, :, None, None] * distance)
    return weights / weights.sum(axis=(2, 3), keepdims=True)


def frost(image: np.ndarray, window: int = 5, damping: float = 5.0) -> np.ndarray:
    """Frost filter: ``x_i = sum_r w_i(r) y_{i + r}`` with the kernels of :func:`frost_weights`.

    The exponential kernel ``exp(-K Ci^2 |r|)`` is nearly a box mean in homogeneous speckle
    (small ``Ci``) and narrows to the centre pixel at edges (large ``Ci``). The image is mirrored
    about its border (``numpy.pad(mode="symmetric")``, as the box filter).

    Args:
        image: (H, W) in [0, 1], both sides >= ``window``.
        window: odd window side >= 3 (default 5).
        damping: ``K`` > 0 (default 5.0); larger keeps more detail. Display-domain speckle
            has ``Ci ~ 0.1-0.2``, so ``K`` well above the SAR-intensity habit of 1-2 is needed
            for the kernel to narrow at edges.

    Returns:
        float32 (H, W) in [0, 1].
    """
    window = _check_window(window)
    y = as_float_image(image, min_size=window, name="image").astype(np.float64)
    weights = frost_weights(y, window, check_positive(damping, "damping"))
    neighbours = np.lib.stride_tricks.sliding_window_view(np.pad(y, window // 2, mode="symmetric"), (window, window))
    return unit_image(np.einsum("ijkl,ijkl->ij", weights, neighbours))
