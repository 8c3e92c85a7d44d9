"""Denoise inside the B-mode mask, keep the rest bit-identical.

:func:`denoise_scan` runs a denoiser on the bounding box of the mask (padded to the denoiser's
smallest frame side), then writes the result back only where the mask holds *and* the pixel is
gray in that frame (:func:`usprior.scanner.mask.gray_pixels`): text, calipers, colour bars,
ECG traces and colour-Doppler pixels keep their exact values, and so does everything outside
the mask. Colour scans come back as RGB: inside the mask each channel of a gray pixel moves by
the change of its gray level (so R = G = B = the denoised gray where the pixel was exactly gray).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from usprior.denoisers import Denoiser
from usprior.io.scans import Scan
from usprior.scanner.mask import gray_pixels

MARGIN = 8
"""Pixels of context kept around the mask's bounding box."""


class DenoisedScan(NamedTuple):
    """The result: luminance ``frames`` (T, H, W) float32, display ``pixels`` (the scan's shape
    and dtype) and the per-frame ``written`` mask (T, H, W) of the pixels that changed value."""

    frames: np.ndarray
    pixels: np.ndarray
    written: np.ndarray


def _box(mask: np.ndarray, min_size: int) -> tuple[slice, slice]:
    """Bounding box of ``mask`` plus :data:`MARGIN`, grown to at least ``min_size`` per side."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    bounds = []
    for lo, hi, size in ((ys.min(), ys.max() + 1, h), (xs.min(), xs.max() + 1, w)):
        lo, hi = max(lo - MARGIN, 0), min(hi + MARGIN, size)
        grow = max(min_size - (hi - lo), 0)
        lo = max(lo - grow // 2 - grow % 2, 0)
        hi = min(max(hi + grow // 2, lo + min_size), size)
        bounds.append(slice(lo, hi))
    return bounds[0], bounds[1]


def denoise_scan(scan: Scan, denoiser: Denoiser, mask: np.ndarray, sigma: object = None) -> DenoisedScan:
    """Denoise the masked gray pixels of ``scan`` (mask (H, W) bool); see the module docstring.

    An empty mask returns the scan unchanged. Raises ``ValueError`` for a mask of another shape.
    """
    mask = np.asarray(mask, bool)
    if mask.shape != scan.shape:
        raise ValueError(f"mask of shape {mask.shape} does not match the frames {scan.shape}")
    written = mask[None] & gray_pixels(scan)
    frames = scan.frames.copy()
    pixels = scan.pixels.copy()
    if not written.any():
        return DenoisedScan(frames, pixels, written)
    rows, cols = _box(mask, denoiser.min_size)
    out = denoiser(scan.frames[:, rows, cols], sigma=sigma)
    crop = frames[:, rows, cols]
    inside = written[:, rows, cols]
    crop[inside] = out[inside]
    frames[:, rows, cols] = crop
    if scan.bits:
        top = 2**scan.bits - 1
        levels = np.round(frames[written] * top)
        if scan.color:  # add the change of gray level to each channel: exact for R = G = B, and a
            change = levels - np.round(scan.frames[written] * top)  # no-op denoiser changes nothing
            levels = pixels[written].astype(np.float64) + change[:, None]
        pixels[written] = np.clip(levels, 0, top).astype(pixels.dtype)
    else:
        pixels = frames
    return DenoisedScan(frames, pixels, written)
