"""The shipped checkpoints must beat a tuned box filter by a clear margin: tests that can tell a
broken model from a working one (a 3x3 box filter alone gains ~1 dB on these inputs).

Measured on CPU (usprior 0.1.0, jax 0.10.2): on held-out sagittal slice 59 with 50 dB
convolutional speckle the best box filter (9x9 to 11x11) reaches 26.87 dB from 22.94 dB noisy;
FFDNet 31.66, Pix2Pix 28.91, unrolled MAP 24.57. On the sharpest 64x64 crop of test slice 60
with Gaussian noise 0.1, the best box filter reaches 25.71 dB, MAP (sigma given, 30 steps) 27.07.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

import usprior
from usprior.amortized.checkpoint import load_model
from usprior.eval.metrics import psnr, tenengrad
from usprior.physics import simulate
from usprior.priors import data

BOX_SIZES = (3, 5, 7, 9, 11, 13)


def best_box(noisy: np.ndarray, target: np.ndarray) -> float:
    """PSNR of the box filter tuned on the very image it is scored on (an upper bound for it)."""
    return max(psnr(target, np.clip(uniform_filter(noisy, k, mode="reflect"), 0, 1)) for k in BOX_SIZES)


@pytest.fixture(scope="module")
def speckle_pair():
    clean = data.sagittal_slices("test")[0]  # held out from every training set; 233 x 189, odd-sized
    return simulate.NOISE_MODELS["convolutional"].corrupt(clean, 50.0, 0)


@pytest.mark.parametrize(
    ("method", "margin"),
    [
        ("ffdnet", 3.0),
        ("pix2pix", 1.0),
        pytest.param(
            "unrolled", 0.0,
            marks=pytest.mark.xfail(strict=True, reason="unrolled_us (8 learned steps) stays below a tuned box "
                                    "filter: 24.6 vs 26.9 dB; issue 13 item 6 gives it what it lacks"),
        ),
    ],
)
def test_shipped_networks_beat_a_tuned_box_filter(speckle_pair, method, margin):
    noisy, target = speckle_pair
    ckpt = load_model(f"{method}_us", kind=method)
    assert ckpt.metadata["teacher"] == "clean" and ckpt.metadata["val_psnr"] > ckpt.metadata["val_psnr_noisy"]
    out = usprior.denoise(noisy, method=method)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(target, out) > best_box(noisy, target) + margin


def test_shipped_unrolled_improves_on_the_noisy_input(speckle_pair):
    noisy, target = speckle_pair
    assert psnr(target, usprior.denoise(noisy, method="unrolled")) > psnr(target, noisy) + 1.3


def test_map_with_the_shipped_prior_beats_a_tuned_box_filter():
    """MAP (sigma given, 30 steps) on the sharpest 64x64 window of a held-out slice."""
    clean = data.sagittal_slices("test")[1]
    windows = [(r, c) for r in range(0, clean.shape[0] - 63, 20) for c in range(0, clean.shape[1] - 63, 20)]
    r, c = max(windows, key=lambda rc: tenengrad(clean[None, rc[0] : rc[0] + 64, rc[1] : rc[1] + 64])[0])
    crop = clean[r : r + 64, c : c + 64]
    noisy = np.clip(crop + 0.1 * np.random.default_rng(0).standard_normal(crop.shape), 0, 1).astype(np.float32)
    out = usprior.denoise(noisy, method="map", sigma=0.1, steps=30)
    assert psnr(crop, out) > best_box(noisy, crop) + 1.0
