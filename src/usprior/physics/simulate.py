"""Synthetic ultrasound data: convolutional speckle and pixel-wise noise models.

Two kinds of simulators, all deterministic given ``seed``:

* :func:`convolutional_speckle` -- a B-mode image formed physically: random scatterers
  weighted by a reflectivity map, convolved with the pulse-echo PSF of Yu & Acton (2002)
  (:func:`psf`), envelope-detected with the Hilbert transform and log-compressed. It returns
  the speckled image together with the matching speckle-free target in the same display mapping.
* :func:`multiplicative_uniform`, :func:`log_speckle`, :func:`gaussian` -- pixel-wise noise on
  a display-domain image (numpy in, numpy out). The last two are thin wrappers around the JAX
  samplers of :mod:`usprior.physics.likelihoods`.
* :data:`NOISE_MODELS` -- the simulators by name as ``corrupt(clean, level, seed) -> (noisy,
  target)``: what the benchmark and the training of the amortised denoisers draw from.

Axes: images are (H, W) = (depth / axial, lateral). Physical lengths are in millimetres,
the centre frequency in MHz and the speed of sound in m/s, so the wavelength in mm is
``lambda = c / f0 * 1e-3`` (0.22 mm at 7 MHz and 1540 m/s).

Reference: Y. Yu and S. T. Acton, "Speckle reducing anisotropic diffusion",
IEEE Trans. Image Process. 11(11):1260-1270, 2002 (PSF and simulation model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.signal import fftconvolve, hilbert

from usprior.physics.display import EULER_DB, HEADROOM_DB, block_mean, log_compress, power_db
from usprior.physics.likelihoods import Gaussian, LogSpeckle
from usprior.validation import as_float_image, check_int, check_positive

__all__ = [
    "NOISE_MODELS",
    "NoiseModel",
    "SpeckleSimulation",
    "convolutional_speckle",
    "gaussian",
    "log_speckle",
    "multiplicative_uniform",
    "noise_std",
    "psf",
    "wavelength_mm",
]

_AXIAL_SAMPLES_PER_WAVELENGTH = 8  # automatic oversampling target: fine axial pixel <= lambda / 8
_MIN_AXIAL_SAMPLES_PER_WAVELENGTH = 4  # psf refuses coarser axial sampling than lambda / 4
_PSF_SUPPORT_SIGMAS = 3.0


def wavelength_mm(f0_mhz: float = 7.0, c_m_s: float = 1540.0) -> float:
    """Return the acoustic wavelength ``lambda = c / f0`` in mm (f0 in MHz, c in m/s)."""
    return check_positive(c_m_s, "c_m_s") / check_positive(f0_mhz, "f0_mhz") * 1e-3


def _pixel_size(pixel_size_mm: tuple[float, float]) -> tuple[float, float]:
    """Validate a (axial, lateral) pixel size in mm: two finite values > 0."""
    if len(pixel_size_mm) != 2:
        raise ValueError(f"pixel_size_mm must be (axial, lateral), got {pixel_size_mm!r}")
    return (
        check_positive(pixel_size_mm[0], "axial pixel size (mm)"),
        check_positive(pixel_size_mm[1], "lateral pixel size (mm)"),
    )


def _centered_grid(sigma_mm: float, step_mm: float) -> np.ndarray:
    """Sample positions ``k * step`` in mm, ``|k| <= ceil(3 sigma / step)``: odd length, centred on 0."""
    half = math.ceil(_PSF_SUPPORT_SIGMAS * sigma_mm / step_mm)
    return np.arange(-half, half + 1) * step_mm


def psf(
    pixel_size_mm: tuple[float, float],
    f0_mhz: float = 7.0,
    c_m_s: float = 1540.0,
    sigma_axial_mm: float = 0.25,
    sigma_lateral_mm: float = 0.3,
) -> np.ndarray:
    """Sample the Yu & Acton (2002) pulse-echo point spread function.

    ``h(rx, ry) = sin(2 pi f0 rx / c) * exp(-rx^2 / (2 sx^2)) * exp(-ry^2 / (2 sy^2))``

    with ``rx`` the axial (depth, rows) and ``ry`` the lateral (columns) offset in mm,
    ``sx = sigma_axial_mm``, ``sy = sigma_lateral_mm``; ``2 pi f0 rx / c = 2 pi rx / lambda``.
    The support is ``+-3 sigma`` on each axis, rounded up to whole pixels.

    Args:
        pixel_size_mm: (axial, lateral) sampling step in mm.
        f0_mhz: centre frequency in MHz.
        c_m_s: speed of sound in m/s.
        sigma_axial_mm, sigma_lateral_mm: Gaussian envelope widths in mm.

    Returns:
        float64 array of shape ``(2 * ceil(3 sx / dx_ax) + 1, 2 * ceil(3 sy / dx_lat) + 1)``,
        odd on both axes, even in ``ry`` and odd in ``rx``; peak magnitude <= 1.

    Raises:
        ValueError: a non-positive or non-finite parameter, or an axial pixel coarser than
            ``lambda / 4`` (the carrier would not be resolved; oversample the grid).
    """
    d_ax, d_lat = _pixel_size(pixel_size_mm)
    wavelength = wavelength_mm(f0_mhz, c_m_s)
    if d_ax > wavelength / _MIN_AXIAL_SAMPLES_PER_WAVELENGTH:
        raise ValueError(
            f"axial pixel size {d_ax:.4g} mm does not resolve the {f0_mhz:g} MHz carrier "
            f"(wavelength {wavelength:.4g} mm); it must be <= lambda / {_MIN_AXIAL_SAMPLES_PER_WAVELENGTH} = "
            f"{wavelength / _MIN_AXIAL_SAMPLES_PER_WAVELENGTH:.4g} mm: oversample the grid"
        )
    sx = check_positive(sigma_axial_mm, "sigma_axial_mm")
    sy = check_positive(sigma_lateral_mm, "sigma_lateral_mm")
    rx = _centered_grid(sx, d_ax)[:, None]
    ry = _centered_grid(sy, d_lat)[None, :]
    envelope = np.exp(-(rx**2) / (2.0 * sx**2)) * np.exp(-(ry**2) / (2.0 * sy**2))
    return np.sin(2.0 * np.pi * rx / wavelength) * envelope


class SpeckleSimulation(NamedTuple):
    """Result of :func:`convolutional_speckle`.

    Attributes:
        noisy: (H, W) float32 in [0, 1], the log-compressed speckled B-mode image.
        clean: (H, W) float32 in [0, 1], the speckle-free target in the same display mapping
            (the expected value of ``noisy`` wherever no clipping occurs).
        envelope: (H * oversample, W * oversample) float32, the linear envelope ``|A|`` on the
            oversampled grid before log compression and downsampling, scaled so that
            ``E[envelope^2] = x^2`` inside a uniform region of reflectivity ``x``.
        pixel_size_mm: (axial, lateral) image pixel size in mm.
        oversample: integer oversampling factor of the simulation grid (both axes).
        dynamic_range_db: displayed dynamic range in dB.
        f0_mhz, c_m_s, sigma_axial_mm, sigma_lateral_mm: the PSF parameters (see :func:`psf`).
    """

    noisy: np.ndarray
    clean: np.ndarray
    envelope: np.ndarray
    pixel_size_mm: tuple[float, float]
    oversample: int
    dynamic_range_db: float
    f0_mhz: float
    c_m_s: float
    sigma_axial_mm: float
    sigma_lateral_mm: float


def _auto_oversample(axial_pixel_mm: float, wavelength: float) -> int:
    """Smallest integer ``k`` with ``axial_pixel_mm / k <= lambda / 8``."""
    return max(1, math.ceil(axial_pixel_mm * _AXIAL_SAMPLES_PER_WAVELENGTH / wavelength - 1e-9))


def convolutional_speckle(
    reflectivity: np.ndarray,
    pixel_size_mm: tuple[float, float] = (0.1, 0.1),
    oversample: int | None = None,
    dynamic_range_db: float = 50.0,
    seed: int | np.random.Generator = 0,
    *,
    f0_mhz: float = 7.0,
    c_m_s: float = 1540.0,
    sigma_axial_mm: float = 0.25,
    sigma_lateral_mm: float = 0.3,
) -> SpeckleSimulation:
    """Simulate a log-compressed B-mode image of a reflectivity map (Yu & Acton 2002 model).

    Steps, on a grid oversampled ``k = oversample`` times on both axes (pixel ``d / k``):

    1. ``x`` (H, W) is upsampled by pixel replication to ``x_k`` (H k, W k) and padded
       symmetrically by twice the PSF half-width (so the borders see full speckle and the
       periodic Hilbert transform does not wrap into the image; the padding is cropped at the end).
    2. Scatterers: ``s = x_k * n`` with ``n ~ N(0, 1)`` i.i.d. per fine pixel. The scattering
       *amplitude* is proportional to the reflectivity ``x`` (backscattered power ``x^2``; the
       Field II phantom convention), so a region of reflectivity ``x`` sits ``20 log10 x`` dB
       below full scale.
    3. RF image ``rf = s (*) h`` (2-D FFT convolution with :func:`psf`), analytic signal
       ``A = hilbert(rf)`` along depth, envelope ``R = |A|``. ``A`` is a sum of many scatterer
       echoes, a circular complex Gaussian, so ``R`` is Rayleigh distributed (fully developed
       speckle) with ``E[R^2] = P = x_k^2 (*) |h_a|^2``, ``h_a = hilbert(h)`` along depth.
    4. Levels in dB re full scale ``P_ref = 10^(HEADROOM_DB / 10) * sum |h_a|^2`` (the power of
       a uniform ``x = 1`` field, raised by the headroom): ``noisy_db = 10 log10(R^2 / P_ref)``
       and ``clean_db = 10 log10(P / P_ref) - EULER_DB``. The ``-EULER_DB`` (2.507 dB) is the
       mean of the log of a Rayleigh amplitude below the log of its RMS, so ``clean_db`` is
       the expected value of ``noisy_db``.
    5. Display ``clip(1 + level_db / DR, 0, 1)`` on the fine grid, then ``k x k`` area
       averaging back to (H, W). Scanners interpolate after log compression, and averaging in
       the display domain keeps ``E[noisy] = clean`` exactly wherever clipping is negligible.
       A uniform region of reflectivity ``x`` thus has
       ``clean = 1 + (20 log10 x - EULER_DB - HEADROOM_DB) / DR`` (0.78 at ``x = 1``, 50 dB).

    Args:
        reflectivity: (H, W) clean echogenicity ``x`` in [0, 1] (float, or integer scaled by
            its dtype range); 0 is anechoic.
        pixel_size_mm: (axial, lateral) physical size of an image pixel in mm.
        oversample: simulation grid refinement ``k``; None picks the smallest ``k`` with
            ``pixel_size_mm[0] / k <= lambda / 8`` (4 for the default 0.1 mm at 7 MHz).
            A ``k`` with ``pixel_size_mm[0] / k > lambda / 4`` raises ``ValueError``.
        dynamic_range_db: displayed dynamic range ``DR`` in dB, > 0.
        seed: integer seed or ``numpy.random.Generator`` for the scatterers.
        f0_mhz, c_m_s, sigma_axial_mm, sigma_lateral_mm: PSF parameters (see :func:`psf`).

    Returns:
        A :class:`SpeckleSimulation`; ``noisy`` and ``clean`` are float32 (H, W) in [0, 1].

    Raises:
        ValueError: invalid reflectivity (not 2-D, NaN, outside [0, 1]), a non-positive pixel
            size, PSF parameter or dynamic range, a non-integer or < 1 ``oversample``, or an
            oversampled axial pixel coarser than ``lambda / 4``.
    """
    x = as_float_image(reflectivity, min_size=1, name="reflectivity").astype(np.float64)
    d_ax, d_lat = _pixel_size(pixel_size_mm)
    dr = check_positive(dynamic_range_db, "dynamic_range_db")
    wavelength = wavelength_mm(f0_mhz, c_m_s)
    k = _auto_oversample(d_ax, wavelength) if oversample is None else check_int(oversample, "oversample")
    h = psf((d_ax / k, d_lat / k), f0_mhz, c_m_s, sigma_axial_mm, sigma_lateral_mm)
    h_power = np.abs(hilbert(h, axis=0)) ** 2

    pad = (h.shape[0] - 1, h.shape[1] - 1)  # twice the half-width on each side
    x_fine = np.pad(np.repeat(np.repeat(x, k, axis=0), k, axis=1), [(p, p) for p in pad], mode="symmetric")
    crop = (slice(pad[0], x_fine.shape[0] - pad[0]), slice(pad[1], x_fine.shape[1] - pad[1]))
    noise = np.random.default_rng(seed).standard_normal(x_fine.shape)
    rf = fftconvolve(x_fine * noise, h, mode="same")
    envelope = np.abs(hilbert(rf, axis=0))[crop]
    power = fftconvolve(x_fine**2, h_power, mode="same")[crop]

    ref_db = HEADROOM_DB + power_db(np.sum(h_power))
    noisy_db = power_db(envelope**2) - ref_db
    clean_db = power_db(power) - ref_db - EULER_DB
    return SpeckleSimulation(
        noisy=block_mean(log_compress(noisy_db, dr), k).astype(np.float32),
        clean=block_mean(log_compress(clean_db, dr), k).astype(np.float32),
        envelope=(envelope / np.sqrt(np.sum(h_power))).astype(np.float32),
        pixel_size_mm=(d_ax, d_lat),
        oversample=k,
        dynamic_range_db=dr,
        f0_mhz=float(f0_mhz),
        c_m_s=float(c_m_s),
        sigma_axial_mm=float(sigma_axial_mm),
        sigma_lateral_mm=float(sigma_lateral_mm),
    )


def multiplicative_uniform(x: np.ndarray, sigma: float, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Multiplicative zero-mean uniform noise: ``y = x + n * x``, ``n = sqrt(12) sigma (u - 0.5)``.

    ``u ~ U(0, 1)`` i.i.d., so ``E[n] = 0``, ``std(n) = sigma``, ``E[y] = x`` and
    ``std(y) = sigma * x``. The result is not clipped (it exceeds 1 where ``x (1 + n) > 1``).

    Args:
        x: (H, W) clean image in [0, 1].
        sigma: noise std relative to ``x``, > 0.
        seed: integer seed or ``numpy.random.Generator``.

    Returns:
        (H, W) float32 noisy image.
    """
    x = as_float_image(x, min_size=1, name="x")
    sigma = check_positive(sigma, "sigma")
    u = np.random.default_rng(seed).random(x.shape)
    return (x * (1.0 + math.sqrt(12.0) * sigma * (u - 0.5))).astype(np.float32)


def _draw(model: Gaussian | LogSpeckle, x: np.ndarray, seed: int) -> np.ndarray:
    """``model.sample(PRNGKey(seed), x)`` for a validated (H, W) image x in [0, 1], as float32 numpy."""
    x = as_float_image(x, min_size=1, name="x")
    return np.asarray(model.sample(jax.random.PRNGKey(seed), jnp.asarray(x)), dtype=np.float32)


def log_speckle(x: np.ndarray, sigma: float, gamma: float = 0.5, seed: int = 0) -> np.ndarray:
    """``y = x + x^gamma * sigma * eta``, ``eta ~ N(0, 1)``: :class:`usprior.physics.likelihoods.LogSpeckle`.

    Draws with ``LogSpeckle(sigma, gamma).sample(jax.random.PRNGKey(seed), x)`` (which floors
    ``x`` at ``likelihoods.EPS`` in the noise scale) and returns it as (H, W) float32 numpy.
    ``sigma`` must be > 0 and ``gamma`` >= 0 (else ``ValueError``).
    """
    return _draw(LogSpeckle.from_sigma(sigma, gamma), x, seed)


def gaussian(x: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """``y = x + sigma * n``, ``n ~ N(0, 1)``: :class:`usprior.physics.likelihoods.Gaussian`.

    Draws with ``Gaussian(sigma).sample(jax.random.PRNGKey(seed), x)`` and returns it as
    (H, W) float32 numpy. ``sigma`` must be > 0 (else ``ValueError``).
    """
    return _draw(Gaussian.from_sigma(sigma), x, seed)


# --- noise models: (noisy, target) pairs by name ----------------------------------------------


def noise_std(noisy: np.ndarray, target: np.ndarray) -> float:
    """The noise std ``sqrt(mean((noisy - target)^2))`` of a simulated pair (H, W), floored at 1e-3."""
    return max(float(np.sqrt(np.mean(np.square(np.asarray(noisy, np.float64) - target)))), 1e-3)


Corrupt = Callable[[np.ndarray, float, int], tuple[np.ndarray, np.ndarray]]
"""``corrupt(clean, level, seed) -> (noisy, target)``, both (H, W) float32 in [0, 1]."""


class NoiseModel(NamedTuple):
    """A named way to corrupt a clean image, with the target a denoiser should recover.

    ``corrupt(clean, level, seed) -> (noisy, target)``; ``level`` is the model's strength
    parameter, named ``level_name``. The pixel-wise models clip ``noisy`` to [0, 1] (a display
    pipeline saturates) and their target is the clean image; the convolutional model's target
    is its speckle-free image in the same display mapping.
    """

    corrupt: Corrupt
    level_name: str
    description: str


def _clipped(draw: Callable[..., np.ndarray]) -> Corrupt:
    """A pixel-wise simulator as a noise model: ``(clip(draw(x, level, seed), 0, 1), x)``."""

    def corrupt(clean: np.ndarray, level: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x = as_float_image(clean, min_size=1, name="clean")
        return np.clip(draw(x, level, seed=seed), 0.0, 1.0).astype(np.float32), x

    return corrupt


def _convolutional(clean: np.ndarray, level: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`convolutional_speckle` with dynamic range ``level`` dB: (noisy, clean display image)."""
    sim = convolutional_speckle(clean, dynamic_range_db=level, seed=seed)
    return sim.noisy, sim.clean


NOISE_MODELS: Mapping[str, NoiseModel] = MappingProxyType(
    {
        "gaussian": NoiseModel(_clipped(gaussian), "sigma", "y = clip(x + sigma n, 0, 1)"),
        "log_speckle": NoiseModel(
            _clipped(log_speckle), "sigma", "y = clip(x + sqrt(x) sigma eta, 0, 1) (Loupas / Coupé)"
        ),
        "multiplicative": NoiseModel(
            _clipped(multiplicative_uniform), "sigma", "y = clip(x + n x, 0, 1), n uniform with std sigma"
        ),
        "convolutional": NoiseModel(
            _convolutional,
            "dynamic range (dB)",
            "Yu & Acton B-mode: Gaussian scatterers x reflectivity, PSF, envelope, log compression "
            "(display speckle std ~ 5.6 dB / DR); target = the matching speckle-free display image",
        ),
    }
)
"""Noise models by name; ``level`` is sigma for the pixel-wise ones, the dynamic range in dB for ``convolutional``."""
