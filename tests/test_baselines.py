"""The library-backed baselines (NLM, TV, BM3D): they denoise, keep shapes and refuse bad input."""

from __future__ import annotations

import numpy as np
import pytest

from usprior.eval import metrics
from usprior.physics import simulate
from usprior.baselines import classical

CASES = {
    "nlm": (classical.nlm, {"h": 0.08}),
    "tv": (classical.tv, {"weight": 0.08}),
    "bm3d": (classical.bm3d, {"sigma": 0.08}),
}


@pytest.fixture(scope="module")
def pair():
    yy, xx = np.mgrid[0:45, 0:61]
    clean = (0.3 + 0.2 * (yy > 22) + 0.3 * np.sin(xx / 7.0) ** 2).astype(np.float32)
    return clean, np.clip(simulate.gaussian(clean, 0.08, seed=0), 0, 1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_improves_psnr_and_keeps_the_shape(name, pair):
    fn, params = CASES[name]
    clean, noisy = pair
    out = fn(noisy, **params)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert metrics.psnr(clean, out) > metrics.psnr(clean, noisy) + 3.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_and_parameters_raise(name, pair):
    fn, params = CASES[name]
    _, noisy = pair
    with pytest.raises(ValueError, match="2-D"):
        fn(noisy[None], **params)
    with pytest.raises(ValueError, match="NaN"):
        fn(np.where(noisy > 0.5, np.nan, noisy), **params)
    out = fn(noisy * 3.0 - 1.0, **params)  # additive noise: any finite value is an observation
    assert out.min() >= 0.0 and out.max() <= 1.0
    (key, value), = params.items()
    with pytest.raises(ValueError, match=key):
        fn(noisy, **{key: -value})


def test_nlm_rejects_bad_patch_size(pair):
    with pytest.raises(ValueError, match="patch_size"):
        classical.nlm(pair[1], patch_size=0)
