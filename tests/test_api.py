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
    np.testing.assert_array_equal(by_obj, by_name)


def test_same_call_same_output(tiny_checkpoint):
    image = np.random.default_rng(2).uniform(0, 1, (20, 20))
    np.testing.assert_array_equal(run(image, tiny_checkpoint), run(image, tiny_checkpoint))


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
        (np.full((20, 20), 1.5), r"must lie in \[0, 1\]"),
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
