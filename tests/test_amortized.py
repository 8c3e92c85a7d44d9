"""Amortised denoisers: shuffles and padding, FFDNet / Pix2Pix shapes and training steps,
teacher targets, early stopping, checkpoints and input validation (tiny models, CPU)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.ndimage

import usprior
from usprior.physics import simulate
from usprior.amortized import (
    EarlyStopping,
    FFDNetConfig,
    PatchGAN,
    PatchGANConfig,
    UNetConfig,
    clean_teacher,
    create_ffdnet_state,
    create_pix2pix_states,
    crop,
    evaluate,
    ffdnet_apply,
    ffdnet_train_step,
    load_model,
    make_pairs,
    pad_to_multiple,
    pix2pix_apply,
    pix2pix_train_step,
    pixel_shuffle,
    pixel_unshuffle,
    save_model,
)
from usprior.amortized.training import NOISE_FLOOR, noise_weighted_error
from usprior.io.checkpoints import write_manifest
from usprior.priors.glow import squeeze

GAUSSIAN = simulate.NOISE_MODELS["gaussian"].corrupt

# Partitionable threefry (the jax default) makes XLA:CPU compile the random initialisers ~6x
# slower (jax 0.10); the rbg generator keeps model initialisation in this file to seconds.
KEY = jax.random.key(0, impl="rbg")

FFD = FFDNetConfig(features=8, depth=3)
UNET = UNetConfig(features=4, depth=2)
DISC = PatchGANConfig(features=4, layers=2)
ODD_SIZES = [(37, 53), (21, 30)]


def smooth_images(n: int = 2, shape: tuple[int, int] = (24, 28)) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [
        np.clip(scipy.ndimage.gaussian_filter(rng.uniform(0, 1, shape), 3) * 2 - 0.5, 0, 1).astype(np.float32)
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(
        smooth_images(), GAUSSIAN, clean_teacher, levels=[0.1, 0.2], patch=16, patches_per_image=2
    )


@pytest.fixture(scope="module")
def ffdnet_run(pairs):
    """An FFDNet trained for a few steps on one fixed batch, and its per-step losses."""
    state = create_ffdnet_state(FFD, KEY)
    losses = []
    for _ in range(8):
        state, loss = ffdnet_train_step(state, pairs)
        losses.append(float(loss))
    return state, losses


@pytest.fixture(scope="module")
def pix2pix_run(pairs):
    """Pix2Pix states after 20 steps on one fixed batch (fixed keys), and the per-step metrics."""
    adam = [optax.adam(1e-3, b1=0.5)] * 2  # 5x the default rate: a clear decrease within 20 steps
    gen, disc = create_pix2pix_states(UNET, DISC, KEY, *adam)
    history = []
    for step in range(20):
        gen, disc, metrics = pix2pix_train_step(gen, disc, pairs, jax.random.fold_in(KEY, step))
        history.append({k: float(v) for k, v in metrics.items()})
    return gen, disc, history


# --- shuffles and padding ------------------------------------------------------------------


def test_unshuffle_hand_example():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    out = pixel_unshuffle(x, 2)
    assert out.shape == (1, 2, 2, 4)
    np.testing.assert_array_equal(out[0, 0, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(out[0, 1, 1], [10, 11, 14, 15])
    np.testing.assert_array_equal(out, squeeze(x))


@pytest.mark.parametrize("r", [2, 3])
def test_shuffles_are_inverses(r):
    rng = np.random.default_rng(r)
    x = rng.standard_normal((2, 6 * r, 5 * r, 3)).astype(np.float32)
    np.testing.assert_array_equal(pixel_shuffle(pixel_unshuffle(x, r), r), x)
    y = rng.standard_normal((2, 4, 5, 3 * r * r)).astype(np.float32)
    np.testing.assert_array_equal(pixel_unshuffle(pixel_shuffle(y, r), r), y)
    with pytest.raises(ValueError, match="divisible"):
        pixel_unshuffle(x[:, :-1], r)


def test_pad_crop_round_trip_odd_size():
    x = np.random.default_rng(0).uniform(0, 1, (2, 37, 53, 1)).astype(np.float32)
    padded, hw = pad_to_multiple(x, 8)
    assert padded.shape == (2, 40, 56, 1) and hw == (37, 53)
    np.testing.assert_array_equal(crop(padded, hw), x)
    np.testing.assert_array_equal(padded[:, 37, :53], x[:, 35])  # reflected border


# --- models --------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", ODD_SIZES)
def test_output_shapes_any_size(ffdnet_run, pix2pix_run, hw):
    y = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (2, *hw, 1)), jnp.float32)
    ffd = ffdnet_apply(ffdnet_run[0].variables, FFD, y, 0.1)
    gen = pix2pix_apply({"params": pix2pix_run[0].params}, UNET, y)
    for out in (ffd, gen):
        assert out.shape == y.shape
        assert bool(jnp.all(jnp.isfinite(out))) and float(out.min()) >= 0 and float(out.max()) <= 1


def _zeroed(params: dict, layer: str) -> dict:
    return {**params, layer: jax.tree_util.tree_map(jnp.zeros_like, params[layer])}


@pytest.mark.parametrize("hw", ODD_SIZES)
def test_residual_outputs(hw):
    """With its last layer zeroed, the residual FFDNet and the U-Net return the input itself (so a
    flat image only has to map to a zero correction); the paper's FFDNet returns zeros."""
    from usprior.amortized import FFDNet, UNetGenerator, init_ffdnet, init_unet

    y = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (2, *hw, 1)), jnp.float32)
    variables = init_ffdnet(FFD, KEY)
    assert FFD.residual and FFD.head == 8 and "head" in variables["params"]
    identity = {**variables, "params": _zeroed(variables["params"], "head")}
    np.testing.assert_array_equal(FFDNet(FFD).apply(identity, y, 0.1), y)
    paper = FFDNetConfig(features=8, depth=3, residual=False, head=0)
    variables = init_ffdnet(paper, KEY)
    assert "head" not in variables["params"]
    zero = {**variables, "params": _zeroed(variables["params"], "conv_out")}
    np.testing.assert_array_equal(FFDNet(paper).apply(zero, y, 0.1), 0.0)
    params = init_unet(UNET, KEY)["params"]
    np.testing.assert_array_equal(UNetGenerator(UNET).apply({"params": _zeroed(params, "out")}, y), y)


def test_unet_has_no_transposed_convolution_or_normalisation():
    """Resize-convolutions (no checkerboard) and no instance norm (flat crops are not amplified)."""
    from usprior.amortized import init_unet

    params = init_unet(UNET, KEY)["params"]
    assert all(set(layer) == {"kernel", "bias"} for layer in params.values())
    assert all(params[f"up_{i}"]["kernel"].shape[:2] == (3, 3) for i in range(UNET.depth - 1))


def test_patchgan_logit_grid(pix2pix_run):
    y = jnp.zeros((3, 37, 53, 1))
    logits = jax.jit(PatchGAN(DISC).apply)({"params": pix2pix_run[1].params}, y, y)
    assert logits.shape == (3, 10, 14, 1)  # ceil(37 / 4), ceil(53 / 4)
    assert bool(jnp.all(jnp.isfinite(logits)))


def test_noise_map_matters(ffdnet_run, pairs):
    variables, y = ffdnet_run[0].variables, jnp.asarray(pairs.noisy[:2])
    low, high = ffdnet_apply(variables, FFD, y, 0.05), ffdnet_apply(variables, FFD, y, 0.3)
    assert float(jnp.max(jnp.abs(low - high))) > 1e-4
    per_image = ffdnet_apply(variables, FFD, y, jnp.array([0.05, 0.3]))
    np.testing.assert_allclose(per_image[0], low[0], atol=1e-6)
    np.testing.assert_allclose(per_image[1], high[1], atol=1e-6)
    as_map = ffdnet_apply(variables, FFD, y, jnp.full((2, 16, 16, 1), 0.05))
    np.testing.assert_allclose(as_map, low, atol=1e-6)


# --- training ------------------------------------------------------------------------------


def test_ffdnet_steps_lower_the_loss(ffdnet_run):
    losses = ffdnet_run[1]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses  # observed ~0.55


def test_noise_weighted_error_is_the_fraction_of_local_noise_left():
    rng = np.random.default_rng(0)
    target = np.zeros((2, 24, 24, 1), np.float32)
    target[:, :, 12:] = 0.6
    amplitude = np.where(np.arange(24) < 12, 0.015, 0.1)[None, None, :, None]  # dim clutter | bright speckle
    noisy = (target + amplitude * rng.standard_normal(target.shape)).astype(np.float32)
    assert float(noise_weighted_error(target, noisy, target)) == 0.0
    identity = float(noise_weighted_error(noisy, noisy, target))
    assert 0.6 < identity < 1.0, identity  # ~1 where the noise power exceeds eps (dim side: 2.25e-4 vs 1e-4)
    half = target + 0.5 * (noisy - target)  # a quarter of the noise power left everywhere
    assert float(noise_weighted_error(half, noisy, target)) == pytest.approx(identity / 4, rel=1e-5)
    # the dim side weighs as much as the bright one: the same fraction of noise left scores alike
    dim_only = np.where(np.arange(24)[None, None, :, None] < 12, noisy, target)
    bright_only = np.where(np.arange(24)[None, None, :, None] >= 12, noisy, target)
    dim, bright = float(noise_weighted_error(dim_only, noisy, target)), float(noise_weighted_error(bright_only, noisy, target))
    assert dim > 0.4 * bright, (dim, bright)  # observed 0.48 (eps and the box across the edge); the plain MSE: 0.02
    assert float(np.mean(np.square(dim_only - target))) < 0.05 * float(np.mean(np.square(bright_only - target)))
    # noise-free pixels weigh at most 1 / eps
    flat = np.full_like(target, 0.5)
    assert float(noise_weighted_error(flat + 0.01, flat, flat)) == pytest.approx(1e-4 / NOISE_FLOOR, rel=1e-5)


def test_ffdnet_noise_weighted_steps_lower_their_loss(pairs):
    state = create_ffdnet_state(FFD, KEY)
    losses = []
    for _ in range(8):
        state, loss = ffdnet_train_step(state, pairs, "noise_weighted")
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses
    with pytest.raises(ValueError, match="loss must be one of"):
        ffdnet_train_step(state, pairs, "psnr")


def test_pix2pix_steps_lower_the_generator_loss(pix2pix_run):
    history = pix2pix_run[2]
    assert all(np.isfinite(v) for h in history for v in h.values())
    assert history[-1]["g_l1"] < 0.85 * history[0]["g_l1"], history  # observed ~0.79
    assert history[-1]["g_loss"] < 0.85 * history[0]["g_loss"], history  # observed ~0.80


def test_evaluate_pooled_psnr(pairs):
    identity = evaluate(lambda y, s: y, pairs, batch=3)
    expected = 10 * np.log10(1 / np.mean((pairs.target.astype(np.float64) - pairs.noisy) ** 2))
    assert identity == pytest.approx(expected, rel=1e-5)
    assert evaluate(lambda y, s: jnp.asarray(pairs.target[: len(y)]), pairs) == np.inf


def test_evaluate_noise_weighted_in_db(pairs):
    # pooled over chunks of 3 = the mean error over all samples at once
    expected = -10 * np.log10(float(noise_weighted_error(pairs.noisy * 0.9 + pairs.target * 0.1, pairs.noisy, pairs.target)))
    chunks = iter(range(0, len(pairs.noisy), 3))
    blend = lambda y, s: y * 0.9 + jnp.asarray(pairs.target[(i := next(chunks)) : i + len(y)]) * 0.1
    score = evaluate(blend, pairs, batch=3, loss="noise_weighted")
    assert score == pytest.approx(expected, rel=1e-5)
    identity = evaluate(lambda y, s: y, pairs, batch=3, loss="noise_weighted")
    assert abs(identity) < 0.5, identity  # 0 dB where the noise exceeds its floor
    with pytest.raises(ValueError, match="loss must be one of"):
        evaluate(lambda y, s: y, pairs, loss="ssim")


def test_early_stopping_keeps_best():
    stopper = EarlyStopping(patience=2)
    scores = [20.0, 22.0, 21.0, 23.0, 22.5, 22.9]
    decisions = [stopper.update(score, {"epoch": i}) for i, score in enumerate(scores)]
    assert decisions == [False, False, False, False, False, True]
    assert stopper.best == {"epoch": 3} and stopper.best_score == 23.0
    with pytest.raises(ValueError):
        EarlyStopping(patience=0)


# --- teachers ------------------------------------------------------------------------------


def test_teacher_swap_same_noisy_inputs():
    clean = smooth_images(shape=(24, 24))  # patch = image: the windows are the whole images
    kwargs = dict(corrupt=GAUSSIAN, levels=[0.1], patch=24, patches_per_image=1, seed=3)
    supervised = make_pairs(clean, teacher=clean_teacher, **kwargs)
    box = make_pairs(clean, teacher=lambda y, s: scipy.ndimage.uniform_filter(y, 3), **kwargs)
    np.testing.assert_array_equal(supervised.noisy, box.noisy)
    np.testing.assert_array_equal(supervised.target[..., 0], np.stack(clean))
    expected = np.stack([scipy.ndimage.uniform_filter(y, 3) for y in supervised.noisy[..., 0]])
    np.testing.assert_allclose(box.target[..., 0], expected, atol=1e-6)
    assert np.all(supervised.noisy >= 0) and np.all(supervised.noisy <= 1)
    rms = np.sqrt(np.mean((supervised.noisy - supervised.target) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(supervised.sigma, rms, rtol=1e-5)  # the measured noise std per image
    assert np.all(np.abs(supervised.sigma - 0.1) < 0.02)


def test_clean_teacher_uses_the_noise_models_target():
    """For B-mode speckle the supervised target is the speckle-free display image, not x."""
    clean = smooth_images(shape=(32, 32))[:1]
    pairs = make_pairs(clean, simulate.NOISE_MODELS["convolutional"].corrupt, clean_teacher, levels=[40.0],
                       patch=32, patches_per_image=1, seed=5)
    seed = int(np.random.default_rng(5).integers(2**31))
    noisy, target = simulate.NOISE_MODELS["convolutional"].corrupt(clean[0], 40.0, seed)
    np.testing.assert_array_equal(pairs.noisy[0, ..., 0], noisy)
    np.testing.assert_array_equal(pairs.target[0, ..., 0], target)
    assert not np.allclose(target, clean[0], atol=0.05)


def test_pairs_are_aligned(pairs):
    noisy_as_target = make_pairs(
        smooth_images(), GAUSSIAN, lambda y, s: y, levels=[0.1, 0.2], patch=16, patches_per_image=2
    )
    np.testing.assert_array_equal(noisy_as_target.noisy, pairs.noisy)
    np.testing.assert_array_equal(noisy_as_target.target, noisy_as_target.noisy)
    assert pairs.noisy.shape == pairs.target.shape == (8, 16, 16, 1)
    np.testing.assert_allclose(pairs.sigma, [0.1, 0.1, 0.2, 0.2] * 2, atol=0.03)


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_round_trip(ffdnet_run, pix2pix_run, pairs, tmp_path):
    y, sigma = jnp.asarray(pairs.noisy[:2]), jnp.asarray(pairs.sigma[:2])
    ffd = load_model(save_model(FFD, ffdnet_run[0].variables, tmp_path / "ffd", {"teacher": "clean"}), "ffdnet")
    assert ffd.config == FFD and ffd.metadata == {"teacher": "clean"}
    np.testing.assert_array_equal(
        ffdnet_apply(ffd.variables, FFD, y, sigma), ffdnet_apply(ffdnet_run[0].variables, FFD, y, sigma)
    )
    gen_vars = {"params": pix2pix_run[0].params}
    gen = load_model(save_model(UNET, gen_vars, tmp_path / "gen"))
    assert gen.kind == "pix2pix" and gen.config == UNET
    np.testing.assert_array_equal(pix2pix_apply(gen.variables, UNET, y), pix2pix_apply(gen_vars, UNET, y))
    with pytest.raises(ValueError, match="'pix2pix' model, expected 'ffdnet'"):
        load_model(tmp_path / "gen", "ffdnet")
    with pytest.raises(ValueError, match="do not match"):
        save_model(FFDNetConfig(features=4, depth=3), ffdnet_run[0].variables, tmp_path / "bad")


def test_checkpoint_errors(ffdnet_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "empty")
    ckpt = save_model(FFD, ffdnet_run[0].variables, tmp_path / "ffd")
    config_file = ckpt / "config.json"
    record = json.loads(config_file.read_text())
    config_file.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint config"):
        load_model(ckpt)
    config_file.write_text(json.dumps({**record, "model": "dncnn"}))
    with pytest.raises(ValueError, match="unknown model"):
        load_model(ckpt)
    config_file.write_text(json.dumps({**record, "config": {**record["config"], "features": 16}}))
    with pytest.raises(ValueError, match="config.json does not match its sha256"):
        load_model(ckpt)
    write_manifest(ckpt)  # a consistent checkpoint of the wrong architecture
    with pytest.raises(ValueError, match="corrupt or incompatible"):
        load_model(ckpt)


# --- input validation ----------------------------------------------------------------------


def test_bad_inputs_raise(ffdnet_run, pix2pix_run, tmp_path):
    variables = {"params": ffdnet_run[0].params, "batch_stats": ffdnet_run[0].batch_stats}
    ffdnet = usprior.make_denoiser("ffdnet", checkpoint=save_model(FFD, variables, tmp_path / "ffd", {"sigma_median": 0.1}))
    pix2pix = usprior.make_denoiser("pix2pix", checkpoint=save_model(UNET, {"params": pix2pix_run[0].params}, tmp_path / "p2p"))
    image = smooth_images(1)[0]
    nan_image = image.copy()
    nan_image[3, 4] = np.nan
    for bad, match in ((image[None, None], r"\(T, H, W\)"), (nan_image[None], "NaN")):
        with pytest.raises(ValueError, match=match):
            ffdnet(bad, sigma=0.1)
        with pytest.raises(ValueError, match=match):
            pix2pix(bad)
    with pytest.raises(ValueError, match="NaN"):
        make_pairs([nan_image], GAUSSIAN, clean_teacher, levels=[0.1], patch=8)
    for sigma in (0.0, -0.1, np.nan, np.zeros_like(image)):
        with pytest.raises(ValueError, match="sigma"):
            ffdnet(image[None], sigma=sigma)
    with pytest.raises(ValueError, match="level"):
        make_pairs([image], GAUSSIAN, clean_teacher, levels=[0.0], patch=8)
    with pytest.raises(ValueError, match="teacher"):
        make_pairs([image], GAUSSIAN, lambda y, s: y[1:], levels=[0.1], patch=8)
    out = ffdnet(image[None], sigma=0.1)
    assert out.shape == (1, *image.shape) and out.dtype == np.float32


def test_box2_removes_the_shuffle_frequency():
    """box2 maps the period-2 patterns (-1)^i, (-1)^j and (-1)^(i+j) to zero away from the last
    row / column and keeps a constant: the FFDNet head cannot paint a pixel grid."""
    from usprior.amortized.ffdnet import box2

    i, j = np.mgrid[0:10, 0:12]
    for pattern in ((-1.0) ** i, (-1.0) ** j, (-1.0) ** (i + j)):
        out = np.asarray(box2(jnp.asarray(pattern, jnp.float32)[None, ..., None]))[0, :-1, :-1, 0]
        np.testing.assert_allclose(out, 0.0, atol=1e-7)
    np.testing.assert_allclose(box2(jnp.full((1, 5, 7, 2), 0.3)), 0.3, rtol=1e-6)


def test_flat_pairs_are_constant_and_labelled_with_themselves():
    from usprior.amortized.scanner_pairs import flat_pairs

    from usprior.physics.noise import MIN_NOISE_STD, estimate_speckle_std

    levels = np.array([0.03, 0.07], np.float32)
    pairs = flat_pairs(40, levels, patch=8, seed=1)
    assert pairs.noisy.shape == (40, 8, 8, 1) and np.array_equal(pairs.noisy, pairs.target)
    assert np.ptp(pairs.noisy, axis=(1, 2, 3)).max() == 0 and set(pairs.sigma) <= set(levels) | {np.float32(MIN_NOISE_STD)}
    # about half at what the default noise map reads on a flat image, the rest at the given levels
    assert estimate_speckle_std(pairs.noisy[0, ..., 0]) == MIN_NOISE_STD
    assert 10 <= np.sum(pairs.sigma == np.float32(MIN_NOISE_STD)) <= 30 and set(levels) <= set(pairs.sigma)
    assert set(flat_pairs(10, levels, patch=8, floor_fraction=0.0).sigma) <= set(levels)
