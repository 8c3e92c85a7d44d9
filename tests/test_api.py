"""Public API: output contract and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import usprior
from usprior.physics.likelihoods import Gaussian


def run(image, checkpoint, **kw):
    kw.setdefault("steps", 10)
    kw.setdefault("stride", 8)
    return usprior.denoise(image, checkpoint=checkpoint, **kw)


def test_output_contract(tiny_checkpoint):
    image = np.random.default_rng(0).uniform(0, 1, (37, 45))
    out = run(image, tiny_checkpoint, sigma=0.1)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_integer_images_and_likelihood_objects(tiny_checkpoint):
    image = np.random.default_rng(1).integers(0, 256, (24, 30), dtype=np.uint8)
    by_obj = run(image, tiny_checkpoint, likelihood=Gaussian(sigma=0.1))
    by_name = run(image, tiny_checkpoint, likelihood="gaussian", sigma=0.1)
    np.testing.assert_allclose(by_obj, by_name, atol=1e-5)  # BM3D's threads round differently


def test_same_call_same_output(tiny_checkpoint):
    """Latent MAP is bit-identical; the default starts from BM3D, whose threads round differently."""
    image = np.random.default_rng(2).uniform(0, 1, (20, 20))
    np.testing.assert_array_equal(run(image, tiny_checkpoint, method="map_latent"), run(image, tiny_checkpoint, method="map_latent"))
    np.testing.assert_allclose(run(image, tiny_checkpoint), run(image, tiny_checkpoint), atol=1e-5)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.full((20, 20), np.nan), "NaN or infinite"),
        (np.pad(np.full((19, 20), 0.5), ((0, 1), (0, 0)), constant_values=np.inf), "NaN or infinite"),
        (np.zeros((20, 20, 3)), "colour image"),
        (np.zeros(400), r"must be 2-D \(H, W\) or a stack"),
        (np.zeros((0, 20)), "empty"),
        (np.zeros((5, 20)), "smaller than the 8x8 patch"),
        (np.array([["a"] * 20] * 20), "numeric"),
        (np.ones((20, 20), dtype=bool), "numeric"),
        (-np.ones((20, 20), dtype=np.int16), "negative"),
    ],
)
def test_bad_images(tiny_checkpoint, image, match):
    with pytest.raises(ValueError, match=match):
        run(image, tiny_checkpoint, sigma=0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(method="bm4d"), ValueError, "unknown method"),
        (dict(likelihood="poisson"), ValueError, "unknown likelihood"),
        (dict(sigma=-0.1), ValueError, "sigma"),
        (dict(sigma=float("nan")), ValueError, "sigma"),
        (dict(sigma=0.1, lam=0.0), ValueError, "lam"),
        (dict(sigma=0.1, steps=0), ValueError, "steps"),
    ],
)
def test_bad_parameters(tiny_checkpoint, kwargs, error, match):
    with pytest.raises(error, match=match):
        run(np.full((20, 20), 0.5), tiny_checkpoint, **kwargs)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        usprior.denoise(np.full((40, 40), 0.5), sigma=0.1, checkpoint=tmp_path / "missing")


def test_gaussian_map_takes_the_observation_unclipped(tiny_checkpoint):
    """Gaussian noise pushes an observation below 0 and above 1; MAP models it as it comes (the
    output is clipped to [0, 1]); the speckle likelihoods need non-negative data and say so."""
    rng = np.random.default_rng(3)
    clean = np.clip(0.5 + 0.45 * np.sin(np.mgrid[0:24, 0:28][1] / 4.0), 0, 1)
    raw = clean + 0.2 * rng.standard_normal(clean.shape)
    assert raw.min() < 0 and raw.max() > 1
    out = run(raw, tiny_checkpoint, sigma=0.2)
    assert out.min() >= 0 and out.max() <= 1 and np.all(np.isfinite(out))
    assert not np.array_equal(out, run(np.clip(raw, 0, 1), tiny_checkpoint, sigma=0.2))
    with pytest.raises(ValueError, match=r"must lie in >= 0.*the log_speckle likelihood models non-negative intensities"):
        run(raw, tiny_checkpoint, sigma=0.2, likelihood="log_speckle")
    np.testing.assert_array_equal(run(raw + 1.0, tiny_checkpoint, sigma=0.2, likelihood="gamma").shape, raw.shape)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        usprior.denoise(raw, method="lee")  # the speckle filters work on display images


@pytest.mark.parametrize("method", ["nlm", "tv", "bm3d"])
def test_additive_noise_baselines_take_the_observation_unclipped(method):
    """NLM, TV and BM3D model additive noise: a dark region (0.05) under noise of std 0.1 keeps
    its level (the noisy region's own mean) from the raw observation, while clipping it first
    lifts the region's mean."""
    clean = np.full((48, 48), 0.05, np.float32)
    clean[:, 24:] = 0.6
    raw = clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    sigma = {"tv": None}.get(method, 0.1)
    from_raw = usprior.denoise(raw, method=method, sigma=sigma)
    from_clipped = usprior.denoise(np.clip(raw, 0, 1), method=method, sigma=sigma)
    dark = (slice(4, 44), slice(4, 20))
    level = raw[dark].mean()
    assert abs(from_raw[dark].mean() - level) < 0.2 * abs(from_clipped[dark].mean() - level)
    assert from_raw.min() >= 0 and from_raw.max() <= 1
