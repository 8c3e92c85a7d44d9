"""The B-mode region of a real scanner image: which pixels are tissue to denoise.

A scanner screen holds much besides the B-mode image: burned-in text, calipers, measurement
lines, colour bars, ECG traces, colour (Doppler) pixels. Denoising must touch only gray tissue.

:func:`gray_pixels` (per frame): R = G = B within ``tol`` levels, minus a 1-pixel margin around
every colour pixel (JPEG blends colour into its neighbours). Gray scans are gray everywhere.

:func:`bmode_mask` (one (H, W) mask for the whole loop):

1. *Texture*: over up to 8 frames, the mean local standard deviation (5 x 5) of the luminance
   is above 0.015 and at most a quarter of the pixels in the 9 x 9 neighbourhood are black
   (< 0.03). Speckle is textured and rarely black; the background is flat, and burned-in text
   is bright strokes on black.
2. *Shape*: a closing then an opening with a disk of radius ~ min(H, W) / 80 make the speckle a
   solid region and remove thin structures (text strokes, caliper lines, dotted depth markers);
   the connected components holding at least 2 % of the image are kept.
3. *Hulls*: where the DICOM SequenceOfUltrasoundRegions has 2-D tissue regions that fit the
   pixel array, the mask is, per region, the convex hull of the tissue inside it, cut to the
   region (the region itself if it holds no tissue); otherwise the convex hull of all kept
   components (sectors and linear images are convex; a dark bladder or heart chamber inside
   them is tissue to denoise too).
4. *Annotations inside the image*, on the minimum over the loop (graphics are static, speckle
   is not): near-white pixels (>= 0.94) in small components (calipers, markers) and straight
   horizontal or vertical lines (up to 3 px thick, >= 12 px long, brighter by > 0.2 than the
   pixels beside them, gaps up to 36 px bridged: ROI boxes, measurement lines) are removed with a
   2-pixel margin, and so are the fitting regions that are not tissue (colour bars, waveform
   panels).
5. *Colour legends*: a colour bar drawn over the image comes with gray labels and a gray ramp
   beside it, which are neither near-white nor lines. Every static colour component (colour in
   all frames) of at least 64 px that fills >= 90 % of its bounding box and holds less than
   2 % of the frame (Doppler is blobby, status bands are large) is removed with its box grown
   by its shorter side on every side.

:func:`load_mask` reads a user's mask (PNG / NPY, nonzero = inside) and checks its shape.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from usprior.eval.metrics import local_moments
from usprior.io.scans import Scan

TEXTURE_STD = 0.015
DARK = 0.03
DARK_FRACTION = 0.25
MIN_AREA = 0.02
ANNOTATION_LEVEL = 0.94
LINE_CONTRAST = 0.2
LINE_LENGTH = 12
LEGEND_MIN_PIXELS = 64
LEGEND_FILL = 0.9


def _colour(scan: Scan, tol: int = 3) -> np.ndarray:
    """(T, H, W) bool: the pixels whose colour channels differ by more than ``tol`` levels."""
    if not scan.color:
        return np.zeros(scan.frames.shape, bool)
    return (scan.pixels.max(axis=-1) - scan.pixels.min(axis=-1)) > tol  # max >= min: no unsigned wrap


def gray_pixels(scan: Scan, tol: int = 3) -> np.ndarray:
    """(T, H, W) bool: the pixels whose colour channels agree within ``tol`` levels (see above)."""
    return ~ndi.binary_dilation(_colour(scan, tol), structure=np.ones((1, 3, 3), bool))


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy**2 + xx**2 <= radius**2


def _tissue(frames: np.ndarray) -> np.ndarray:
    """Step 1 of the module docstring, over up to 8 evenly spaced frames: (H, W) bool."""
    pick = frames[np.unique(np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int))].astype(np.float64)
    std = np.mean([np.sqrt(local_moments(frame, 5)[1]) for frame in pick], axis=0)
    dark = ndi.uniform_filter((pick < DARK).astype(np.float64), size=(1, 9, 9), mode="reflect").mean(axis=0)
    return (std > TEXTURE_STD) & (dark <= DARK_FRACTION)


def _hull(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import convex_hull_image

    return convex_hull_image(mask) if mask.any() else mask


def _regions(scan: Scan) -> list[tuple[slice, slice]]:
    return [(slice(r.y0, r.y1 + 1), slice(r.x0, r.x1 + 1)) for r in scan.tissue_regions]


def _annotations(scan: Scan, inside: np.ndarray) -> np.ndarray:
    """Graphics burned into the image: static near-white marks and straight bright lines (step 4)."""
    static = scan.frames.min(axis=0).astype(np.float64)  # annotations do not move; speckle does
    bright = (static >= ANNOTATION_LEVEL) & inside
    labels, n = ndi.label(bright, structure=np.ones((3, 3), bool))
    small = np.zeros_like(bright)
    if n:
        areas = ndi.sum(bright, labels, index=np.arange(1, n + 1))
        small = np.isin(labels, 1 + np.flatnonzero(areas < max(0.002 * inside.sum(), 16)))
    return ndi.binary_dilation(small | (_lines(static) & inside), structure=_disk(2))


def _lines(image: np.ndarray) -> np.ndarray:
    """Horizontal and vertical lines up to 3 px thick: pixels brighter by > 0.2 than the pixels two
    rows (columns) away on both sides, in runs of at least 12, with gaps of up to 36 closed
    (ROI boxes, measurement lines)."""
    pad = np.pad(image, 2, mode="edge")
    ridge_h = image - np.maximum(pad[:-4, 2:-2], pad[4:, 2:-2]) > LINE_CONTRAST
    ridge_v = image - np.maximum(pad[2:-2, :-4], pad[2:-2, 4:]) > LINE_CONTRAST
    rows, cols = np.ones((1, LINE_LENGTH), bool), np.ones((LINE_LENGTH, 1), bool)
    bridge_rows, bridge_cols = np.ones((1, 3 * LINE_LENGTH), bool), np.ones((3 * LINE_LENGTH, 1), bool)
    # then close gaps of up to 3 run lengths where a line crosses bright tissue
    return (ndi.binary_closing(ndi.binary_opening(ridge_h, structure=rows), structure=bridge_rows)
            | ndi.binary_closing(ndi.binary_opening(ridge_v, structure=cols), structure=bridge_cols))


def _other_regions(scan: Scan) -> np.ndarray:
    """Pixels of the fitting regions that are not 2-D tissue (colour bars, waveforms, ...)."""
    out = np.zeros(scan.shape, bool)
    for r in scan.regions:
        if not r.is_tissue and r.fits(scan.shape):
            out[r.y0 : r.y1 + 1, r.x0 : r.x1 + 1] = True
    return out


def _colour_legends(scan: Scan) -> np.ndarray:
    """(H, W) bool: the colour legends with their labels and ramps (step 5 of the module docstring)."""
    out = np.zeros(scan.shape, bool)
    static = _colour(scan).all(axis=0)
    labels, _ = ndi.label(static, structure=np.ones((3, 3), bool))
    for k, (rows, cols) in enumerate(ndi.find_objects(labels), start=1):
        height, width = rows.stop - rows.start, cols.stop - cols.start
        pixels = np.count_nonzero(labels[rows, cols] == k)
        if LEGEND_MIN_PIXELS <= pixels < MIN_AREA * out.size and pixels >= LEGEND_FILL * height * width:
            grow = min(height, width)
            out[max(rows.start - grow, 0) : rows.stop + grow, max(cols.start - grow, 0) : cols.stop + grow] = True
    return out


def bmode_mask(scan: Scan) -> np.ndarray:
    """The (H, W) B-mode mask of a scan's loop (see the module docstring). May be empty."""
    radius = max(2, round(min(scan.shape) / 80))
    tissue = ndi.binary_closing(_tissue(scan.frames), structure=_disk(radius), border_value=0)
    tissue = ndi.binary_opening(tissue, structure=_disk(radius))
    labels, n = ndi.label(tissue)
    if n:
        areas = ndi.sum(tissue, labels, index=np.arange(1, n + 1))
        tissue = np.isin(labels, 1 + np.flatnonzero(areas >= MIN_AREA * tissue.size))
    regions = _regions(scan)
    if regions:
        mask = np.zeros(scan.shape, bool)
        for rows, cols in regions:
            inside = np.zeros_like(mask)
            inside[rows, cols] = tissue[rows, cols]
            hull = _hull(inside)
            mask[rows, cols] |= hull[rows, cols] if hull.any() else True
    else:
        mask = _hull(tissue)
    mask &= ~_other_regions(scan) & ~_colour_legends(scan)
    return mask & ~_annotations(scan, mask)


def load_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A user's mask file (PNG / TIFF / NPY; nonzero = denoise) as (H, W) bool of ``shape``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unreadable file or
    a mask whose shape is not the frames' (H, W).
    """
    from usprior.io.scans import read_scan

    path = Path(path)
    mask = read_scan(path).frames
    if mask.shape[0] != 1 or mask.shape[1:] != tuple(shape):
        raise ValueError(f"mask {path} has shape {mask.shape[1:] if mask.shape[0] == 1 else mask.shape}, "
                         f"but the frames are {tuple(shape)}: give one (H, W) mask of the frame size")
    return mask[0] > 0
