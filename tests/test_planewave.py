"""Tests for usprior.physics.planewave: pymust plane-wave B-mode simulation (skipped without pymust).

Every simulation is tiny: a 64-element array, a 6 mm x 6 mm field of view at 6-12 mm depth,
48 x 48 pixels (0.125 mm) and at most 3 plane waves, so the file runs in well under a minute
on two CPU cores.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pymust = pytest.importorskip("pymust")

from usprior.physics.planewave import (  # noqa: E402
    DEFAULT_PROBE,
    INSTALL_HINT,
    PlaneWaveSimulation,
    Probe,
    plane_wave_bmode,
    resolution_cell_mm2,
)
from usprior.physics.phantoms import Lesion, cyst_phantom  # noqa: E402

SMALL_PROBE = DEFAULT_PROBE._replace(n_elements=64)
GEOMETRY = {"depth_mm": (6.0, 12.0), "width_mm": 6.0, "probe": SMALL_PROBE}
SHAPE = (48, 48)
PIXEL_MM = 0.125


@pytest.fixture(scope="module")
def cyst():
    """A 1.5 mm-radius anechoic cyst in a uniform background (0.5), 3 angles, 1 scatterer / cell."""
    phantom = cyst_phantom(SHAPE, background=0.5, lesions={"cyst": Lesion(0.0, (0.5, 0.5), 0.25)}, margin=0.06)
    return phantom, plane_wave_bmode(phantom.image, n_angles=3, max_angle_deg=10.0, seed=0, **GEOMETRY)


def _uniform_sim(seed: int) -> PlaneWaveSimulation:
    image = np.full((24, 24), 0.5, dtype=np.float32)
    return plane_wave_bmode(
        image, shape=SHAPE, n_angles=1, scatterers_per_cell=0.5, seed=seed, element_splitting=1, **GEOMETRY
    )


def test_default_probe_is_pymust_l11_preset():
    preset = pymust.getparam("L11-5v")
    assert DEFAULT_PROBE.f0_mhz * 1e6 == pytest.approx(preset.fc)
    assert DEFAULT_PROBE.n_elements == preset.Nelements
    assert DEFAULT_PROBE.pitch_mm * 1e-3 == pytest.approx(preset.pitch)
    assert DEFAULT_PROBE.kerf_mm * 1e-3 == pytest.approx(preset.kerf)
    assert (DEFAULT_PROBE.pitch_mm - DEFAULT_PROBE.kerf_mm) * 1e-3 == pytest.approx(preset.width)
    assert DEFAULT_PROBE.bandwidth_pct == pytest.approx(preset.bandwidth)
    assert DEFAULT_PROBE.sampling_mhz == pytest.approx(4 * 7.6)


def test_outputs_shapes_dtypes_ranges(cyst):
    _, sim = cyst
    for image in (sim.noisy, sim.clean, sim.ideal):
        assert image.shape == SHAPE and image.dtype == np.float32
        assert np.all(np.isfinite(image)) and image.min() >= 0.0 and image.max() <= 1.0
    ka, kl = sim.oversample
    assert sim.envelope.shape == (SHAPE[0] * ka, SHAPE[1] * kl)
    assert sim.pixel_size_mm == pytest.approx((PIXEL_MM, PIXEL_MM))
    assert sim.z_mm == pytest.approx(6.0 + (np.arange(48) + 0.5) * PIXEL_MM)
    assert sim.x_mm == pytest.approx(-3.0 + (np.arange(48) + 0.5) * PIXEL_MM)
    assert sim.angles_deg == pytest.approx((-10.0, 0.0, 10.0))
    assert sim.element_splitting == 2  # pymust's default ceil(width / lambda_min) for this probe
    n = sim.amplitudes.shape[0]
    assert sim.scatterers_mm.shape == (n, 2)
    # N = density x (field of view + PSF margin) / resolution cell
    z, x = sim.scatterers_mm.T
    area = (z.max() - z.min()) * (x.max() - x.min())
    assert n == pytest.approx(area / resolution_cell_mm2(SMALL_PROBE), rel=0.05)
    assert z.min() < 6.0 and z.max() > 12.0 and x.min() < -3.0 and x.max() > 3.0  # margin around the field


def test_anechoic_cyst_is_darker_than_background(cyst):
    phantom, sim = cyst
    inside, background = phantom.masks["cyst"], phantom.masks["background"]
    contrast = sim.noisy[background].mean() - sim.noisy[inside].mean()
    assert contrast * sim.dynamic_range_db > 6.0  # > 6 dB darker
    assert sim.clean[inside].mean() < sim.clean[background].mean() - 0.1
    assert np.all(sim.ideal[inside] == 0.0)


def test_background_mean_matches_clean_target(cyst):
    """TGC + offset calibration: E[noisy] = clean in a uniform region (within ~1.5 dB here)."""
    phantom, sim = cyst
    background = phantom.masks["background"]
    assert sim.noisy[background].mean() == pytest.approx(sim.clean[background].mean(), abs=0.03)
    assert sim.clean[background].std() < 0.01  # the clean target is flat away from the cyst


def test_local_log_offset_follows_the_effective_density():
    """Each pixel's log offset is the uniform-region one where the scatterers are uniform, nearer
    the Rayleigh value (EULER_DB) inside an anechoic region lit only by the PSF's wide clutter
    tail, and larger next to a lone bright reflector (few scatterers dominate)."""
    from scipy.signal import fftconvolve

    from usprior.physics.display import EULER_DB
    from usprior.physics.planewave import _local_log_offset_db, _log_offset_db

    yy, xx = np.mgrid[-20:21, -20:21]
    psf = np.exp(-(yy**2 + xx**2) / 8.0) * np.exp(0.8j * yy) + 0.02 * np.exp(-(yy**2 + xx**2) / 200.0)
    psf /= np.sqrt(np.sum(np.abs(psf) ** 2))
    weight = np.ones((140, 140))
    weight[58:82, 58:82] = 0.0  # a 24 px anechoic square, centred at (70, 70)
    weight[115, 30] = 50.0  # a lone bright scatterer
    power = fftconvolve(weight, np.abs(psf) ** 2, mode="valid")
    offset = _local_log_offset_db(psf, 0.05, weight, power)  # valid grid: 100 x 100, (row, col) - 20
    uniform = _log_offset_db(psf, 0.05)
    assert uniform > EULER_DB + 0.5  # few scatterers per cell: well above Rayleigh
    assert offset[10, 80] == pytest.approx(uniform, abs=0.05)  # uniform tissue far from both
    assert EULER_DB - 0.1 < offset[50, 50] < uniform - 0.5  # the cyst centre: clutter only
    assert offset[95, 10] > uniform + 0.5  # on the bright scatterer


def test_bright_target_appears_at_its_depth():
    image = np.zeros(SHAPE, dtype=np.float32)
    image[30:33, 12:15] = 1.0  # centre: depth 6 + 31.5 px, lateral -3 + 13.5 px
    sim = plane_wave_bmode(image, n_angles=3, scatterers_per_cell=8.0, seed=3, **GEOMETRY)
    z0, x0 = 6.0 + 31.5 * PIXEL_MM, -3.0 + 13.5 * PIXEL_MM
    for img in (sim.noisy, sim.clean):
        row, col = np.unravel_index(np.argmax(img), img.shape)
        assert abs(sim.z_mm[row] - z0) <= 0.5 and abs(sim.x_mm[col] - x0) <= 0.5
    # only scatterers inside the bright block carry echoes
    z, x = sim.scatterers_mm.T
    near = (np.abs(z - z0) < 2.5 * PIXEL_MM) & (np.abs(x - x0) < 2.5 * PIXEL_MM)  # block +- 1 pixel
    outside = ~near
    assert np.all(sim.amplitudes[outside] == 0.0) and np.count_nonzero(sim.amplitudes) > 5
    # far from the target the image is much darker than at it
    assert sim.noisy[:10].mean() < sim.noisy.max() - 0.3


def test_seed_determinism():
    a, b, c = _uniform_sim(5), _uniform_sim(5), _uniform_sim(6)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    np.testing.assert_array_equal(a.scatterers_mm, b.scatterers_mm)
    assert np.abs(a.noisy - c.noisy).mean() > 0.02
    np.testing.assert_allclose(a.clean, c.clean, atol=1e-6)  # the clean target does not depend on the seed
    gen = plane_wave_bmode(
        np.full((24, 24), 0.5, np.float32), shape=SHAPE, n_angles=1, scatterers_per_cell=0.5,
        seed=np.random.default_rng(5), element_splitting=1, **GEOMETRY,
    )  # fmt: skip
    assert a.element_splitting == 1
    np.testing.assert_array_equal(a.noisy, gen.noisy)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": np.full((8, 8), 1.5)}, "must lie in"),
        ({"image": np.full((8, 8, 3), 0.5)}, "2-D"),
        ({"image": np.full((8, 8), np.nan)}, "NaN"),
        ({"shape": (0, 8)}, "shape"),
        ({"depth_mm": (10.0, 5.0)}, "depth_mm"),
        ({"depth_mm": (0.0, 5.0)}, "depth_mm"),
        ({"width_mm": -1.0}, "width_mm"),
        ({"n_angles": 0}, "n_angles"),
        ({"n_angles": 2.5}, "n_angles"),
        ({"n_angles": 3, "max_angle_deg": 0.0}, "max_angle_deg"),
        ({"max_angle_deg": 60.0}, "max_angle_deg"),
        ({"scatterers_per_cell": 0.0}, "scatterers_per_cell"),
        ({"dynamic_range_db": 0.0}, "dynamic_range_db"),
        ({"dynamic_range_db": float("inf")}, "dynamic_range_db"),
        ({"fnumber": -1.0}, "fnumber"),
        ({"c_m_s": 0.0}, "c_m_s"),
        ({"oversample": 0}, "oversample"),
        ({"db_thresh": 3.0}, "db_thresh"),
        ({"element_splitting": 0}, "element_splitting"),
        ({"max_scatterers": 0}, "max_scatterers"),
        ({"attenuation_db_cm_mhz": -0.5}, "attenuation"),
        ({"probe": Probe(kerf_mm=0.5)}, "kerf"),
        ({"probe": Probe(fs_mhz=10.0)}, "fs_mhz"),
        ({"probe": Probe(n_elements=4)}, "n_elements"),
        ({"scatterers_per_cell": 1e4}, "max_scatterers"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    args = {"image": np.full((8, 8), 0.5, np.float32)} | kwargs
    with pytest.raises(ValueError, match=match):
        plane_wave_bmode(**args)


def test_missing_pymust_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymust", None)  # makes `import pymust` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "usprior\[planewave\]"') as info:
        plane_wave_bmode(np.full((8, 8), 0.5, np.float32), **GEOMETRY)
    assert str(info.value) == INSTALL_HINT
