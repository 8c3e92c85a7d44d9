"""Thin wrappers around well-kept denoisers: NLM and TV (scikit-image) and BM3D (``bm3d``).

Each takes a 2-D image and returns float32 (H, W) in [0, 1]; the parameters keep the names of
the wrapped libraries so their documentation applies. All three model additive noise, so a float
observation may lie outside [0, 1] (noise pushes a [0, 1] image past both ends; clipping it first
biases every dark and bright region): :data:`ADDITIVE_BOUNDS`.
"""

from __future__ import annotations

import bm3d as _bm3d
import numpy as np
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

from usprior.validation import as_float_image, check_int, check_nonnegative, check_positive, unit_image

ADDITIVE_BOUNDS: tuple[None, None] = (None, None)
"""Float inputs of the additive-noise denoisers here: any finite value."""


def nlm(image: np.ndarray, h: float = 0.05, sigma: float = 0.0, patch_size: int = 5, patch_distance: int = 6) -> np.ndarray:
    """Non-local means (Buades et al. 2005), ``skimage.restoration.denoise_nl_means`` (fast mode).

    ``x_i = sum_j w_ij y_j / sum_j w_ij``, ``w_ij = exp(-max(d_ij - 2 sigma^2, 0) / h^2)`` with
    ``d_ij`` the mean squared difference of the ``patch_size``^2 patches around i and j, j
    within ``patch_distance`` pixels of i. ``h`` > 0 sets the smoothing, ``sigma`` >= 0 the
    noise std subtracted from the distances (0: none). (H, W) -> (H, W).
    """
    y = as_float_image(image, min_size=1, bounds=ADDITIVE_BOUNDS)
    h = check_positive(h, "h")
    sigma = check_nonnegative(sigma, "sigma")
    return unit_image(
        denoise_nl_means(
            y, h=h, sigma=float(sigma), patch_size=check_int(patch_size, "patch_size", 1),
            patch_distance=check_int(patch_distance, "patch_distance", 1), fast_mode=True,
        )
    )


def tv(image: np.ndarray, weight: float = 0.1) -> np.ndarray:
    """Total-variation denoising (Chambolle 2004), ``skimage.restoration.denoise_tv_chambolle``.

    ``x = argmin_x ||x - y||^2 / 2 + weight * TV(x)`` (isotropic TV); ``weight`` > 0. (H, W) -> (H, W).
    """
    y = as_float_image(image, min_size=1, bounds=ADDITIVE_BOUNDS)
    return unit_image(denoise_tv_chambolle(y, weight=check_positive(weight, "weight")))


def bm3d(image: np.ndarray, sigma: float = 0.1) -> np.ndarray:
    """BM3D (Dabov et al. 2007) from the ``bm3d`` package (Mäkinen et al. 2020), both stages.

    Block matching, collaborative 3-D transform-domain hard thresholding, then Wiener
    filtering, for additive white noise of std ``sigma`` > 0 (the smoothing strength).
    (H, W) -> (H, W).
    """
    y = as_float_image(image, min_size=8, bounds=ADDITIVE_BOUNDS)
    return unit_image(_bm3d.bm3d(y, sigma_psd=check_positive(sigma, "sigma")))
