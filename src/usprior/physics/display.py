"""B-mode display mapping: power in dB, log compression to [0, 1], area-averaging.

A B-mode image shows the envelope power ``P`` of the echo as ``clip(1 + L / DR, 0, 1)`` with
``L = 10 log10(P / P_ref)`` in dB re full scale and ``DR`` the displayed dynamic range in dB.
The speckle simulators (:mod:`usprior.physics.simulate`, :mod:`usprior.physics.planewave`) form
their noisy and clean images with these functions and constants.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EULER_DB", "HEADROOM_DB", "block_mean", "log_compress", "power_db"]

EULER_DB: float = 10.0 * float(np.euler_gamma) / math.log(10.0)
"""Mean of ``20 log10 R`` below ``10 log10 E[R^2]`` for a Rayleigh amplitude ``R``: about 2.507 dB.

``R^2 / E[R^2]`` is Exponential(1) and ``E[ln E] = -gamma`` (Euler's constant), so
``E[20 log10 R] = 10 log10 E[R^2] - 10 gamma / ln 10``.
"""

HEADROOM_DB: float = 10.0 * math.log10(math.log(1000.0))
"""Display headroom above the RMS envelope of full-scale reflectivity: about 8.39 dB.

Fully developed speckle exceeds ``E[R^2]`` by this factor in power with probability
``exp(-ln 1000) = 0.1 %``, so only that fraction of the brightest samples clips at 1.
"""


def block_mean(image: np.ndarray, factors: int | tuple[int, int]) -> np.ndarray:
    """Area-average ``fa x fl`` blocks (one int: both axes): (H * fa, W * fl) -> (H, W)."""
    fa, fl = (factors, factors) if isinstance(factors, int) else factors
    h, w = image.shape[0] // fa, image.shape[1] // fl
    return image.reshape(h, fa, w, fl).mean(axis=(1, 3))


def log_compress(level_db: np.ndarray, dynamic_range_db: float) -> np.ndarray:
    """Log-compression display map ``clip(1 + level_db / DR, 0, 1)``: a level in dB re full scale
    (<= 0) to a display intensity in [0, 1], ``DR`` = ``dynamic_range_db`` (any shape)."""
    return np.clip(1.0 + level_db / dynamic_range_db, 0.0, 1.0)


def power_db(power: np.ndarray) -> np.ndarray:
    """``10 log10(power)`` with zero power mapped to a finite, very low level (about -3077 dB)."""
    return 10.0 * np.log10(np.maximum(power, np.finfo(np.float64).tiny))
