"""Noise-level estimation: right on white Gaussian noise and on speckle of known level (within 15 %)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.restoration import estimate_sigma

from usprior.physics import simulate
from usprior.physics.likelihoods import GammaSpeckle, Gaussian, LogSpeckle
from usprior.physics.noise import MIN_NOISE_STD, estimate_noise
from usprior.priors import data


@pytest.fixture(scope="module")
def slice_():
    return data.sagittal_slices("validation")[0]  # not a test slice: this calibrates a default


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1, 0.2, 0.3])
def test_white_gaussian_noise(slice_, sigma):
    noisy = slice_ + sigma * np.random.default_rng(1).standard_normal(slice_.shape)
    estimate = estimate_noise(noisy)
    assert not estimate.correlated
    assert estimate.std == pytest.approx(sigma, rel=0.15)
    assert Gaussian.from_image(noisy).sigma == pytest.approx(sigma, rel=0.15)


def _flat_speckle(shape=(128, 128), level=0.6, dynamic_range_db=50.0):
    """Convolutional B-mode speckle of a uniform reflectivity, and the speckle's true std."""
    sim = simulate.convolutional_speckle(np.full(shape, level, np.float32), dynamic_range_db=dynamic_range_db, seed=3)
    inner = (slice(16, -16), slice(16, -16))
    return sim.noisy, float(np.std(sim.noisy[inner] - sim.clean[inner]))


@pytest.mark.parametrize("dynamic_range_db", [40.0, 60.0])
def test_correlated_speckle(dynamic_range_db):
    """The wavelet estimate reads ~30x too low on correlated speckle; the window estimate does not."""
    noisy, truth = _flat_speckle(dynamic_range_db=dynamic_range_db)
    estimate = estimate_noise(noisy)
    assert estimate.correlated and float(estimate_sigma(noisy)) < 0.2 * truth
    assert estimate.std == pytest.approx(truth, rel=0.15)


@pytest.mark.parametrize("sigma", [0.1, 0.2])
def test_log_speckle_of_known_level(sigma):
    clean = np.full((128, 128), 0.49, np.float32)
    noisy = simulate.log_speckle(clean, sigma, gamma=0.5, seed=4)
    assert LogSpeckle.from_image(noisy).sigma == pytest.approx(sigma, rel=0.15)


def test_gamma_speckle_looks():
    clean = np.full((128, 128), 0.5, np.float32)
    noisy = GammaSpeckle(looks=16.0).sample(__import__("jax").random.PRNGKey(0), clean)
    assert GammaSpeckle.from_image(np.asarray(noisy)).looks == pytest.approx(16.0, rel=0.3)


def test_blank_and_tiny_images_get_the_floor():
    assert estimate_noise(np.zeros((40, 40))).std == MIN_NOISE_STD
    assert estimate_noise(np.full((4, 4), 0.3)).std == MIN_NOISE_STD
    with pytest.raises(ValueError, match="window"):
        estimate_noise(np.zeros((40, 40)), window=2)


@pytest.mark.parametrize("dynamic_range_db", [40.0, 60.0])
def test_speckle_std_reads_tissue_not_dark_or_flat_regions(dynamic_range_db):
    """A B-mode frame with tissue, a dark chamber whose speckle is compressed towards black, a
    flat display background and JPEG-like fine noise: the tissue's speckle std within 15 %."""
    from usprior.physics.noise import estimate_speckle_std

    reflectivity = np.full((160, 160), 0.6, np.float32)
    reflectivity[:, :60] = 0.08  # a dark chamber: 40 % of the frame
    sim = simulate.convolutional_speckle(reflectivity, dynamic_range_db=dynamic_range_db, seed=5)
    tissue = (slice(16, -16), slice(76, -16))
    truth = float(np.std(sim.noisy[tissue] - sim.clean[tissue]))
    frame = np.concatenate([sim.noisy, np.full((160, 40), 0.05, np.float32)], axis=1)  # flat background
    assert estimate_speckle_std(frame) == pytest.approx(truth, rel=0.15)
    assert estimate_speckle_std(np.zeros((40, 40))) == MIN_NOISE_STD
