"""Image-quality metrics to compare denoisers: full-reference and no-reference (ROI) measures.

All images are 2-D float arrays of shape (H, W), by convention in the display domain [0, 1]
(``data_range = 1``). Integer arrays are taken at face value (not rescaled), so pass the right
``data_range``. Every image must be finite; ROIs are boolean masks of the image's shape.

Full reference (thin wrappers over scikit-image):

* :func:`psnr` — PSNR = 10 log10(data_range^2 / MSE) in dB.
* :func:`ssim` — mean SSIM (Wang et al. 2004), scikit-image defaults (7 x 7 uniform window).

No reference, on regions of interest built with :func:`disk_mask`, :func:`ring_mask` and
:func:`box_mask`:

* :func:`cnr` — contrast-to-noise ratio, :func:`gcnr` — generalized CNR,
* :func:`snr` — speckle SNR mu / sigma, :func:`enl` — equivalent number of looks mu^2 / sigma^2,
* :func:`sharpness` — mean Tenengrad per pixel of the whole image.

No reference, for real frames (input y and output x of a denoiser, inside a mask M):

* :func:`speckle_suppression` — median over homogeneous windows of std(y) / std(x),
* :func:`structure_leakage` — correlation of the residual's local variance with the input's
  edge strength (a pure despeckler leaves a residual unrelated to anatomy: about 0 when the
  noise std is the same everywhere),
* :func:`noise_law_leakage` — the same correlation after dividing the residual's local variance
  by the frame's own noise law a m^q, fitted in homogeneous tissue: about 0 for a pure
  despeckler also where the noise grows with the brightness (real frames, docs/real_data.md),
* :func:`brightness_bias` — |mean(x) - mean(y)| over M,
* :func:`temporal_stability` — frame-to-frame change of the output relative to the input's;
* :func:`no_reference_scores` — the first four of these at once, as the real-data experiments report them.

Standard deviations are population ones (``ddof = 0``). Zero denominators (constant regions)
follow one rule: a ratio n / 0 is ``inf`` when n > 0 and ``0.0`` when n = 0, so a perfectly flat
region ranks as infinitely smooth and two identical flat regions have no contrast.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi
import skimage.metrics

from usprior.validation import check_image, check_positive, check_real, check_shape


def _as_image(image: object, name: str) -> np.ndarray:
    """Return ``image`` as a float64 (H, W) array; ValueError unless real, 2-D, non-empty, finite."""
    return check_image(image, name).astype(np.float64)


def _image_pair(reference: object, estimate: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate two images with :func:`_as_image`; ValueError if their shapes differ."""
    ref = _as_image(reference, "reference")
    est = _as_image(estimate, "estimate")
    if ref.shape != est.shape:
        raise ValueError(f"reference and estimate shapes differ: {ref.shape} vs {est.shape}")
    return ref, est


def _region(image: np.ndarray, mask: object, name: str) -> np.ndarray:
    """Values of ``image`` (H, W) under ``mask``, a non-empty boolean (H, W) array -> (n,) float64."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean numpy array, got {type(mask).__name__} "
                         f"of dtype {getattr(mask, 'dtype', None)}")
    if mask.shape != image.shape:
        raise ValueError(f"{name} shape {mask.shape} differs from the image shape {image.shape}")
    if not mask.any():
        raise ValueError(f"{name} is empty: it selects no pixel")
    return image[mask]


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator for numerator, denominator >= 0, with n / 0 = inf (n > 0) and 0 / 0 = 0."""
    if denominator == 0.0:
        return math.inf if numerator > 0.0 else 0.0
    return float(numerator / denominator)


def psnr(reference: object, estimate: object, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of ``estimate`` against ``reference``, both (H, W).

    PSNR = 10 log10(data_range^2 / MSE), MSE = mean((reference - estimate)^2), via
    ``skimage.metrics.peak_signal_noise_ratio``; identical images give ``inf``.
    Raises ValueError for mismatched shapes, non-finite values or ``data_range <= 0``.
    """
    ref, est = _image_pair(reference, estimate)
    data_range = check_positive(data_range, "data_range")
    with np.errstate(divide="ignore"):
        return float(skimage.metrics.peak_signal_noise_ratio(ref, est, data_range=data_range))


def ssim(reference: object, estimate: object, data_range: float = 1.0) -> float:
    """Mean structural similarity of ``estimate`` against ``reference``, both (H, W), in [-1, 1].

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
    with C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = ``data_range``, local statistics over a 7 x 7 uniform
    window, averaged over the image (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 13(4), 2004), via
    ``skimage.metrics.structural_similarity``; images must be at least 7 x 7.
    Raises ValueError for mismatched shapes, non-finite values or ``data_range <= 0``.
    """
    ref, est = _image_pair(reference, estimate)
    data_range = check_positive(data_range, "data_range")
    return float(skimage.metrics.structural_similarity(ref, est, data_range=data_range))


def _check_disk_inside(shape: tuple[int, int], center: tuple[float, float], radius: float) -> None:
    """ValueError unless the disk's bounding box [c - r, c + r] lies within the pixel grid [0, n - 1]."""
    cy, cx = float(center[0]), float(center[1])
    h, w = shape
    if not (cy - radius >= 0 and cx - radius >= 0 and cy + radius <= h - 1 and cx + radius <= w - 1):
        raise ValueError(f"disk of radius {radius} at {center} does not fit inside the image of shape {shape}")


def _squared_distance(shape: tuple[int, int], center: tuple[float, float]) -> np.ndarray:
    """(H, W) array of (y - cy)^2 + (x - cx)^2 over pixel centres (y, x)."""
    y, x = np.ogrid[: shape[0], : shape[1]]
    return (y - float(center[0])) ** 2 + (x - float(center[1])) ** 2


def disk_mask(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean (H, W) mask of the pixels (y, x) with (y - cy)^2 + (x - cx)^2 <= radius^2.

    ``center`` is (row, column). The disk must fit inside the image (no clipped ROI):
    cy - r >= 0, cy + r <= H - 1 and likewise for x; ValueError otherwise or if ``radius <= 0``.
    Its pixel count is close to pi radius^2.
    """
    shape = check_shape(shape)
    radius = check_positive(radius, "radius")
    _check_disk_inside(shape, center, radius)
    return _squared_distance(shape, center) <= radius**2


def ring_mask(shape: tuple[int, int], center: tuple[float, float], r_inner: float, r_outer: float) -> np.ndarray:
    """Boolean (H, W) annulus r_inner^2 < (y - cy)^2 + (x - cx)^2 <= r_outer^2.

    The ring is ``disk_mask(shape, center, r_outer)`` minus ``disk_mask(shape, center, r_inner)``,
    the usual background around a circular lesion. Requires 0 <= r_inner < r_outer, the outer
    disk inside the image and at least one pixel in the ring; ValueError otherwise.
    """
    shape = check_shape(shape)
    r_outer = check_positive(r_outer, "r_outer")
    if not 0.0 <= float(r_inner) < r_outer:
        raise ValueError(f"need 0 <= r_inner < r_outer, got r_inner={r_inner}, r_outer={r_outer}")
    _check_disk_inside(shape, center, r_outer)
    d2 = _squared_distance(shape, center)
    mask = (d2 > float(r_inner) ** 2) & (d2 <= r_outer**2)
    if not mask.any():
        raise ValueError(f"ring {r_inner} < r <= {r_outer} at {center} contains no pixel")
    return mask


def box_mask(shape: tuple[int, int], top_left: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the rectangle rows [r0, r0 + h), columns [c0, c0 + w).

    ``top_left`` = (r0, c0), ``size`` = (h, w) with h, w >= 1; the box must lie inside the
    image (r0, c0 >= 0, r0 + h <= H, c0 + w <= W); ValueError otherwise.
    """
    height, width = check_shape(shape)
    (r0, c0), (h, w) = (int(top_left[0]), int(top_left[1])), (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"box size must be >= 1 in both directions, got {size}")
    if r0 < 0 or c0 < 0 or r0 + h > height or c0 + w > width:
        raise ValueError(f"box at {top_left} of size {size} does not fit inside the image of shape {shape}")
    mask = np.zeros((height, width), dtype=bool)
    mask[r0 : r0 + h, c0 : c0 + w] = True
    return mask


def cnr(image: object, roi: np.ndarray, background: np.ndarray) -> float:
    """Contrast-to-noise ratio CNR = |mu_r - mu_b| / sqrt(sigma_r^2 + sigma_b^2).

    mu, sigma^2 are the mean and (population) variance of ``image`` (H, W) under the boolean
    masks ``roi`` and ``background`` (H, W), as used for lesion detectability in ultrasound
    (Patterson & Foster, Ultrasonic Imaging 5(3), 1983; Smith et al., IEEE TSU 30(3), 1983).
    Two constant regions give 0.0 for equal means and ``inf`` otherwise.
    Raises ValueError for a non-finite image or an empty, non-boolean or mis-shaped mask.
    """
    img = _as_image(image, "image")
    r, b = _region(img, roi, "roi"), _region(img, background, "background")
    return _ratio(abs(r.mean() - b.mean()), math.sqrt(r.var() + b.var()))


def gcnr(image: object, roi: np.ndarray, background: np.ndarray, bins: int = 256) -> float:
    """Generalized contrast-to-noise ratio gCNR = 1 - sum_k min(p_r(k), p_b(k)), in [0, 1].

    p_r, p_b are the histograms of ``image`` (H, W) under the boolean masks ``roi`` and
    ``background``, on ``bins`` common bins spanning the range of both regions, normalised to
    probability mass (Rodriguez-Molares et al., IEEE TUFFC 67(4), 2020). With counts c and sizes
    n it is evaluated exactly in integers as (n_r n_b - sum_k min(n_b c_r(k), n_r c_b(k))) / (n_r n_b),
    so histograms with no common bin give exactly 1.0 and identical samples exactly 0.0.
    Raises ValueError for ``bins < 1``, a non-finite image or an empty, non-boolean or mis-shaped mask.
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    img = _as_image(image, "image")
    r, b = _region(img, roi, "roi"), _region(img, background, "background")
    edges = np.histogram_bin_edges(np.concatenate([r, b]), bins=int(bins))
    c_r, _ = np.histogram(r, bins=edges)
    c_b, _ = np.histogram(b, bins=edges)
    n_r, n_b = int(r.size), int(b.size)
    overlap = int(np.minimum(n_b * c_r.astype(np.int64), n_r * c_b.astype(np.int64)).sum())
    return (n_r * n_b - overlap) / (n_r * n_b)


def snr(image: object, roi: np.ndarray) -> float:
    """Speckle signal-to-noise ratio SNR = mu / sigma of ``image`` (H, W) under the boolean mask ``roi``.

    For fully developed speckle the amplitude is Rayleigh, SNR = sqrt(pi / (4 - pi)) ~= 1.91
    (Burckhardt, IEEE TSU 25(1), 1978); despeckling raises it. A constant ROI gives ``inf``
    (0.0 if it is all zero). The image is expected non-negative (display domain).
    Raises ValueError for a non-finite image or an empty, non-boolean or mis-shaped mask.
    """
    r = _region(_as_image(image, "image"), roi, "roi")
    return _ratio(r.mean(), r.std())


def enl(image: object, roi: np.ndarray) -> float:
    """Equivalent number of looks ENL = mu^2 / sigma^2 of ``image`` (H, W) under ``roi``.

    Meaningful on a homogeneous region of an intensity image, where L-look speckle is
    Gamma(L, mu / L) distributed and ENL = L (Ulaby & Dobson 1989; Lee 1981). A constant ROI
    gives ``inf`` (0.0 if it is all zero).
    Raises ValueError for a non-finite image or an empty, non-boolean or mis-shaped mask.
    """
    r = _region(_as_image(image, "image"), roi, "roi")
    return _ratio(r.mean() ** 2, r.var())


def tenengrad(patches: np.ndarray) -> np.ndarray:
    """Tenengrad focus measure of each patch: (N, p, p) -> (N,) float64, p >= 3.

    T = sum_{valid (y, x)} (S_x * P)^2 + (S_y * P)^2 with the 3 x 3 Sobel kernels
    S_x = [1 2 1]^T [-1 0 1] and S_y = S_x^T, evaluated only on the (p - 2) x (p - 2)
    interior where the kernel fits, so there are no padding artefacts.
    """
    p = np.asarray(patches, dtype=np.float64)
    dx = p[:, :, 2:] - p[:, :, :-2]  # (N, p, p-2): [-1 0 1] along x
    dy = p[:, 2:, :] - p[:, :-2, :]  # (N, p-2, p): [-1 0 1] along y
    gx = dx[:, :-2] + 2.0 * dx[:, 1:-1] + dx[:, 2:]  # [1 2 1] along y -> (N, p-2, p-2)
    gy = dy[:, :, :-2] + 2.0 * dy[:, :, 1:-1] + dy[:, :, 2:]  # [1 2 1] along x
    return np.sum(gx**2 + gy**2, axis=(1, 2))


def sharpness(image: object) -> float:
    """Mean Tenengrad per pixel: T / ((H - 2)(W - 2)) with T = sum (S_x * I)^2 + (S_y * I)^2.

    S_x, S_y are the 3 x 3 Sobel kernels, summed over the (H - 2) x (W - 2) valid interior
    (see :func:`tenengrad`; Tenenbaum 1970, Krotkov 1988). Higher is sharper;
    0 for a constant image. Raises ValueError for a non-finite image or H, W < 3.
    """
    img = _as_image(image, "image")
    if min(img.shape) < 3:
        raise ValueError(f"sharpness needs an image of at least 3 x 3, got shape {img.shape}")
    return float(tenengrad(img[None])[0]) / ((img.shape[0] - 2) * (img.shape[1] - 2))


# --- no reference, for real frames ------------------------------------------------------------

HOMOGENEOUS_WINDOW = 11
HOMOGENEOUS_FRACTION = 0.3


def _pair_in_mask(noisy: object, denoised: object, mask: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, x = _image_pair(noisy, denoised)
    _region(y, mask, "mask")
    return y, x, mask


def edge_strength(image: np.ndarray, smooth: float = 2.0) -> np.ndarray:
    """Gradient magnitude (Sobel) of the image smoothed by a Gaussian of ``smooth`` px: (H, W).

    The smoothing keeps speckle grains from counting as edges."""
    g = ndi.gaussian_filter(np.asarray(image, np.float64), smooth, mode="reflect")
    return np.hypot(ndi.sobel(g, axis=0, mode="reflect"), ndi.sobel(g, axis=1, mode="reflect"))


def local_moments(image: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Local mean ``m`` and variance ``var = mean(y^2) - m^2`` (clamped at 0) in a ``window`` box.

    ``image`` is a float (H, W) array; returns two float64 (H, W) arrays (``mode="reflect"``).
    """
    y = np.asarray(image, dtype=np.float64)
    mean = ndi.uniform_filter(y, window, mode="reflect")
    var = np.maximum(ndi.uniform_filter(y * y, window, mode="reflect") - mean * mean, 0.0)
    return mean, var


def _local_std(image: np.ndarray, size: int) -> np.ndarray:
    return np.sqrt(local_moments(image, size)[1])


def homogeneous_windows(noisy: object, mask: np.ndarray, size: int = HOMOGENEOUS_WINDOW,
                        fraction: float = HOMOGENEOUS_FRACTION) -> np.ndarray:
    """Centres (K, 2) of the ``size`` x ``size`` windows inside ``mask`` (on a grid of half a
    window) whose mean edge strength is in the lowest ``fraction`` of them: speckle without anatomy."""
    y = _as_image(noisy, "noisy")
    _region(y, mask, "mask")
    half = size // 2
    inside = ndi.binary_erosion(mask, structure=np.ones((size, size), bool))
    rows, cols = np.meshgrid(np.arange(half, y.shape[0] - half, max(half, 1)),
                             np.arange(half, y.shape[1] - half, max(half, 1)), indexing="ij")
    centres = np.stack([rows.ravel(), cols.ravel()], axis=1)
    centres = centres[inside[centres[:, 0], centres[:, 1]]]
    if len(centres) == 0:
        raise ValueError(f"the mask holds no {size}x{size} window")
    edges = ndi.uniform_filter(edge_strength(y), size, mode="reflect")[centres[:, 0], centres[:, 1]]
    keep = edges <= np.quantile(edges, fraction)
    return centres[keep]


def speckle_suppression(noisy: object, denoised: object, mask: np.ndarray, size: int = HOMOGENEOUS_WINDOW) -> float:
    """Median over :func:`homogeneous_windows` of std(noisy) / std(denoised) in each window.

    1 means nothing was removed; a flat output in every window gives ``inf``.
    """
    y, x, mask = _pair_in_mask(noisy, denoised, mask)
    centres = homogeneous_windows(y, mask, size)
    sy = _local_std(y, size)[centres[:, 0], centres[:, 1]]
    sx = _local_std(x, size)[centres[:, 0], centres[:, 1]]
    return float(np.median([_ratio(a, b) for a, b in zip(sy, sx)]))


ROUNDING_VARIANCE = 1e-12
"""Local variances below this (std 1e-6, far below 8-bit steps) are float rounding of
E[r^2] - E[r]^2, taken as 0: a residual that is a constant offset has no variance to correlate."""


def _residual_variance(noisy: np.ndarray, denoised: np.ndarray, size: int) -> np.ndarray:
    """Local variance (``size`` x ``size``) of noisy - denoised, (H, W), rounding noise set to 0."""
    var = local_moments(noisy - denoised, size)[1]
    return np.where(var > ROUNDING_VARIANCE, var, 0.0)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two (n,) arrays; 0 when either is constant."""
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def structure_leakage(noisy: object, denoised: object, mask: np.ndarray, size: int = 7) -> float:
    """Pearson correlation over ``mask`` between the local variance (``size`` x ``size``) of the
    residual noisy - denoised and :func:`edge_strength` of the noisy image, in [-1, 1].

    Near 0: the residual is unrelated to anatomy (speckle only); near 1: edges were removed.
    A zero residual (identity) gives 0.
    """
    y, x, mask = _pair_in_mask(noisy, denoised, mask)
    return _correlation(_residual_variance(y, x, size)[mask], edge_strength(y)[mask])


NOISE_LAW_MIN_MEAN = 0.02
"""Local means below this are black (background, anechoic pools): no noise law is read there."""

NOISE_LAW_MIN_SPAN = 2.0
"""The homogeneous pixels' local means must span this factor (10th to 90th percentile) for a
slope q to be read; else q = 0 (one brightness: the law cannot be told from structure)."""


def noise_law_leakage(noisy: object, denoised: object, mask: np.ndarray, size: int = 7,
                      fraction: float = HOMOGENEOUS_FRACTION) -> float:
    """:func:`structure_leakage` with the residual's local variance taken relative to the noise
    law of the frame, in [-1, 1].

    With r = y - x, m the local mean of y and v the local variance of r (``size`` x ``size``), and
    e = :func:`edge_strength` (y), over the pixels P of ``mask`` with m > :data:`NOISE_LAW_MIN_MEAN`:

    1. the law log v = log a + q log m is fitted by least squares on the homogeneous pixels of P
       (the ``fraction`` with the lowest e, where v > 0), q clipped to [0, 2] (noise std ~ m^(q/2):
       q = 0 log-compressed speckle, q = 1 the sqrt law of ``u = v + sqrt(v) eta``); q = 0 when
       those pixels span less than :data:`NOISE_LAW_MIN_SPAN` in m (then this is
       :func:`structure_leakage` over P);
    2. the result is corr(v / m^q, e) over P (the scale a does not change a correlation).

    A despeckler that removes only noise leaves v / (a m^q) about constant, whatever the law, so
    it scores about 0; removed edges raise v at edges beyond the law (positive); speckle left at
    edges lowers it (negative). :func:`structure_leakage` reads a law with q > 0 as structure,
    because bright tissue is where the edges are. A zero residual gives 0; without homogeneous
    pixels of positive v (a noise-free input) q = 0.
    """
    y, x, mask = _pair_in_mask(noisy, denoised, mask)
    fraction = check_real(fraction, "fraction", low=0.0, high=1.0, strict=True)
    mean = local_moments(y, size)[0]
    var = _residual_variance(y, x, size)
    edges = edge_strength(y)
    inside = mask & (mean > NOISE_LAW_MIN_MEAN)
    if not inside.any() or var[inside].std() == 0:
        return 0.0
    flat = inside & (edges <= np.quantile(edges[inside], fraction)) & (var > 0)
    q = 0.0
    if flat.sum() >= 2:
        log_m = np.log(mean[flat])
        low, high = np.quantile(log_m, [0.1, 0.9])
        if high - low >= math.log(NOISE_LAW_MIN_SPAN):
            q = float(np.clip(np.polyfit(log_m, np.log(var[flat]), 1)[0], 0.0, 2.0))
    return _correlation(var[inside] / mean[inside] ** q, edges[inside])  # the law's scale a drops out


def brightness_bias(noisy: object, denoised: object, mask: np.ndarray) -> float:
    """|mean(denoised) - mean(noisy)| over ``mask``."""
    y, x, mask = _pair_in_mask(noisy, denoised, mask)
    return float(abs(x[mask].mean() - y[mask].mean()))


def no_reference_scores(noisy: object, denoised: object, mask: np.ndarray) -> dict[str, float]:
    """The real-frame scores of one output (H, W) inside ``mask``: ``suppression``
    (:func:`speckle_suppression`), ``leakage`` (:func:`structure_leakage`), ``leakage_law``
    (:func:`noise_law_leakage`) and ``bias`` (:func:`brightness_bias`)."""
    return {"suppression": speckle_suppression(noisy, denoised, mask), "leakage": structure_leakage(noisy, denoised, mask),
            "leakage_law": noise_law_leakage(noisy, denoised, mask), "bias": brightness_bias(noisy, denoised, mask)}


def temporal_stability(noisy: np.ndarray, denoised: np.ndarray, mask: np.ndarray) -> float:
    """mean |x[t+1] - x[t]| / mean |y[t+1] - y[t]| over ``mask`` of two stacks (T >= 2, H, W).

    1: the output flickers as much as the input; below 1: steadier.
    """
    y, x = np.asarray(noisy, np.float64), np.asarray(denoised, np.float64)
    if y.ndim != 3 or y.shape != x.shape or len(y) < 2:
        raise ValueError(f"need two stacks (T >= 2, H, W) of one shape, got {y.shape} and {x.shape}")
    _region(y[0], mask, "mask")
    dy = np.abs(np.diff(y, axis=0))[:, mask].mean()
    dx = np.abs(np.diff(x, axis=0))[:, mask].mean()
    return _ratio(dx, dy)
