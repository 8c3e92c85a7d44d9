"""Tests for usprior.physics.simulate: speckle statistics, calibration, PSF geometry, pixel-wise noise, phantoms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from usprior.physics.likelihoods import Gaussian, LogSpeckle
from usprior.physics.display import EULER_DB, HEADROOM_DB
from usprior.physics.phantoms import DEFAULT_LESIONS, Lesion, cyst_phantom
from usprior.physics.simulate import (
    convolutional_speckle,
    gaussian,
    log_speckle,
    multiplicative_uniform,
    psf,
    wavelength_mm,
)

# A 25.6 mm x 25.6 mm uniform field simulated at 0.05 mm (lambda / 4.4 at 7 MHz): about 1400
# independent speckle cells (cell area 2 pi sx sy = 0.47 mm^2) on a 512 x 512 grid, fast on CPU.
COARSE = {"pixel_size_mm": (0.4, 0.4), "oversample": 8}
RAYLEIGH_LOG_STD_DB = 20.0 / math.log(10.0) * math.pi / math.sqrt(24.0)  # 5.57 dB


def _uniform(value: float = 0.5, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def _half_width(signal: np.ndarray, axis: int) -> float:
    """Lag (in samples, linearly interpolated) where the autocorrelation along ``axis`` first drops to 0.5."""
    centred = np.moveaxis(signal - signal.mean(), axis, -1)
    n = centred.shape[-1]
    spectrum = np.fft.rfft(centred, n=2 * n, axis=-1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=-1)[..., :n].mean(axis=tuple(range(centred.ndim - 1)))
    acf = acf / acf[0]
    k = int(np.argmax(acf < 0.5))
    return k - 1 + (acf[k - 1] - 0.5) / (acf[k - 1] - acf[k])


def test_rayleigh_log_std_of_envelope():
    sim = convolutional_speckle(_uniform(), seed=1, **COARSE)
    assert sim.envelope.shape == (64 * 8, 64 * 8)
    log_env = 20.0 * np.log10(sim.envelope)
    assert abs(log_env.std() - RAYLEIGH_LOG_STD_DB) < 0.4
    # E[envelope^2] = x^2 and the log-mean sits EULER_DB below the log of the RMS.
    assert np.mean(sim.envelope**2) == pytest.approx(0.25, rel=0.1)
    assert log_env.mean() == pytest.approx(20.0 * math.log10(0.5) - EULER_DB, abs=0.4)


def test_clean_matches_mean_of_noisy_in_display_domain():
    x, dr = 0.5, 50.0
    sim = convolutional_speckle(_uniform(x), dynamic_range_db=dr, seed=2, **COARSE)
    expected = 1.0 + (20.0 * math.log10(x) - EULER_DB - HEADROOM_DB) / dr  # 0.662
    np.testing.assert_allclose(sim.clean, expected, atol=1e-5)
    # Tolerance 0.01 display units = 0.5 dB; the observed spread over seeds is about 0.002.
    assert abs(float(sim.noisy.mean()) - expected) < 0.01
    assert sim.noisy.dtype == sim.clean.dtype == np.float32
    assert 0.0 <= sim.noisy.min() and sim.noisy.max() <= 1.0


def test_default_oversampling_resolves_the_carrier():
    sim = convolutional_speckle(_uniform(shape=(16, 16)))
    lam = wavelength_mm(7.0, 1540.0)
    assert sim.pixel_size_mm == (0.1, 0.1)
    assert sim.oversample == 4  # 0.1 mm / 4 = 0.025 mm <= lambda / 8 = 0.0275 mm
    assert sim.pixel_size_mm[0] / sim.oversample <= lam / 8
    assert sim.noisy.shape == sim.clean.shape == (16, 16)


@pytest.mark.parametrize(("sigma_axial", "sigma_lateral"), [(0.2, 0.5), (0.5, 0.2)])
def test_speckle_grain_follows_psf_widths(sigma_axial, sigma_lateral):
    sim = convolutional_speckle(
        _uniform(), seed=3, sigma_axial_mm=sigma_axial, sigma_lateral_mm=sigma_lateral, **COARSE
    )
    step = COARSE["pixel_size_mm"][0] / COARSE["oversample"]
    axial, lateral = (_half_width(sim.envelope, axis) * step for axis in (0, 1))
    assert axial / lateral == pytest.approx(sigma_axial / sigma_lateral, rel=0.25)


def test_psf_geometry():
    d_ax, d_lat = 0.013, 0.05
    h = psf((d_ax, d_lat))
    assert h.shape == (2 * math.ceil(0.75 / d_ax) + 1, 2 * math.ceil(0.9 / d_lat) + 1)
    assert h.shape[0] % 2 == 1 and h.shape[1] % 2 == 1
    np.testing.assert_allclose(h, h[:, ::-1], atol=1e-12)  # even laterally
    np.testing.assert_allclose(h, -h[::-1, :], atol=1e-12)  # odd axially (sine carrier)
    column = h[:, h.shape[1] // 2]
    k = np.flatnonzero(column[:-1] * column[1:] < 0)
    zeros = np.sort(np.r_[k + column[k] / (column[k] - column[k + 1]), np.flatnonzero(column == 0)])
    half_period_px = wavelength_mm(7.0, 1540.0) / 2 / d_ax
    assert np.diff(zeros).mean() == pytest.approx(half_period_px, rel=0.01)


def test_psf_rejects_coarse_axial_sampling():
    with pytest.raises(ValueError, match="oversample"):
        psf((0.06, 0.01))  # lambda / 4 = 0.055 mm
    with pytest.raises(ValueError, match="oversample"):
        convolutional_speckle(_uniform(shape=(8, 8)), pixel_size_mm=(0.1, 0.1), oversample=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dynamic_range_db": 0.0},
        {"dynamic_range_db": -10.0},
        {"sigma_axial_mm": -0.2},
        {"sigma_lateral_mm": 0.0},
        {"pixel_size_mm": (-0.1, 0.1)},
        {"pixel_size_mm": (0.1, 0.0)},
        {"oversample": 0},
        {"oversample": 2.5},
        {"f0_mhz": -7.0},
    ],
)
def test_convolutional_speckle_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        convolutional_speckle(_uniform(shape=(8, 8)), **kwargs)


BAD_IMAGES = [np.zeros(8), np.zeros((4, 4, 3)), np.full((4, 4), 1.5), np.full((4, 4), np.nan)]


@pytest.mark.parametrize("bad", BAD_IMAGES)
def test_bad_images_rejected(bad):
    with pytest.raises(ValueError):
        convolutional_speckle(bad)
    with pytest.raises(ValueError):
        multiplicative_uniform(bad, 0.1)


def test_convolutional_speckle_deterministic():
    x = cyst_phantom((16, 16)).image
    a, b = (convolutional_speckle(x, seed=5) for _ in range(2))
    c = convolutional_speckle(x, seed=6)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    np.testing.assert_array_equal(a.clean, c.clean)  # the target does not depend on the seed
    assert not np.array_equal(a.noisy, c.noisy)


def test_phantom_simulation_contrast():
    phantom = cyst_phantom((128, 128))  # lesion masks of about 300 pixels at 0.4 mm
    sim = convolutional_speckle(phantom.image, seed=7, **COARSE)
    clean = {name: float(sim.clean[m].mean()) for name, m in phantom.masks.items()}
    noisy = {name: float(sim.noisy[m].mean()) for name, m in phantom.masks.items()}
    assert clean["anechoic"] < 0.05 < clean["hypoechoic"] < clean["background"] < clean["hyperechoic"]
    assert noisy["anechoic"] < 0.05
    # About 4 standard deviations of the lesion means over seeds (0.01 hypoechoic, 0.005 hyperechoic).
    for name in ("hypoechoic", "background", "hyperechoic"):
        assert noisy[name] == pytest.approx(clean[name], abs=0.04)


def test_multiplicative_uniform_moments():
    x, sigma = 0.6, 0.2
    y = multiplicative_uniform(_uniform(x, (256, 256)), sigma, seed=0)
    assert y.dtype == np.float32
    assert y.mean() == pytest.approx(x, abs=0.002)
    assert y.std() == pytest.approx(sigma * x, rel=0.02)
    half_range = math.sqrt(3.0) * sigma * x  # n is uniform on [-sqrt(3) sigma, sqrt(3) sigma]
    assert y.min() >= x - half_range - 1e-6 and y.max() <= x + half_range + 1e-6
    np.testing.assert_array_equal(y, multiplicative_uniform(_uniform(x, (256, 256)), sigma, seed=0))
    assert not np.array_equal(y, multiplicative_uniform(_uniform(x, (256, 256)), sigma, seed=1))


def test_wrappers_reuse_likelihood_samplers():
    x = cyst_phantom((24, 32)).image
    key = jax.random.PRNGKey(4)
    direct_log = LogSpeckle(sigma=0.1, gamma=0.5).sample(key, jnp.asarray(x))
    direct_gauss = Gaussian(sigma=0.05).sample(key, jnp.asarray(x))
    got_log, got_gauss = log_speckle(x, 0.1, gamma=0.5, seed=4), gaussian(x, 0.05, seed=4)
    assert got_log.dtype == got_gauss.dtype == np.float32
    np.testing.assert_array_equal(got_log, np.asarray(direct_log))
    np.testing.assert_array_equal(got_gauss, np.asarray(direct_gauss))
    assert not np.array_equal(gaussian(x, 0.05, seed=5), got_gauss)


@pytest.mark.parametrize("sampler", [multiplicative_uniform, log_speckle, gaussian])
@pytest.mark.parametrize("sigma", [-0.1, 0.0, float("nan")])
def test_pixelwise_reject_bad_sigma(sampler, sigma):
    with pytest.raises(ValueError):
        sampler(_uniform(shape=(4, 4)), sigma)


def test_phantom_masks():
    shape = (96, 128)
    phantom = cyst_phantom(shape)
    assert phantom.image.shape == shape and phantom.image.dtype == np.float32
    assert set(phantom.masks) == {*DEFAULT_LESIONS, "background"}
    stacked = np.stack(list(phantom.masks.values()))
    assert stacked.shape[1:] == shape
    assert stacked.sum(axis=0).max() == 1  # pairwise disjoint
    assert all(m.sum() > 0 for m in phantom.masks.values())
    for name, lesion in DEFAULT_LESIONS.items():
        np.testing.assert_array_equal(phantom.image[phantom.masks[name]], np.float32(lesion.value))
    np.testing.assert_array_equal(phantom.image[phantom.masks["background"]], np.float32(0.5))
    assert not phantom.masks["background"][0].any() and not phantom.masks["background"][:, -1].any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"background": 1.5},
        {"lesions": {"a": Lesion(-0.1, (0.5, 0.5), 0.1)}},
        {"lesions": {"a": Lesion(0.2, (0.5, 0.5), 0.0)}},
        {"lesions": {"a": Lesion(0.2, (0.5, 0.4), 0.1), "b": Lesion(0.8, (0.5, 0.5), 0.1)}},
        {"lesions": {"background": Lesion(0.2, (0.5, 0.5), 0.1)}},
        {"margin": -0.01},
        {"shape": (0, 16)},
    ],
)
def test_phantom_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        cyst_phantom(**kwargs)
