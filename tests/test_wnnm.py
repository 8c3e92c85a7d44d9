"""WNNM baseline: agreement with a loop-based NumPy reference, denoising quality, smoothing knob, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from usprior.baselines.wnnm import DEFAULTS, wnnm
from usprior.eval.metrics import psnr
from usprior.physics.simulate import gaussian, log_speckle

# Small parameters shared by the quality tests (one compilation for the 48 x 64 image).
FAST = dict(patch=5, n_similar=30, search=8, step=3, iterations=4)


def _grid(n_positions: int, step: int) -> list[int]:
    grid = list(range(0, n_positions, step))
    return grid if grid[-1] == n_positions - 1 else [*grid, n_positions - 1]


def wnnm_reference(y, sigma, *, patch, n_similar, search, step, iterations, rematch=2, delta=0.1,
                   c=2.0 * math.sqrt(2.0), lambda_=0.54, min_gap=1e-4):
    """Straightforward float64 WNNM (loops over references and candidates, one SVD per group).

    Same algorithm as ``usprior.baselines.wnnm`` (see its module docstring). Asserts that block
    matching is tie-free: the n-th and (n+1)-th candidate distances differ by more than
    ``min_gap`` (relative), so float32 rounding cannot change any group.
    """
    y = np.asarray(y, np.float64)
    height, width = y.shape
    p = patch
    rows, cols = height - p + 1, width - p + 1
    sy, sx = min(search, rows - 1), min(search, cols - 1)
    n = min(n_similar, (sy + 1) * (sx + 1))
    refs = [(i, j) for i in _grid(rows, step) for j in _grid(cols, step)]

    def patches(img):
        return np.array([img[i : i + p, j : j + p].ravel() for i in range(rows) for j in range(cols)])

    x = y.copy()
    groups = None
    for k in range(iterations):
        x = x + delta * (y - x)
        cur, noisy = patches(x), patches(y)
        if k % rematch == 0:
            groups = []
            for i, j in refs:
                cand = [(-1.0, i * cols + j)]  # the reference itself comes first
                for dy in range(-sy, sy + 1):
                    for dx in range(-sx, sx + 1):
                        qi, qj = i + dy, j + dx
                        if (dy, dx) != (0, 0) and 0 <= qi < rows and 0 <= qj < cols:
                            cand.append((float(np.sum((cur[i * cols + j] - cur[qi * cols + qj]) ** 2)), qi * cols + qj))
                cand.sort(key=lambda t: t[0])
                if len(cand) > n:
                    gap = cand[n][0] - cand[n - 1][0]
                    assert gap > min_gap * max(cand[n][0], 1e-12), "near-tie in block matching: pick another seed"
                groups.append([q for _, q in cand[:n]])
        acc = np.zeros_like(cur)
        cnt = np.zeros(rows * cols)
        for (i, j), group in zip(refs, groups):
            r = i * cols + j
            if k == 0:
                sig = sigma
            else:
                sig = lambda_ * math.sqrt(max(sigma**2 - np.mean((noisy[r] - cur[r]) ** 2), 0.0))
            mat = cur[group].T  # (p^2, n)
            mean = mat.mean(axis=1, keepdims=True)
            u, s, vt = np.linalg.svd(mat - mean, full_matrices=False)
            s_clean = np.sqrt(np.maximum(s**2 - n * sig**2, 0.0))
            w = c * math.sqrt(n) / (s_clean + 1e-8)
            est = u @ np.diag(np.maximum(s - w * sig**2, 0.0)) @ vt + mean
            for col, q in enumerate(group):
                acc[q] += est[:, col]
                cnt[q] += 1
        num, den = np.zeros_like(y), np.zeros_like(y)
        for q in range(rows * cols):
            i, j = divmod(q, cols)
            num[i : i + p, j : j + p] += acc[q].reshape(p, p)
            den[i : i + p, j : j + p] += cnt[q]
        x = num / den
    return np.clip(x, 0.0, 1.0)


def _textured(shape, seed):
    """Smooth structure plus texture plus Gaussian noise (0.08), clipped to [0, 1]."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    clean = 0.5 + 0.25 * np.sin(yy / 3.0) * np.cos(xx / 4.0) + 0.15 * (xx > shape[1] / 2)
    noise = 0.08 * np.random.default_rng(seed).standard_normal(shape)
    return np.clip(clean + noise, 0.0, 1.0).astype(np.float32)


def _phantom(shape=(48, 64)):
    """Piecewise-smooth test image: background ramp, a bright disk, a dark bar: (48, 64) in [0.1, 0.9]."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = 0.35 + 0.15 * xx / shape[1]
    img = np.where((yy - 22) ** 2 + (xx - 20) ** 2 < 12**2, 0.8, img)
    img = np.where((xx > 40) & (xx < 50) & (yy > 8), 0.15, img)
    return img.astype(np.float32)


def _tv(img):
    return float(np.abs(np.diff(img, axis=0)).sum() + np.abs(np.diff(img, axis=1)).sum())


TINY = dict(patch=4, n_similar=12, search=5, step=2, iterations=3, rematch=2)
TOL = 1e-5  # float32 JAX vs float64 NumPy: observed about 2e-7


@pytest.fixture(scope="module")
def tiny_case():
    y = _textured((16, 20), seed=3)
    return y, wnnm(y, 0.1, **TINY)


def test_matches_numpy_reference(tiny_case):
    y, out = tiny_case
    ref = wnnm_reference(y, 0.1, **TINY)
    assert out.shape == (16, 20) and out.dtype == np.float32
    err = np.abs(out - ref).max()
    assert err < TOL, f"max |jax - reference| = {err:.2e}"
    assert np.abs(out - y).max() > 0.1  # it did denoise: the agreement is not trivial


@pytest.mark.parametrize(
    "change",
    [dict(c=math.sqrt(2.0)), dict(lambda_=0.8), dict(delta=0.2), dict(rematch=1), dict(n_similar=11)],
)
def test_reference_comparison_is_sensitive(tiny_case, change):
    """A wrong weight constant, noise rule, regularisation, matching schedule or group size misses by >> TOL."""
    y, out = tiny_case
    ref = wnnm_reference(y, 0.1, **{**TINY, **change})
    assert np.abs(out - ref).max() > 100 * TOL  # observed 8e-3 .. 6e-2


def test_matches_reference_odd_size_clipped_groups():
    """Odd 11 x 13 image, step 3 (the last row/column added to the grid), search window and group clipped."""
    y = _textured((11, 13), seed=5)
    params = dict(patch=3, n_similar=50, search=3, step=3, iterations=2, rematch=1, lambda_=0.6)
    out = wnnm(y, 0.12, **params)
    ref = wnnm_reference(y, 0.12, **params)  # n = min(50, 4 * 4) = 16 patches per group
    assert out.shape == (11, 13)
    assert np.abs(out - ref).max() < TOL


@pytest.fixture(scope="module")
def phantom():
    return _phantom()


def test_improves_psnr_gaussian(phantom):
    noisy = np.clip(gaussian(phantom, 0.1, seed=0), 0.0, 1.0)
    out = wnnm(noisy, 0.1, **FAST)
    before, after = psnr(phantom, noisy), psnr(phantom, out)
    assert after > before + 10.0, (before, after)  # observed 20.0 -> 32.8 dB


def test_improves_psnr_log_speckle(phantom):
    noisy = np.clip(log_speckle(phantom, 0.12, seed=1), 0.0, 1.0)
    out = wnnm(noisy, 0.09, **FAST)  # sigma ~ the noise std at mid grey: 0.12 * sqrt(0.5)
    before, after = psnr(phantom, noisy), psnr(phantom, out)
    assert after > before + 9.0, (before, after)  # observed 22.0 -> 33.0 dB


def test_larger_sigma_smooths_more(phantom):
    noisy = np.clip(gaussian(phantom, 0.1, seed=2), 0.0, 1.0)
    tvs = [_tv(wnnm(noisy, s, **FAST)) for s in (0.03, 0.1, 0.3)]
    assert _tv(noisy) > tvs[0] > tvs[1] > tvs[2], tvs


def test_estimated_sigma_and_determinism(phantom):
    noisy = np.clip(gaussian(phantom, 0.1, seed=3), 0.0, 1.0)
    a, b = wnnm(noisy, **FAST), wnnm(noisy, **FAST)
    np.testing.assert_array_equal(a, b)
    assert psnr(phantom, a) > psnr(phantom, noisy) + 9.0  # observed 19.9 -> 31.1 dB (estimate 0.094)
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0


def test_constant_image_stays_constant(phantom):
    const = np.full(phantom.shape, 0.4, np.float32)
    np.testing.assert_allclose(wnnm(const, 0.1, **FAST), 0.4, atol=1e-6)
    np.testing.assert_allclose(wnnm(const, **FAST), 0.4, atol=1e-6)  # estimated sigma 0: returned as is


def test_integer_image_is_rescaled(phantom):
    img8 = np.round(phantom * 255).astype(np.uint8)
    np.testing.assert_allclose(wnnm(img8, 0.1, **FAST), wnnm(img8.astype(np.float32) / 255, 0.1, **FAST), atol=1e-6)


def test_defaults_documented():
    assert DEFAULTS["delta"] == 0.1 and DEFAULTS["c"] == pytest.approx(2 * math.sqrt(2))
    assert 1 <= DEFAULTS["step"] <= DEFAULTS["patch"]


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((4, 20), np.float32), {}, "smaller than"),
        (np.zeros((20, 20, 3), np.float32), {}, "2-D"),
        (np.full((20, 20), 1.5, np.float32), {}, r"\[0, 1\]"),
        (np.full((20, 20), np.nan, np.float32), {}, "NaN"),
        (np.zeros((20, 20), np.float32), {"sigma": -0.1}, "sigma"),
        (np.zeros((20, 20), np.float32), {"sigma": 0.0}, "sigma"),
        (np.zeros((20, 20), np.float32), {"sigma": float("inf")}, "sigma"),
        (np.zeros((20, 20), np.float32), {"delta": 0.0}, "delta"),
        (np.zeros((20, 20), np.float32), {"delta": 1.5}, "delta"),
        (np.zeros((20, 20), np.float32), {"c": -1.0}, "c must"),
        (np.zeros((20, 20), np.float32), {"lambda_": 0.0}, "lambda_"),
        (np.zeros((20, 20), np.float32), {"patch": 0}, "patch"),
        (np.zeros((20, 20), np.float32), {"patch": 4.5}, "patch"),
        (np.zeros((20, 20), np.float32), {"n_similar": 0}, "n_similar"),
        (np.zeros((20, 20), np.float32), {"search": 0}, "search"),
        (np.zeros((20, 20), np.float32), {"iterations": 0}, "iterations"),
        (np.zeros((20, 20), np.float32), {"rematch": True}, "rematch"),
        (np.zeros((20, 20), np.float32), {"step": 7, "patch": 6}, "step must be <= patch"),
    ],
)
def test_bad_inputs_raise(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        wnnm(image, **{"sigma": 0.1, **kwargs})
