"""Noise-level estimation that holds for white noise and for correlated, log-compressed speckle.

The wavelet estimate (``skimage.restoration.estimate_sigma``: the median absolute deviation of
the finest diagonal wavelet band, Donoho & Johnstone) assumes white noise. B-mode speckle is
correlated over several pixels, so the finest band barely sees it: on an MRI slice with 50 dB
convolutional speckle it reads 0.0026 where the noise std in tissue is about 0.11.

:func:`estimate_noise_std` measures the noise where the image has no structure instead:

1. the local standard deviation s(w) in every ``window`` x ``window`` window w (default 15, so a
   window holds many speckle grains; centres on a grid of ``window`` // 2), and its mean edge
   strength e(w) (gradient magnitude of the image smoothed by a Gaussian of 4 px, so speckle
   grains are not edges);
2. the windows that are not clipped (local mean in (0.02, 0.98): black background, saturated
   text) and, among them, the ``fraction`` (default half) with the lowest e(w): homogeneous tissue;
3. the local estimate s_loc is the median of s(w) over those windows, times sqrt(n / (n - 1))
   (n = window^2: the unbiased variance); ``level`` is the median local mean there;
4. anatomy inflates s_loc where the noise is weak (white noise of std 0.01 on an MRI slice:
   s_loc = 9 s_wav, with s_wav the wavelet estimate), and correlated speckle makes it 17 to 32
   s_wav (real B-mode, simulated speckle). So for s_loc < 12 s_wav the noise is taken as white
   and s_wav is returned, else s_loc; an image without any fine-scale noise (s_wav below 1e-4:
   synthetic, noise-free) is white too. Both are floored at 1e-3 (8-bit rounding noise).

``speckle=True`` (:func:`estimate_speckle_std`, what the B-mode networks read their default noise
map with) skips step 4 (the input is B-mode, so the noise is speckle whatever the wavelet band
says: JPEG blocks and text raise it on real frames) and reads s_loc in *tissue*: among the
windows of step 2 that are not flat (local std above :data:`MIN_NOISE_STD`: a uniform display
background), those at or above their median local mean, then the ``fraction`` with the lowest
e(w). Dark windows (blood pools, cysts, the noise floor) are compressed towards black and hold
less speckle; on the SonoSite loop at 640x480 the plain reading fell in them and returned the
wavelet 0.004 where tissue speckle is about 0.04.

Calibrated on the sagittal *validation* slices and on uniform simulated speckle (not on any test
image): s_loc reads 0.87-0.89 of the true std on uniform 40 / 60 dB speckle and 0.96-0.98 of the
in-tissue noise std on speckled MRI; s_wav is within 3 % on white noise of std 0.02 to 0.3.

On white Gaussian noise of std sigma this reads sigma; on speckle, the speckle's std in
homogeneous tissue (tests/test_noise.py). It is what the likelihoods use when no ``sigma`` is
given (``from_image``): Gaussian sigma = std, log-speckle sigma = std / level^gamma, gamma
speckle looks = (level / std)^2.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi

from usprior.eval.metrics import local_moments
from usprior.validation import check_image, check_int, check_real

MIN_NOISE_STD = 1e-3
"""Floor of the estimate: about the quantisation noise of an 8-bit image, 1 / (255 sqrt(12))."""


class NoiseEstimate(NamedTuple):
    """``std``: the noise std; ``level``: the median intensity of the windows it was read in;
    ``correlated``: True when the local estimate was used (speckle), False for white noise."""

    std: float
    level: float
    correlated: bool


WHITE_RATIO = 12.0
EDGE_SMOOTH = 4.0


def _wavelet_std(y: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    with warnings.catch_warnings():  # a band of zeros makes its median absolute deviation warn
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(estimate_sigma(y))
    return value if math.isfinite(value) else 0.0


def estimate_noise(image: object, window: int = 15, fraction: float = 0.5, speckle: bool = False) -> NoiseEstimate:
    """The noise of a 2-D image (H, W) in its own units (see the module docstring); ``speckle``:
    the input is B-mode, read the tissue speckle.

    A blank image, or one without a usable window, gets :data:`MIN_NOISE_STD` and the image mean.
    """
    y = check_image(image).astype(np.float64)
    window = check_int(window, "window", 3)
    fraction = check_real(fraction, "fraction", low=0.0, high=1.0, strict=True)
    half = window // 2
    floor = NoiseEstimate(MIN_NOISE_STD, float(y.mean()), False)
    if min(y.shape) < window or np.ptp(y) == 0:
        return floor
    mean, var = local_moments(y, window)
    edges = ndi.uniform_filter(ndi.gaussian_gradient_magnitude(y, EDGE_SMOOTH, mode="reflect"), window, mode="reflect")
    rows = np.arange(half, y.shape[0] - half, max(half, 1))
    cols = np.arange(half, y.shape[1] - half, max(half, 1))
    grid = np.ix_(rows, cols)
    m, v, e = mean[grid].ravel(), var[grid].ravel(), edges[grid].ravel()
    usable = (m > 0.02) & (m < 0.98)
    if speckle:
        usable &= v > MIN_NOISE_STD**2
        if usable.any():
            usable &= m >= np.median(m[usable])
    if not usable.any():
        return floor
    m, v, e = m[usable], v[usable], e[usable]
    keep = e <= np.quantile(e, fraction)
    n = window * window
    local = math.sqrt(float(np.median(v[keep])) * n / (n - 1))
    level = float(np.median(m[keep]))
    if speckle:
        return NoiseEstimate(max(local, MIN_NOISE_STD), level, True)
    wavelet = _wavelet_std(y)
    if local < WHITE_RATIO * wavelet or wavelet < 0.1 * MIN_NOISE_STD:  # white, or no noise at all
        return NoiseEstimate(max(wavelet, MIN_NOISE_STD), level, False)
    return NoiseEstimate(max(local, MIN_NOISE_STD), level, True)


def estimate_noise_std(image: object, window: int = 15, fraction: float = 0.5) -> float:
    """The noise std of :func:`estimate_noise`."""
    return estimate_noise(image, window, fraction).std


def estimate_speckle_std(image: object, window: int = 15, fraction: float = 0.5) -> float:
    """The speckle std in tissue of a B-mode image: :func:`estimate_noise` with ``speckle=True``."""
    return estimate_noise(image, window, fraction, speckle=True).std
