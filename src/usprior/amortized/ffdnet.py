"""FFDNet (Zhang, Zuo & Zhang 2018): a fast CNN denoiser with a tunable noise-level map.

For a noisy batch y (N, H, W, C) and a noise-level map s (N, H, W, 1),

    u = pixel_unshuffle(pad(concat(y, s)), 2)           (N, H'/2, W'/2, 4 (C + 1))
    h = ReLU(conv3x3(u))
    h = ReLU(BN(conv3x3(h)))                            (depth - 2) times
    f = crop(pixel_shuffle(conv3x3(h), 2))              (N, H, W, head)     head > 0
    r = conv3x3(ReLU(box2(f)))                          (N, H, W, C)        the full-resolution head
    x = y - r                                           residual (default), or x = r

where pad reflects H, W up to the next even H', W' and crop undoes it, so any image size
works. The output is not clipped; :func:`ffdnet_apply` clips it to [0, 1].

Two changes to the paper's network, both configurable (``head=0, residual=False`` is the
paper's FFDNet: the shuffled output is the clean image):

* **residual**: the network predicts the noise r and returns y - r, so a flat input only has to
  map to r = 0 and the brightness is the input's unless the network changes it on purpose;
* **full-resolution head without the shuffle frequency**: the half-resolution body emits
  ``head`` feature maps per output pixel; box2, the mean of every 2x2 neighbourhood, has a zero
  at half the sampling rate on both axes, and one 3x3 convolution at full resolution follows.
  Each output pixel of a shuffle belongs to one of four sub-grids computed by separate filters,
  and any mismatch between them is a pattern of period 2 px: a pixel grid, a spectral peak at
  the shuffle frequency. A learned head alone did not remove it (a flat noisy input came out
  with a 0.004-amplitude column grid, a peak 4,000x its surroundings); box2 removes that
  frequency from r by construction, so the output has there exactly the input's content (the
  noise exactly at half the sampling rate is left: ~1/64 of white noise's power on a 128 px
  side, less for speckle). It adds ~9 (head + 1) MACs per pixel to the body's
  ~9 features^2 (depth - 1) / 4.

The map s is the user-facing strength knob: it is in the units of the noise level the
network was trained with (the ``sigma`` of the corruption in
:func:`usprior.amortized.training.make_pairs`); a larger s smooths more, and a spatially
varying map smooths some regions more than others.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from usprior.amortized.shuffle import crop, pad_margin, pad_to_multiple, pixel_shuffle, pixel_unshuffle, strip_margin
from usprior.validation import check_int

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class FFDNetConfig:
    """Architecture: ``depth`` 3x3 conv layers of ``features`` channels on ``channels``-channel
    images, a full-resolution head of ``head`` channels (0: none) and residual output.

    Zhang et al. use depth 15, 64 features for grayscale images, no head, no residual.
    """

    features: int = 64
    depth: int = 15
    channels: int = 1
    residual: bool = True
    head: int = 8

    def __post_init__(self) -> None:
        check_int(self.features, "features")
        check_int(self.channels, "channels")
        check_int(self.depth, "depth", 2)
        check_int(self.head, "head", 0)
        if not isinstance(self.residual, bool):
            raise ValueError(f"residual must be True or False, got {self.residual!r}")

    @property
    def factor(self) -> int:
        """The downsampling factor: inputs are padded to multiples of it."""
        return 2

    @property
    def margin(self) -> int:
        """The receptive-field radius in pixels, ``2 depth + 3``: ``depth`` half-resolution 3x3
        layers reach 2 depth pixels, the 2x2 shuffle block, box2 and the head one more each
        (the support of an output pixel's gradient, measured in the tests)."""
        return 2 * self.depth + 3


def noise_map(sigma: Array, shape: tuple[int, int, int, int]) -> Array:
    """Broadcast ``sigma`` — a scalar, one level per image (N,), or a map (N, H, W, 1) — to (N, H, W, 1)."""
    sigma = jnp.asarray(sigma, jnp.float32)
    if sigma.ndim <= 1:
        sigma = jnp.reshape(sigma, (-1, 1, 1, 1))
    if sigma.ndim != 4:
        raise ValueError(f"sigma must be a scalar, (N,) or (N, H, W, 1), got shape {sigma.shape}")
    return jnp.broadcast_to(sigma, (*shape[:3], 1))


def box2(x: Array) -> Array:
    """The mean of every 2x2 neighbourhood (x[i, j], x[i+1, j], x[i, j+1], x[i+1, j+1]; the last row
    and column repeated) of (N, H, W, C): zero response at half the sampling rate on each axis."""
    p = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="edge")
    return 0.25 * (p[:, :-1, :-1] + p[:, 1:, :-1] + p[:, :-1, 1:] + p[:, 1:, 1:])


class FFDNet(nn.Module):
    """FFDNet: (y (N, H, W, C), sigma) -> clean estimate (N, H, W, C), any H, W.

    ``sigma`` is anything :func:`noise_map` accepts. ``train=True`` normalises with batch
    statistics and updates the running averages (call ``apply`` with
    ``mutable=["batch_stats"]``); ``train=False`` uses the running averages.
    """

    config: FFDNetConfig

    @nn.compact
    def __call__(self, y: Array, sigma: Array, train: bool = False) -> Array:
        cfg = self.config
        if y.ndim != 4 or y.shape[-1] != cfg.channels:
            raise ValueError(f"expected y of shape (N, H, W, {cfg.channels}), got {y.shape}")
        x, hw = pad_to_multiple(jnp.concatenate([y, noise_map(sigma, y.shape)], axis=-1), cfg.factor)
        h = nn.relu(nn.Conv(cfg.features, (3, 3), name="conv_in")(pixel_unshuffle(x, cfg.factor)))
        for i in range(cfg.depth - 2):
            h = nn.Conv(cfg.features, (3, 3), use_bias=False, name=f"conv_{i}")(h)
            h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn_{i}")(h))
        width = cfg.head if cfg.head else cfg.channels
        out = crop(pixel_shuffle(nn.Conv(cfg.factor**2 * width, (3, 3), name="conv_out")(h), cfg.factor), hw)
        if cfg.head:
            out = nn.Conv(cfg.channels, (3, 3), name="head")(nn.relu(box2(out)))
        return y - out if cfg.residual else out


@functools.partial(jax.jit, static_argnames="config")
def init_ffdnet(config: FFDNetConfig, key: Array) -> dict[str, Any]:
    """Fresh variables {"params", "batch_stats"} of ``FFDNet(config)`` (independent of image size)."""
    y = jnp.zeros((1, config.factor, config.factor, config.channels), jnp.float32)
    return dict(FFDNet(config).init(key, y, 0.1))


@functools.partial(jax.jit, static_argnames="config")
def ffdnet_padded(variables: dict[str, Any], config: FFDNetConfig, x: Array, level: Array) -> Array:
    """Inference-mode FFDNet on a batch x (N, H, W, C) that already carries its margin, with
    ``level`` a scalar, (N,) or a map of x's shape (N, H, W, 1); not clipped. An output pixel
    depends only on the input within :attr:`FFDNetConfig.margin` of it, so rows of a padded
    frame can be run in overlapping bands (:mod:`usprior.denoisers.networks`)."""
    return FFDNet(config).apply(variables, x, level)


@functools.partial(jax.jit, static_argnames="config")
def ffdnet_apply(variables: dict[str, Any], config: FFDNetConfig, y: Array, sigma: Array) -> Array:
    """Inference-mode FFDNet on a batch y (N, H, W, C), any H, W; output clipped to [0, 1].

    The batch (and a noise map) is reflect-padded by :attr:`FFDNetConfig.margin` and the result
    cropped back, so no output pixel sees the convolutions' zero padding: the image border is
    denoised like its interior (a flat image stays flat up to its edges).
    """
    m = config.margin
    out = ffdnet_padded(variables, config, pad_margin(y, m), pad_margin(noise_map(sigma, y.shape), m))
    return jnp.clip(strip_margin(out, m), 0.0, 1.0)
