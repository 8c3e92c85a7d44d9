"""Latent MAP solver: correctness on an analytic case, descent, lam -> 0, determinism."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from flax import struct

from usprior.physics.likelihoods import Gaussian
from usprior.solvers.map import MAPConfig, map_denoise
from usprior.solvers.patches import extract_patches

FAST = MAPConfig(steps=40, learning_rate=0.05, stride=4, chunk=64)


@struct.dataclass
class IdentityPrior:
    """x = f^-1(z) = z: a 'prior' the solver has never heard of (any pytree with the interface)."""

    event_shape: tuple[int, int, int] = struct.field(pytree_node=False, default=(8, 8, 1))

    def encode(self, x):
        return x

    def decode(self, z):
        return z


@struct.dataclass
class Cauchy:
    """A user-defined heavy-tailed likelihood: nll = sum log(1 + ((y - x) / b)^2)."""

    b: float = 0.1

    def nll(self, x, y):
        return jnp.sum(jnp.log1p(jnp.square((y - x) / self.b)))


def noisy(image, sigma=0.1, seed=0):
    return np.clip(image + sigma * np.random.default_rng(seed).standard_normal(image.shape), 0, 1)


def test_solver_reaches_closed_form_with_any_prior(smooth_image):
    # argmin_z (z - y)^2 / (2 s^2) + lam z^2  =>  z* = y / (1 + 2 lam s^2), per pixel
    s, lam = 0.5, 1.0
    cfg = MAPConfig(steps=150, learning_rate=0.05, stride=8, chunk=64)
    res = map_denoise(smooth_image, IdentityPrior(), Gaussian(sigma=s), lam, cfg)
    np.testing.assert_allclose(res.image, smooth_image / (1 + 2 * lam * s**2), atol=3e-3)


def test_solver_accepts_user_likelihood(smooth_image):
    # identity prior: pixels decouple, and a (local) MAP x satisfies per pixel
    # dJ/dx = -2 (y - x) / (b^2 + (y - x)^2) + 2 lam x = 0
    y, lik, lam = noisy(smooth_image), Cauchy(b=0.1), 2.0
    res = map_denoise(y, IdentityPrior(), lik, lam, MAPConfig(steps=200, stride=8, chunk=64))
    x, r = res.image, y - res.image
    grad = -2 * r / (lik.b**2 + r**2) + 2 * lam * x
    assert res.objective[-1] < res.objective[0]
    assert np.abs(grad).max() < 0.05  # at the start (x = y) it is 2 lam y, about 2


def test_objective_decreases(tiny_prior, smooth_image):
    y = noisy(smooth_image)
    res = map_denoise(y, tiny_prior, Gaussian(sigma=0.1), 0.375, FAST)
    assert res.objective.shape == (FAST.steps,)
    assert res.objective[-1] < 0.8 * res.objective[0]
    assert res.image.shape == y.shape and np.all(np.isfinite(res.image))
    assert res.z.shape == (res.grid.n_patches, 8, 8, 1)


def test_lam_to_zero_returns_observation(tiny_prior, smooth_image):
    res = map_denoise(smooth_image, tiny_prior, Gaussian(sigma=0.1), 1e-8, FAST)
    np.testing.assert_allclose(res.image, smooth_image, atol=5e-3)


def test_deterministic(tiny_prior, smooth_image):
    a = map_denoise(smooth_image, tiny_prior, Gaussian(sigma=0.1), 0.375, FAST)
    b = map_denoise(smooth_image, tiny_prior, Gaussian(sigma=0.1), 0.375, FAST)
    np.testing.assert_array_equal(a.image, b.image)


def test_warm_start_uses_given_latents(tiny_prior, smooth_image):
    cold = map_denoise(smooth_image, tiny_prior, Gaussian(sigma=0.1), 0.375, FAST)
    warm = map_denoise(smooth_image, tiny_prior, Gaussian(sigma=0.1), 0.375, FAST, z0=cold.z)
    assert warm.objective[0] < cold.objective[0]
    with pytest.raises(ValueError, match="warm-start latents"):
        map_denoise(smooth_image, tiny_prior, Gaussian(sigma=0.1), 0.375, FAST, z0=cold.z[:-1])


def test_warm_start_from_previous_frame_needs_fewer_iterations(tiny_prior, smooth_image):
    """Cine: frame 2 (the scene moved by one pixel under the probe, with its speckle-like,
    spatially correlated noise moving with the tissue) reaches a tolerance of the optimum in
    fewer Adam steps from frame 1's latents than from the default (cold) start."""
    lik, cfg = Gaussian(sigma=0.1), MAPConfig(steps=60, stride=8)
    white = np.random.default_rng(1).standard_normal(smooth_image.shape)
    speckle = scipy.ndimage.gaussian_filter(white, 1.5)
    scene = np.clip(smooth_image + 0.1 * speckle / speckle.std(), 0, 1)
    frame1, frame2 = scene[:, :-1], scene[:, 1:]
    previous = map_denoise(frame1, tiny_prior, lik, 0.375, cfg)
    cold = map_denoise(frame2, tiny_prior, lik, 0.375, cfg).objective
    warm = map_denoise(frame2, tiny_prior, lik, 0.375, cfg, z0=previous.z).objective
    best = min(cold.min(), warm.min())
    target = best + 0.05 * (cold[0] - best)  # within 5 % of the cold start's gap to the optimum

    def iterations(trace):
        return int(np.argmax(trace <= target)) if np.any(trace <= target) else len(trace)

    assert iterations(warm) < iterations(cold) / 2


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(learning_rate=0.0), dict(decay=1.5), dict(chunk=0), dict(min_scale=-1.0), dict(init_blur=-1.0),
                                    dict(stop_rtol=-0.1), dict(stop_rtol=float("nan"))])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        MAPConfig(**kwargs)


def test_rejects_non_finite_images(tiny_prior, smooth_image):
    bad = smooth_image.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        map_denoise(bad, tiny_prior, Gaussian(sigma=0.1), 0.375, FAST)


def test_start_image_is_used(smooth_image):
    """With the identity prior one step from x0 moves each pixel by at most the learning rate
    (Adam's first step), so the result stays within it of the start image, not of y."""
    y = noisy(smooth_image)
    x0 = np.full_like(smooth_image, 0.5)
    res = map_denoise(y, IdentityPrior(), Gaussian(sigma=0.1), 0.375, MAPConfig(steps=1, stride=8, chunk=64), x0=x0)
    assert np.abs(res.image - x0).max() <= 0.05 + 1e-5
    with pytest.raises(ValueError, match="start image"):
        map_denoise(y, IdentityPrior(), Gaussian(sigma=0.1), 0.375, FAST, x0=x0[:-1])


def test_early_stop_reaches_the_full_objective(tiny_prior, smooth_image):
    """Stopped patches keep their best objective (flat trace tail) and the early-stopped solve
    ends within 1 % of the full solve's objective gap; stop_rtol = 0 runs every step."""
    y, lik = noisy(smooth_image), Gaussian(sigma=0.1)
    cfg = MAPConfig(steps=200, stride=8, chunk=64)
    full = map_denoise(y, tiny_prior, lik, 0.375, cfg)
    early = map_denoise(y, tiny_prior, lik, 0.375, MAPConfig(steps=200, stride=8, chunk=64, stop_rtol=1e-4))
    assert np.all(np.diff(early.objective) <= 1e-3 * early.objective[0])  # best values, never rising
    gap = full.objective[0] - full.objective[-1]
    assert early.objective[-1] <= full.objective[-1] + 0.01 * gap
    stopped = map_denoise(y, tiny_prior, lik, 0.375, MAPConfig(steps=200, stride=8, chunk=64, stop_rtol=1.0))
    # the first check (step 10) sets the reference, the second (step 20) stops every patch
    assert np.all(stopped.objective[20:] == stopped.objective[20])
    assert stopped.objective[20] < stopped.objective[0]


def test_saturated_patches_are_kept_and_the_rest_solved_as_before(tiny_prior, smooth_image):
    """skip_saturated: patches that are exactly 0 (a clipped frame's black margin) keep their
    value unsolved and get their encoding as latents; every other patch is solved as without
    skipping; a frame that is all black is returned as it is."""
    y = noisy(smooth_image).astype(np.float32)
    y[:, :12] = 0.0  # a black margin: the patches of the first columns are all zero
    lik, cfg = Gaussian(sigma=0.1), MAPConfig(steps=5, stride=4, chunk=16)
    full = map_denoise(y, tiny_prior, lik, 0.375, cfg)
    skip = map_denoise(y, tiny_prior, lik, 0.375, dataclasses.replace(cfg, skip_saturated=True))
    patches = extract_patches(jnp.asarray(y), full.grid)[..., None]
    saturated = np.all(np.asarray(patches) == 0.0, axis=(1, 2, 3))
    assert 0 < saturated.sum() < len(saturated)
    np.testing.assert_allclose(skip.z[~saturated], full.z[~saturated], atol=1e-6)
    np.testing.assert_allclose(skip.z[saturated], np.asarray(tiny_prior.encode(patches[saturated])), atol=1e-5)
    assert np.all(skip.image[:, :8] == 0.0) and not np.all(full.image[:, :8] == 0.0)
    black = map_denoise(np.zeros_like(y), tiny_prior, lik, 0.375, dataclasses.replace(cfg, skip_saturated=True))
    assert np.all(black.image == 0.0) and np.all(black.objective == 0.0)
