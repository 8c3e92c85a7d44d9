"""The global patch-prior objective (EPLL / PatchNR style) couples the overlapping patches."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import usprior
from usprior.physics.likelihoods import Gaussian
from usprior.solvers.global_map import EPS, GlobalConfig, global_map_denoise, global_objective, prior_energy
from usprior.solvers.map import MAPConfig, map_denoise
from usprior.solvers.patches import extract_patches, patch_grid


def noisy_image(shape=(20, 24), sigma=0.1, seed=0):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    clean = (0.5 + 0.3 * np.sin(yy / 4.0) * np.cos(xx / 5.0)).astype(np.float32)
    return clean, (clean + sigma * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_objective_is_the_sum_of_its_patch_terms(tiny_prior, chunk):
    _, y = noisy_image()
    x = np.clip(y, 0.05, 0.95)
    grid = patch_grid(x.shape, 8, 4)
    patches = extract_patches(jnp.clip(jnp.asarray(x), EPS, 1 - EPS), grid)[..., None]
    by_hand = -2.0 * (4 / 8) ** 2 * float(jnp.sum(tiny_prior.log_prob(patches)))
    assert float(prior_energy(jnp.asarray(x), tiny_prior, grid, chunk)) == pytest.approx(by_hand, rel=1e-5)
    lik = Gaussian(0.1)
    total = float(global_objective(jnp.asarray(x), jnp.asarray(y), tiny_prior, lik, jnp.float32(0.5), grid, chunk))
    assert total == pytest.approx(float(lik.nll(jnp.asarray(x), jnp.asarray(y))) + 0.5 * by_hand, rel=1e-5)


def test_the_objective_decreases_and_the_best_iterate_is_returned(tiny_prior):
    _, y = noisy_image()
    cfg = GlobalConfig(steps=30, learning_rate=5e-3, stride=4, chunk=16)
    result = global_map_denoise(y, tiny_prior, Gaussian(0.1), 0.375, cfg=cfg)
    assert result.objective.shape == (30,) and np.all(np.isfinite(result.objective))
    assert result.objective[-1] < result.objective[0]
    grid = patch_grid(y.shape, 8, 4)
    final = float(global_objective(jnp.asarray(result.image), jnp.asarray(y), tiny_prior, Gaussian(0.1),
                                   jnp.float32(0.375), grid, 16))
    assert final <= result.objective.min() + 1e-3 * abs(result.objective.min())


def test_map_denoiser_with_the_global_objective(tiny_checkpoint):
    _, y = noisy_image((24, 28))
    latent = usprior.denoise(y, checkpoint=tiny_checkpoint, sigma=0.1, steps=5, stride=8, objective="latent")
    coupled = usprior.denoise(y, checkpoint=tiny_checkpoint, sigma=0.1, objective="global", global_steps=10)
    assert coupled.shape == y.shape and np.all(np.isfinite(coupled)) and not np.allclose(coupled, latent)
    with pytest.raises(ValueError, match="objective must be 'global' or 'latent'"):
        usprior.make_denoiser("map", checkpoint=tiny_checkpoint, objective="epll")


@pytest.mark.parametrize(
    ("x0", "message"),
    [(np.zeros((20, 23), np.float32), "x0"), (np.full((20, 24), np.nan, np.float32), "x0"),
     (np.zeros((2, 20, 24), np.float32), "x0")],
)
def test_a_bad_start_image_is_refused_by_both_solvers(tiny_prior, x0, message):
    """Both MAP solvers name the start image when it has the wrong shape or non-finite values."""
    _, y = noisy_image()
    with pytest.raises(ValueError, match=message):
        global_map_denoise(y, tiny_prior, Gaussian(0.1), 0.375, x0=x0, cfg=GlobalConfig(steps=1, stride=4))
    with pytest.raises(ValueError, match=message):
        map_denoise(y, tiny_prior, Gaussian(0.1), 1.0, MAPConfig(steps=1, stride=4), x0=x0)
