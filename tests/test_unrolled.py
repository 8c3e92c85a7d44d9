"""Unrolled (deep-unfolded) latent MAP: shapes, descent, exactness against a reference loop,
training, checkpoints and input validation (tiny 8x8-patch prior, CPU)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.ndimage

from usprior.solvers.unrolled import (
    UnrolledConfig,
    create_unrolled_state,
    init_unrolled,
    unrolled_denoise,
    unrolled_latents,
    unrolled_loss,
    unrolled_patches,
    unrolled_train_step,
)
from usprior.amortized.checkpoint import load_model, save_model
from usprior.io.checkpoints import write_manifest
from usprior.solvers.unrolled import _gaussian_blur
from usprior.physics.likelihoods import Gaussian
from usprior.solvers.patches import extract_patches, patch_grid
from usprior.solvers.engine import patch_problem
from usprior.solvers.map import encode_start, latent_objective

CFG = UnrolledConfig(steps=3, init_lr=0.01)
LIK = Gaussian(sigma=0.1)
objective = jax.jit(jax.vmap(latent_objective, in_axes=(0, 0, None, None, None)))


def noisy_image(shape: tuple[int, int] = (21, 30), sigma: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    clean = (0.5 + 0.3 * np.sin(yy / 4.0) * np.cos(xx / 5.0)).astype(np.float32)
    noise = sigma * np.random.default_rng(seed).standard_normal(shape)
    return clean, np.clip(clean + noise, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def patch_batch(tiny_prior):
    """16 aligned noisy / clean 8x8 patches and the MAP solver's start latents."""
    clean, noisy = noisy_image()
    grid = patch_grid(clean.shape, 8, 8)
    y = extract_patches(jnp.asarray(noisy), grid)[:16, ..., None]
    t = extract_patches(jnp.asarray(clean), grid)[:16, ..., None]
    z0 = encode_start(tiny_prior, patch_problem(noisy, 8, 8, CFG.init_blur).start[:16])
    return y, t, z0


def test_denoise_odd_size_finite_deterministic(tiny_prior):
    _, noisy = noisy_image((21, 30))
    params = init_unrolled(CFG)
    # 7 x 9 = 63 patches in 2 balanced chunks of 32, the last padded by a repeated patch
    out = unrolled_denoise(params, CFG, noisy, tiny_prior, LIK, stride=4, chunk=32)
    assert out.shape == (21, 30) and out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, unrolled_denoise(params, CFG, noisy, tiny_prior, LIK, stride=4, chunk=32))


def test_steps_lower_the_objective(tiny_prior, patch_batch):
    y, _, z0 = patch_batch
    z = unrolled_latents(init_unrolled(CFG), CFG, tiny_prior, LIK, y, z0)
    before = objective(z0, y, tiny_prior, LIK, CFG.init_lam)
    after = objective(z, y, tiny_prior, LIK, CFG.init_lam)
    assert np.all(np.asarray(after) < np.asarray(before))


def test_matches_optax_adam_with_the_learned_schedule(tiny_prior, patch_batch):
    y, _, z0 = patch_batch
    params = {  # distinct values per step, to catch a mix-up of steps or of lr and lam
        "log_lr": jnp.log(jnp.asarray([0.02, 0.01, 0.005], jnp.float32)),
        "log_lam": jnp.log(jnp.asarray([0.3, 0.5, 0.4], jnp.float32)),
    }
    grad = jax.jit(jax.grad(latent_objective))
    adam = optax.scale_by_adam()  # b1 0.9, b2 0.999, eps 1e-8: the MAP solver's Adam, without its lr
    reference = []
    for yk, zk in zip(y[:2], z0[:2]):  # two patches suffice; the batch shares one compilation
        state = adam.init(zk)
        for lr, lam in zip(np.exp(params["log_lr"]), np.exp(params["log_lam"])):
            update, state = adam.update(grad(zk, yk, tiny_prior, LIK, lam), state)
            zk = zk - lr * update
        reference.append(zk)
    z = unrolled_latents(params, CFG, tiny_prior, LIK, y, z0)
    np.testing.assert_allclose(z[:2], jnp.stack(reference), atol=1e-5)
    np.testing.assert_allclose(unrolled_patches(params, CFG, tiny_prior, LIK, y, z0), tiny_prior.decode(z), atol=1e-6)


@pytest.mark.parametrize("blur", [0.0, 1.0, 2.5])
def test_patch_blur_matches_scipy(patch_batch, blur):
    """The per-patch start of :func:`patch_start` blurs like ``patch_problem`` (scipy, reflect)."""
    y = np.asarray(patch_batch[0][:4])
    expected = scipy.ndimage.gaussian_filter(y, (0, blur, blur, 0), mode="reflect") if blur else y
    np.testing.assert_allclose(_gaussian_blur(jnp.asarray(y), blur), expected, atol=1e-6)


@pytest.fixture(scope="module")
def trained(tiny_prior, patch_batch):
    y, t, z0 = patch_batch
    state = create_unrolled_state(CFG)
    losses = []
    for _ in range(4):  # the loss returned is the one before the update
        state, loss = unrolled_train_step(state, tiny_prior, LIK, y, t, z0)
        losses.append(float(loss))
    return state, losses


def test_training_lowers_the_loss(trained, tiny_prior, patch_batch):
    state, losses = trained
    assert int(state.step) == 4 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    y, t, z0 = patch_batch
    # a batch with another noise level: the likelihood is an argument (same compiled step)
    _, loss = unrolled_train_step(state, tiny_prior, Gaussian(sigma=0.2), y, t, z0)
    assert np.isfinite(float(loss)) and float(loss) != losses[-1]


def test_checkpoint_round_trip(trained, tiny_prior, tmp_path):
    params = trained[0].params
    ckpt = load_model(save_model(CFG, {"params": params}, tmp_path / "unrolled", {"teacher": "clean"}), "unrolled")
    assert ckpt.config == CFG and ckpt.metadata == {"teacher": "clean"}
    jax.tree_util.tree_map(np.testing.assert_array_equal, ckpt.variables["params"], params)
    _, noisy = noisy_image(seed=1)
    np.testing.assert_array_equal(
        unrolled_denoise(ckpt.variables["params"], ckpt.config, noisy, tiny_prior, LIK, stride=4, chunk=32),
        unrolled_denoise(params, CFG, noisy, tiny_prior, LIK, stride=4, chunk=32),
    )
    with pytest.raises(ValueError, match="do not match"):
        save_model(UnrolledConfig(steps=4), {"params": params}, tmp_path / "bad")


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "empty")
    ckpt = save_model(CFG, {"params": init_unrolled(CFG)}, tmp_path / "unrolled")
    config_file = ckpt / "config.json"
    record = json.loads(config_file.read_text())
    config_file.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint config"):
        load_model(ckpt)
    config_file.write_text(json.dumps({**record, "model": "resnet"}))
    with pytest.raises(ValueError, match="unknown model"):
        load_model(ckpt)
    config_file.write_text(json.dumps({**record, "config": {**record["config"], "steps": 0}}))
    with pytest.raises(ValueError, match="corrupt checkpoint config"):
        load_model(ckpt)
    config_file.write_text(json.dumps({**record, "config": {**record["config"], "steps": 5}}))
    with pytest.raises(ValueError, match="config.json does not match its sha256"):
        load_model(ckpt)
    write_manifest(ckpt)  # consistent checksums, wrong architecture
    with pytest.raises(ValueError, match="corrupt or incompatible"):
        load_model(ckpt)


@pytest.mark.parametrize(
    "kwargs",
    [dict(steps=0), dict(steps=-2), dict(steps=2.5), dict(steps=True), dict(init_lr=0.0),
     dict(init_lr=float("nan")), dict(init_lam=-1.0), dict(init_blur=-0.5)],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        UnrolledConfig(**kwargs)


def test_bad_inputs_raise(tiny_prior, patch_batch):
    _, noisy = noisy_image()
    params = init_unrolled(CFG)
    nan_image = noisy.copy()
    nan_image[3, 4] = np.nan
    for bad in (noisy[None], noisy[0], nan_image, noisy[:5, :5]):
        with pytest.raises(ValueError):
            unrolled_denoise(params, CFG, bad, tiny_prior, LIK, stride=4)
    with pytest.raises(ValueError, match="do not match"):
        unrolled_denoise(init_unrolled(UnrolledConfig(steps=2)), CFG, noisy, tiny_prior, LIK)
    with pytest.raises(ValueError, match="chunk"):
        unrolled_denoise(params, CFG, noisy, tiny_prior, LIK, chunk=0)
    y, t, z0 = patch_batch
    with pytest.raises(ValueError, match="target patches"):
        unrolled_loss(params, CFG, tiny_prior, LIK, y, t[:3], z0)
    with pytest.raises(ValueError, match="z0"):
        unrolled_patches(params, CFG, tiny_prior, LIK, y, z0[:3])
