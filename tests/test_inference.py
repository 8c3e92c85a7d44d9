"""``usprior.denoise`` with every method, on images and cine stacks: amortised checkpoints
(tiny models saved to disk), batching of frames, MAP warm starts and clear errors."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

import usprior
from usprior.denoisers.networks import band_windows, default_noise_level
from usprior.physics.noise import estimate_speckle_std
from usprior.amortized import (
    FFDNet,
    FFDNetConfig,
    UNetConfig,
    UNetGenerator,
    ffdnet_apply,
    init_ffdnet,
    init_unet,
    load_model,
    pix2pix_apply,
    save_model,
)
from usprior.solvers.unrolled import UnrolledConfig, init_unrolled, unrolled_denoise
from usprior.physics.likelihoods import Gaussian
from usprior.solvers.map import MAPConfig, map_denoise

KEY = jax.random.key(0, impl="rbg")  # fast initialisers on XLA:CPU (see test_amortized)
SIGMA_MEDIAN = 0.08


@pytest.fixture(scope="module")
def models(tiny_checkpoint):
    """Tiny FFDNet, Pix2Pix and unrolled checkpoints saved next to the tiny prior."""
    folder = tiny_checkpoint.parent
    meta = {"sigma_median": SIGMA_MEDIAN}
    unrolled_meta = {**meta, "likelihood": "gaussian", "sigma_scale": 1.5, "prior": tiny_checkpoint.name}
    specs = {
        "ffdnet": (FFDNetConfig(features=8, depth=3), init_ffdnet(FFDNetConfig(features=8, depth=3), KEY), meta),
        "pix2pix": (UNetConfig(features=4, depth=2), init_unet(UNetConfig(features=4, depth=2), KEY), {}),
        "unrolled": (UnrolledConfig(steps=2, init_lr=0.01), {"params": init_unrolled(UnrolledConfig(steps=2, init_lr=0.01))}, unrolled_meta),
    }
    return {kind: save_model(cfg, var, folder / kind, md) for kind, (cfg, var, md) in specs.items()}


def stack(t: int = 3, shape: tuple[int, int] = (37, 45)) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.1, 0.9, (t, *shape)).astype(np.float32)


@pytest.mark.parametrize("method", ["ffdnet", "pix2pix", "unrolled"])
def test_amortised_methods_match_their_models(models, tiny_prior, method):
    """denoise(method=...) on an odd-sized image is the model's own denoiser with the
    checkpoint's defaults (FFDNet: the noise level read from the image; unrolled: from the
    metadata, with the prior it names)."""
    frames = stack(1)
    ckpt = load_model(models[method])
    out = usprior.denoise(frames[0], method=method, checkpoint=models[method])
    if method == "ffdnet":
        level = estimate_speckle_std(frames[0])
        want = ffdnet_apply(ckpt.variables, ckpt.config, frames[:, :, :, None], level)[0, ..., 0]
    elif method == "pix2pix":
        want = pix2pix_apply(ckpt.variables, ckpt.config, frames[:, :, :, None])[0, ..., 0]
    else:
        lik = Gaussian(1.5 * SIGMA_MEDIAN)
        want = unrolled_denoise(ckpt.variables["params"], ckpt.config, frames[0], tiny_prior, lik, stride=4)
    assert out.shape == (37, 45) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.clip(want, 0, 1), atol=1e-6)


@pytest.mark.parametrize("method", ["ffdnet", "pix2pix", "unrolled"])
def test_cine_stack_equals_frame_by_frame(models, method):
    """3 frames in batches of 2 (the last batch padded) give each frame's own result."""
    frames = stack(3)
    options = {} if method == "unrolled" else {"batch": 2}  # unrolled runs frame by frame
    if method == "ffdnet":  # its default level is one per stack (the median over frames)
        options["sigma"] = 0.1
    out = usprior.denoise(frames, method=method, checkpoint=models[method], **options)
    assert out.shape == frames.shape and out.dtype == np.float32
    options.pop("batch", None)
    for t in range(3):
        np.testing.assert_allclose(out[t], usprior.denoise(frames[t], method=method, checkpoint=models[method], **options), atol=1e-6)


@pytest.mark.parametrize(("height", "bands", "reach", "factor"), [(646, 2, 23, 2), (646, 7, 23, 2), (64, 2, 46, 16),
                                                            (1024, 3, 46, 16), (100, 5, 9, 2), (18, 2, 9, 2)])
def test_band_windows_tile_the_rows_with_enough_context(height, bands, reach, factor):
    """The kept ranges tile [0, height) in order; windows have one length and start on the
    factor's grid; each kept row is >= reach rows inside its window unless at the frame's edge."""
    length, windows = band_windows(height, bands, reach, factor)
    assert length % factor == 0 and length <= height and 1 <= len(windows) <= bands
    assert windows[0][1] == 0 and windows[-1][2] == height
    for (start, keep_from, keep_to), following in zip(windows, windows[1:] + [None]):
        assert start % factor == 0 and 0 <= start <= keep_from < keep_to <= start + length <= height
        assert start == 0 or keep_from - start >= reach
        assert start + length == height or start + length - keep_to >= reach
        if following is not None:
            assert following[1] == keep_to


@pytest.mark.parametrize("method", ["ffdnet", "pix2pix"])
@pytest.mark.parametrize("threads", [1, 3])
def test_row_bands_and_threads_give_the_one_pass_result(models, method, threads):
    """A tall frame cut into row bands run by 3 threads, and a 4-frame stack in batches of 1, are
    exactly the jitted network's one pass over the whole frames (even and odd sizes)."""
    ckpt = load_model(models[method])
    for shape in [(4, 130, 41), (1, 211, 64)]:
        frames = stack(shape[0], shape[1:])
        kw = {"sigma": 0.1} if method == "ffdnet" else {}
        out = usprior.make_denoiser(method, checkpoint=models[method], threads=threads, batch=1)(frames, **kw)
        y = frames[..., None]
        want = ffdnet_apply(ckpt.variables, ckpt.config, y, 0.1) if method == "ffdnet" else pix2pix_apply(ckpt.variables, ckpt.config, y)
        np.testing.assert_allclose(out, np.asarray(want)[..., 0], atol=1e-6)


def test_receptive_field_radius_bounds_the_gradient_support():
    """FFDNetConfig.margin and UNetConfig.reach bound how far an output pixel sees (the banding
    relies on it): the gradient of one output pixel is zero beyond them, and reaches them."""
    y = jax.random.uniform(KEY, (1, 96, 96, 1))
    nets = [(FFDNetConfig(features=4, depth=d), init_ffdnet(FFDNetConfig(features=4, depth=d), KEY)) for d in (2, 4)]
    nets += [(UNetConfig(features=4, depth=d), init_unet(UNetConfig(features=4, depth=d), KEY)) for d in (2, 3)]
    for config, variables in nets:
        if isinstance(config, FFDNetConfig):
            fn, radius = (lambda x: FFDNet(config).apply(variables, x, 0.1)), config.margin
        else:
            fn, radius = (lambda x: UNetGenerator(config).apply(variables, x)), config.reach
        grad = jax.jit(jax.grad(lambda x, c: fn(x)[0, c, c, 0]))  # one compilation, c traced
        reach = 0
        for c in range(40, 40 + 2 ** (config.depth if isinstance(config, UNetConfig) else 1)):
            rows, cols = np.nonzero(np.asarray(grad(y, c))[0, :, :, 0])
            reach = max(reach, c - rows.min(), rows.max() - c, c - cols.min(), cols.max() - c)
        assert reach == radius, (config, reach)


def test_ffdnet_default_level_is_one_per_stack(models):
    """Without sigma a cine gets one level, the median of the frames' speckle estimates, so the
    strength does not flicker from frame to frame."""
    frames = stack(3) * np.array([0.5, 1.0, 1.1], np.float32)[:, None, None]
    level = float(np.median([estimate_speckle_std(f) for f in frames]))
    assert default_noise_level(frames) == level
    np.testing.assert_allclose(usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"]),
                               usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"], sigma=level), atol=1e-6)


def test_ffdnet_sigma_is_the_strength_knob(models):
    image = stack(1)[0]
    weak, strong = (usprior.denoise(image, method="ffdnet", checkpoint=models["ffdnet"], sigma=s) for s in (0.01, 0.5))
    assert not np.allclose(weak, strong)
    np.testing.assert_array_equal(
        usprior.denoise(image, method="ffdnet", checkpoint=models["ffdnet"], sigma=estimate_speckle_std(image)),
        usprior.denoise(image, method="ffdnet", checkpoint=models["ffdnet"]),
    )


def test_ffdnet_strength_scales_the_read_level_only(models):
    """strength k without sigma: sigma = k x the level read from the frames; a given sigma wins."""
    frames = stack(2)
    level = default_noise_level(frames)
    strong = usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"], strength=2.5)
    np.testing.assert_array_equal(strong, usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"], sigma=2.5 * level))
    assert not np.allclose(strong, usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"]))
    np.testing.assert_array_equal(usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"], strength=2.5, sigma=0.1),
                                  usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"], sigma=0.1))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            usprior.denoise(frames, method="ffdnet", checkpoint=models["ffdnet"], strength=bad)


def test_map_cine_warm_starts_from_the_previous_frame(tiny_checkpoint, tiny_prior):
    """Frame 0 is a cold MAP solve; frame t > 0 runs warm_steps from frame t-1's latents."""
    frames = stack(2, (24, 30))
    kw = dict(sigma=0.1, steps=8, stride=8)
    out = usprior.denoise(frames, method="map_latent", checkpoint=tiny_checkpoint, warm_steps=3, **kw)
    lik = Gaussian(0.1)
    cfg = MAPConfig(steps=8, stride=8)
    first = map_denoise(frames[0], tiny_prior, lik, usprior.DEFAULT_LAM["latent"], cfg)
    second = map_denoise(frames[1], tiny_prior, lik, usprior.DEFAULT_LAM["latent"], dataclasses.replace(cfg, steps=3), z0=first.z)
    np.testing.assert_allclose(out[0], np.clip(first.image, 0, 1), atol=1e-6)
    np.testing.assert_allclose(out[1], np.clip(second.image, 0, 1), atol=1e-6)
    cold = usprior.denoise(frames[1], method="map_latent", checkpoint=tiny_checkpoint, **kw)
    assert not np.allclose(out[1], cold, atol=1e-4)


@pytest.mark.parametrize(
    ("method", "kwargs", "match"),
    [
        ("pix2pix", dict(sigma=0.1), "no noise-level input"),
        ("ffdnet", dict(lam=1.0), "'ffdnet' takes no option lam; valid options: checkpoint, batch, threads"),
        ("unrolled", dict(steps=5), "'unrolled' takes no option steps; valid options: checkpoint, likelihood, stride, chunk"),
        ("ffdnet", dict(stride=8), "takes no option stride"),
        ("ffdnet", dict(likelihood="gaussian"), "takes no option likelihood"),
        ("ffdnet", dict(sigma=-1.0), "sigma"),
        ("ffdnet", dict(batch=0), "batch"),
        ("pix2pix", dict(threads=0), "threads"),
        ("unrolled", dict(likelihood="poisson"), "unknown likelihood"),
    ],
)
def test_bad_options_raise(models, method, kwargs, match):
    with pytest.raises(ValueError, match=match):
        usprior.denoise(stack(1)[0], method=method, checkpoint=models[method], **kwargs)


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (np.zeros((40, 40, 3)), "looks like a colour"),
        (np.zeros((0, 40, 40)), "empty stack"),
        (np.zeros((2, 2, 40, 40)), r"\(T, H, W\)"),
        (np.stack([np.zeros((40, 40)), np.full((40, 40), np.nan)]), "frame 1 contains NaN"),
    ],
)
@pytest.mark.parametrize("method", ["ffdnet", "map"])
def test_bad_stacks_raise(models, tiny_checkpoint, frames, match, method):
    checkpoint = models["ffdnet"] if method == "ffdnet" else tiny_checkpoint
    with pytest.raises(ValueError, match=match):
        usprior.denoise(frames, method=method, checkpoint=checkpoint, sigma=0.1)


def test_unrolled_too_small_frames_and_missing_metadata(models, tmp_path):
    with pytest.raises(ValueError, match="smaller than the 8x8 patch"):
        usprior.denoise(np.full((2, 5, 40), 0.5), method="unrolled", checkpoint=models["unrolled"])
    cfg = FFDNetConfig(features=8, depth=3)
    bare = save_model(cfg, init_ffdnet(cfg, KEY), tmp_path / "bare")  # no metadata: FFDNet reads sigma from the image
    assert usprior.denoise(np.full((40, 40), 0.5), method="ffdnet", checkpoint=bare).shape == (40, 40)
    with pytest.raises(ValueError, match="holds a 'ffdnet' model"):
        usprior.denoise(np.full((40, 40), 0.5), method="pix2pix", checkpoint=bare)
    with pytest.raises(FileNotFoundError):
        usprior.denoise(np.full((40, 40), 0.5), method="pix2pix", checkpoint=tmp_path / "missing")
