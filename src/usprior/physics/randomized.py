"""Randomised B-mode physics: training pairs that vary like real scanners do.

One simulator setting (one PSF, one pixel size, one display mapping) teaches a network one
look; real scanners differ in all of them. :func:`random_bmode_pair` draws, per sample, from
:class:`PhysicsRanges`:

* the pulse: centre frequency f0 and the axial / lateral PSF widths (Yu & Acton model,
  :func:`usprior.physics.simulate.psf`);
* the pixel size, through the speckle *grain*: the PSF's full width at half maximum measured in
  pixels, 1 to 6 px on each axis (so the same anatomy is seen at many resolutions);
* the displayed dynamic range (40-80 dB);
* gain and offset of the display, and a depth-gain ramp (time-gain compensation);
* an electronic noise floor (probability ``p_floor``): correlated complex Gaussian noise of the
  speckle's grain added to the echo *power* at a displayed level ``noise_floor`` (display
  units, 0-0.15), so anechoic regions (blood, cysts, the far field) hold the dim, grainy clutter
  real scanners show instead of pure black; its target is the floor's mean level;
* a dark background: with probability ``p_sector`` the image is cut to a sector (a fan from a
  virtual apex above the image) with black outside, as on phased / curved arrays;
* lossy JPEG of the noisy image (quality 50-95) with probability ``p_jpeg``, as in cine exports.

Gain, offset, ramp and sector apply to the noisy image and its target alike (they are display,
not noise); the noise floor to both, as noise and as its mean; JPEG only to the noisy one. The
target is the speckle-free image in the same display mapping
(:func:`usprior.physics.simulate.convolutional_speckle`), so a network learns to remove speckle
and compression, not to change the display.

:func:`random_planewave_pair` draws a plane-wave acquisition instead (:class:`PlaneWaveRanges`:
number and spread of the steered waves, scatterer density, dynamic range, field of view and so
pixel size) and simulates it with pymust (:func:`usprior.physics.planewave.plane_wave_bmode`):
a real array's PSF with sidelobe and grating-lobe clutter, which the convolutional model lacks.
It costs ~10-15 s per 128 x 128 image on one core (the convolutional draw: ~1 s), so it is a
small fraction of a training set.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import Any, NamedTuple

import numpy as np
import scipy.ndimage as ndi

from usprior.physics.display import EULER_DB, log_compress, power_db
from usprior.physics.simulate import convolutional_speckle
from usprior.validation import as_float_image, check_unit

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
MAX_OVERSAMPLE = 8


@dataclasses.dataclass(frozen=True)
class PhysicsRanges:
    """The ranges every draw of :func:`random_bmode_pair` is uniform in (bounds included)."""

    f0_mhz: tuple[float, float] = (2.5, 12.0)
    sigma_axial_mm: tuple[float, float] = (0.1, 0.4)
    sigma_lateral_mm: tuple[float, float] = (0.15, 0.6)
    grain_px: tuple[float, float] = (1.0, 6.0)
    dynamic_range_db: tuple[float, float] = (40.0, 80.0)
    gain: tuple[float, float] = (0.7, 1.3)
    offset: tuple[float, float] = (-0.1, 0.1)
    depth_gain: tuple[float, float] = (-0.3, 0.3)
    jpeg_quality: tuple[int, int] = (50, 95)
    noise_floor: tuple[float, float] = (0.0, 0.15)
    p_floor: float = 0.7
    p_sector: float = 0.5
    p_jpeg: float = 0.5

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple) and not (len(value) == 2 and value[0] <= value[1]):
                raise ValueError(f"{field.name} must be a (low, high) pair with low <= high, got {value!r}")
        check_unit(self.p_sector, "p_sector")
        check_unit(self.p_floor, "p_floor")
        check_unit(self.p_jpeg, "p_jpeg")
        if self.grain_px[0] <= 0 or self.f0_mhz[0] <= 0 or self.dynamic_range_db[0] <= 0:
            raise ValueError("grain_px, f0_mhz and dynamic_range_db must be positive")


class RandomPair(NamedTuple):
    """A noisy B-mode image, its speckle-free target (both (H, W) float32 in [0, 1]) and the
    parameters drawn for it."""

    noisy: np.ndarray
    target: np.ndarray
    params: dict[str, Any]


def _sector(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A fan-shaped mask: rays from an apex above the image within a random half-angle."""
    h, w = shape
    apex_row = -rng.uniform(0.05, 0.5) * h
    half_angle = rng.uniform(0.35, 0.75)  # radians, about 20-43 degrees
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    angle = np.arctan2(cols - w / 2.0, rows - apex_row)
    return np.abs(angle) <= half_angle


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer), np.float32) / 255.0


def _noise_floor(noisy: np.ndarray, target: np.ndarray, level: float, dynamic_range_db: float,
                 grain: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Add a noise floor at the displayed ``level`` to display images v = clip(1 + dB / DR, 0, 1).

    P = 10^((v - 1) DR / 10) is the echo power (a clipped 0 reads -DR dB); the noisy power gets
    P_f n, n = |g (*) w|^2 normalised to mean 1 (w complex white noise, g a Gaussian of the
    speckle grain), the target P_f 10^(-EULER_DB / 10): the displayed mean of that noise.
    """
    p_floor = 10.0 ** ((level - 1.0) * dynamic_range_db / 10.0)
    sigmas = tuple(g / FWHM_PER_SIGMA for g in grain)
    field = ndi.gaussian_filter(rng.standard_normal(noisy.shape), sigmas) + 1j * ndi.gaussian_filter(rng.standard_normal(noisy.shape), sigmas)
    n = np.abs(field) ** 2
    n /= n.mean()
    power = lambda v: 10.0 ** ((v.astype(np.float64) - 1.0) * dynamic_range_db / 10.0)  # noqa: E731 - inverts log_compress
    return (log_compress(power_db(power(noisy) + p_floor * n), dynamic_range_db),
            log_compress(power_db(power(target) + p_floor * 10.0 ** (-EULER_DB / 10.0)), dynamic_range_db))


def random_bmode_pair(clean: np.ndarray, seed: int | np.random.Generator, ranges: PhysicsRanges = PhysicsRanges()) -> RandomPair:
    """Draw physics from ``ranges`` and simulate one (noisy, target) pair of the reflectivity
    ``clean`` (H, W) in [0, 1] (see the module docstring). Deterministic for an integer seed."""
    x = as_float_image(clean, min_size=8, name="clean")
    rng = np.random.default_rng(seed)
    u = lambda pair: float(rng.uniform(*pair))  # noqa: E731 - one uniform draw from a (low, high) range
    f0, s_ax, s_lat = u(ranges.f0_mhz), u(ranges.sigma_axial_mm), u(ranges.sigma_lateral_mm)
    grain = (u(ranges.grain_px), u(ranges.grain_px))
    pixel = (FWHM_PER_SIGMA * s_ax / grain[0], FWHM_PER_SIGMA * s_lat / grain[1])
    dr = u(ranges.dynamic_range_db)
    wavelength = 1540.0 / f0 * 1e-3
    # the simulator's own choice (axial fine pixel <= lambda / 8), capped at 8 where lambda / 4
    # (its validity limit) allows: the cost grows with the square of the oversampling
    auto, least = math.ceil(pixel[0] * 8 / wavelength - 1e-9), math.ceil(pixel[0] * 4 / wavelength - 1e-9)
    oversample = max(1, min(auto, max(least, MAX_OVERSAMPLE)))
    margin = max(16, x.shape[0] // 4)  # reflect-padded in depth: the envelope's periodic Hilbert
    padded = np.pad(x, ((margin, margin), (0, 0)), mode="reflect")  # transform wraps into the margin, not the image
    sim = convolutional_speckle(padded, pixel_size_mm=pixel, oversample=oversample, dynamic_range_db=dr, seed=rng,
                                f0_mhz=f0, sigma_axial_mm=s_ax, sigma_lateral_mm=s_lat)
    sim = sim._replace(noisy=sim.noisy[margin:-margin], clean=sim.clean[margin:-margin])
    noisy, target = sim.noisy, sim.clean
    floor = u(ranges.noise_floor) if rng.uniform() < ranges.p_floor else None
    if floor is not None:
        noisy, target = _noise_floor(noisy, target, floor, dr, grain, rng)
    gain, offset, ramp = u(ranges.gain), u(ranges.offset), u(ranges.depth_gain)
    depth = np.linspace(-0.5, 0.5, x.shape[0], dtype=np.float32)[:, None]
    display = lambda image: np.clip(image * gain * (1.0 + ramp * depth) + offset, 0.0, 1.0)  # noqa: E731
    noisy, target = display(noisy), display(target)
    sector = bool(rng.uniform() < ranges.p_sector)
    if sector:
        keep = _sector(x.shape, rng)
        noisy, target = np.where(keep, noisy, 0.0), np.where(keep, target, 0.0)
    quality = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1)) if rng.uniform() < ranges.p_jpeg else None
    if quality is not None:
        noisy = _jpeg(noisy, quality)
    params = {"f0_mhz": f0, "sigma_axial_mm": s_ax, "sigma_lateral_mm": s_lat, "grain_px": grain,
              "pixel_size_mm": pixel, "oversample": sim.oversample, "dynamic_range_db": dr, "noise_floor": floor, "gain": gain,
              "offset": offset, "depth_gain": ramp, "sector": sector, "jpeg_quality": quality}
    return RandomPair(noisy.astype(np.float32), target.astype(np.float32), params)


@dataclasses.dataclass(frozen=True)
class PlaneWaveRanges:
    """The ranges every draw of :func:`random_planewave_pair` is uniform in (bounds included;
    ``n_angles``: one of the listed counts). The field of view (mm) is drawn, the output
    ``shape`` is fixed, so the pixel size (0.09-0.19 mm at 128 px) and the grain in pixels vary.
    The defaults keep a draw at <= ~10,000 scatterers (~10-15 s with element splitting 1)."""

    n_angles: tuple[int, ...] = (1, 3, 5)
    max_angle_deg: tuple[float, float] = (5.0, 15.0)
    scatterers_per_cell: tuple[float, float] = (0.5, 0.8)
    dynamic_range_db: tuple[float, float] = (40.0, 80.0)
    depth_start_mm: tuple[float, float] = (3.0, 10.0)
    depth_span_mm: tuple[float, float] = (12.0, 24.0)
    width_mm: tuple[float, float] = (12.0, 24.0)
    shape: tuple[int, int] = (128, 128)


def random_planewave_pair(clean: np.ndarray, seed: int | np.random.Generator,
                          ranges: PlaneWaveRanges = PlaneWaveRanges()) -> RandomPair:
    """Draw an acquisition from ``ranges`` and simulate one plane-wave (noisy, target) pair of the
    reflectivity ``clean`` (H, W) in [0, 1], both ``ranges.shape``: the target is the simulation's
    speckle-free ``clean`` image in the same display (with its own log offset per pixel). Needs
    pymust. Deterministic for an integer seed."""
    from usprior.physics.planewave import plane_wave_bmode

    x = as_float_image(clean, min_size=8, name="clean")
    rng = np.random.default_rng(seed)
    u = lambda pair: float(rng.uniform(*pair))  # noqa: E731 - one uniform draw from a (low, high) range
    n_angles = int(rng.choice(ranges.n_angles))
    spread, density, dr = u(ranges.max_angle_deg), u(ranges.scatterers_per_cell), u(ranges.dynamic_range_db)
    z0 = u(ranges.depth_start_mm)
    depth = (z0, z0 + u(ranges.depth_span_mm))
    width = u(ranges.width_mm)
    sim = plane_wave_bmode(x, shape=ranges.shape, depth_mm=depth, width_mm=width, n_angles=n_angles,
                           max_angle_deg=spread if n_angles > 1 else 0.0, scatterers_per_cell=density,
                           dynamic_range_db=dr, seed=rng, element_splitting=1)
    params = {"n_angles": n_angles, "max_angle_deg": spread if n_angles > 1 else 0.0, "scatterers_per_cell": density,
              "dynamic_range_db": dr, "depth_mm": depth, "width_mm": width, "pixel_size_mm": sim.pixel_size_mm}
    return RandomPair(sim.noisy, sim.clean, params)
