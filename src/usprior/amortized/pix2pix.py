"""Pix2Pix (Isola et al. 2017): a U-Net generator G and a conditional PatchGAN discriminator D.

Generator, depth d, F = ``features``, channel widths c_i = F 2^min(i, 3) (capped at 8F)::

    e_0 = LReLU(conv4x4/2(pad(y)))
    e_i = LReLU(conv4x4/2(e_{i-1}))                     i = 1 .. d-1
    u_{d-1} = e_{d-1}
    u_i = concat(ReLU(Dropout(conv3x3(up2(u_{i+1})))), e_i)      i = d-2 .. 0
    f = concat(ReLU(conv3x3(up2(u_0))), pad(y))         full resolution, c_0 + C channels
    G(y) = crop(pad(y) + conv3x3(f))                    (N, H, W, C), residual

pad reflects H, W up to multiples of 2^d and crop undoes it, so any image size works; up2 is
nearest-neighbour upsampling by 2. Three departures from Isola et al.'s generator, each for a
failure seen on real frames:

* **resize-convolution** (up2 then a 3x3 convolution, Odena et al. 2016) instead of 4x4
  stride-2 transposed convolutions, whose uneven kernel overlap paints a checkerboard;
* **no normalisation**: instance norm divides every feature map by its own spread, so a nearly
  flat crop (a cyst, a dark chamber) was amplified into texture; without it the generator is a
  plain function of its input, the same on any crop and in training and inference;
* **residual output** with the input at full resolution in the last layer: a flat image only has
  to map to a zero correction, and the brightness is the input's unless the network changes it.
  The output is not squashed; :func:`pix2pix_apply` clips it to [0, 1].

Discriminator, L = ``layers``: on the pair concat(y, x) (N, H, W, 2C),
conv4x4/2 (F, no norm) -> L-1 x conv4x4/2 (IN) -> conv4x4/1 (IN) -> conv4x4/1 to 1 channel,
LReLU(0.2) between layers: a grid of real/fake logits (N, ceil(H/2^L), ceil(W/2^L), 1), each
judging one overlapping patch (L = 3: the 70x70 PatchGAN).

Losses, with BCE(l, t) = the binary cross-entropy of logits l against label t, mean over
the logit grid and batch, and t the teacher's target:

    L_G = BCE(D(y, G(y)), 1) + lambda_l1 mean|G(y) - t|        (lambda_l1 = 100 as in Isola et al.)
    L_D = (BCE(D(y, t), 1) + BCE(D(y, G(y)), 0)) / 2
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from usprior.amortized.shuffle import crop, pad_margin, pad_to_multiple, strip_margin
from usprior.validation import check_int, check_real

Array = jax.Array

LAMBDA_L1 = 100.0


def _width(features: int, level: int) -> int:
    return features * 2 ** min(level, 3)


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """U-Net generator: ``depth`` stride-2 levels, ``features`` channels at the first one
    (doubling per level up to 8x), ``dropout`` rate in the decoder (0: deterministic)."""

    features: int = 64
    depth: int = 5
    dropout: float = 0.0
    channels: int = 1

    def __post_init__(self) -> None:
        for name in ("features", "depth", "channels"):
            check_int(getattr(self, name), name)
        if not 0.0 <= check_real(self.dropout, "dropout") < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    @property
    def factor(self) -> int:
        """The downsampling factor 2^depth: inputs are padded to multiples of it."""
        return 2**self.depth

    @property
    def margin(self) -> int:
        """The reflect padding :func:`pix2pix_apply` adds on every side: the factor 2^depth."""
        return self.factor

    @property
    def reach(self) -> int:
        """The receptive-field radius in pixels, ``3 * 2^depth - 2``: the 4x4 stride-2 encoder
        reaches 2 (2^depth - 1) pixels, the decoder's nearest upsampling and 3x3 convolutions
        the rest (the support of an output pixel's gradient, measured in the tests)."""
        return 3 * 2**self.depth - 2


@dataclasses.dataclass(frozen=True)
class PatchGANConfig:
    """PatchGAN discriminator: ``layers`` stride-2 convolutions, ``features`` channels at the first."""

    features: int = 64
    layers: int = 3
    channels: int = 1

    def __post_init__(self) -> None:
        for name in ("features", "layers", "channels"):
            check_int(getattr(self, name), name)


class UNetGenerator(nn.Module):
    """G: y (N, H, W, C) -> clean estimate (N, H, W, C), any H, W (see the module docstring).

    ``train=True`` enables dropout (needs an rng named "dropout" when ``dropout > 0``).
    """

    config: UNetConfig

    @nn.compact
    def __call__(self, y: Array, train: bool = False) -> Array:
        cfg = self.config
        if y.ndim != 4 or y.shape[-1] != cfg.channels:
            raise ValueError(f"expected y of shape (N, H, W, {cfg.channels}), got {y.shape}")
        padded, hw = pad_to_multiple(y, cfg.factor)
        h, skips = padded, []
        for i in range(cfg.depth):
            h = nn.leaky_relu(nn.Conv(_width(cfg.features, i), (4, 4), strides=(2, 2), name=f"down_{i}")(h), 0.2)
            skips.append(h)
        for i in reversed(range(cfg.depth - 1)):
            h = nn.Conv(_width(cfg.features, i), (3, 3), name=f"up_{i}")(_upsample(h))
            h = nn.relu(nn.Dropout(cfg.dropout, deterministic=not train)(h))
            h = jnp.concatenate([h, skips[i]], axis=-1)
        h = nn.relu(nn.Conv(cfg.features, (3, 3), name="up_full")(_upsample(h)))
        correction = nn.Conv(cfg.channels, (3, 3), name="out")(jnp.concatenate([h, padded], axis=-1))
        return crop(padded + correction, hw)


def _upsample(h: Array) -> Array:
    """Nearest-neighbour upsampling by 2: (N, H, W, C) -> (N, 2H, 2W, C)."""
    return jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)


class PatchGAN(nn.Module):
    """D: (y, x) both (N, H, W, C) -> logits (N, ceil(H/2^L), ceil(W/2^L), 1) that x is real."""

    config: PatchGANConfig

    @nn.compact
    def __call__(self, y: Array, x: Array) -> Array:
        cfg = self.config
        h = jnp.concatenate([y, x], axis=-1)
        for i in range(cfg.layers + 1):
            stride = 2 if i < cfg.layers else 1
            h = nn.Conv(_width(cfg.features, i), (4, 4), strides=(stride, stride), name=f"conv_{i}")(h)
            if i > 0:
                h = nn.InstanceNorm(name=f"norm_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        return nn.Conv(1, (4, 4), name="logits")(h)


@functools.partial(jax.jit, static_argnames="config")
def init_unet(config: UNetConfig, key: Array) -> dict[str, Any]:
    """Fresh variables {"params"} of ``UNetGenerator(config)`` (independent of image size)."""
    y = jnp.zeros((1, config.factor, config.factor, config.channels), jnp.float32)
    return dict(UNetGenerator(config).init(key, y))


@functools.partial(jax.jit, static_argnames="config")
def init_patchgan(config: PatchGANConfig, key: Array) -> dict[str, Any]:
    """Fresh variables {"params"} of ``PatchGAN(config)`` (independent of image size)."""
    y = jnp.zeros((1, 2**config.layers, 2**config.layers, config.channels), jnp.float32)
    return dict(PatchGAN(config).init(key, y, y))


def generator_loss(
    fake_logits: Array, fake: Array, target: Array, lambda_l1: float = LAMBDA_L1
) -> tuple[Array, tuple[Array, Array]]:
    """L_G = BCE(D(y, G(y)), 1) + lambda_l1 mean|G(y) - t|; returns (L_G, (adversarial, L1))."""
    adversarial = jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)))
    l1 = jnp.mean(jnp.abs(fake - target))
    return adversarial + lambda_l1 * l1, (adversarial, l1)


def discriminator_loss(real_logits: Array, fake_logits: Array) -> Array:
    """L_D = (BCE(D(y, t), 1) + BCE(D(y, G(y)), 0)) / 2."""
    real = jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits)))
    fake = jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits)))
    return 0.5 * (real + fake)


@functools.partial(jax.jit, static_argnames="config")
def pix2pix_padded(variables: dict[str, Any], config: UNetConfig, x: Array) -> Array:
    """Inference-mode generator on a batch x (N, H, W, C) that already carries its margin; not
    clipped. An output pixel depends only on the input within :attr:`UNetConfig.reach` of it
    and on its position modulo the factor, so rows of a padded frame can be run in overlapping
    bands that start at multiples of the factor (:mod:`usprior.denoisers.networks`)."""
    return UNetGenerator(config).apply(variables, x)


@functools.partial(jax.jit, static_argnames="config")
def pix2pix_apply(variables: dict[str, Any], config: UNetConfig, y: Array) -> Array:
    """Inference-mode generator (no dropout) on a batch y (N, H, W, C), any H, W: (N, H, W, C), clipped to [0, 1].

    The batch is reflect-padded by the downsampling factor 2^depth on every side and the output
    cropped back, so the image border is not denoised against the convolutions' zero padding
    (flat frames: edge pixels moved by up to 0.06 without it, < 0.01 with it).
    """
    m = config.margin
    return jnp.clip(strip_margin(pix2pix_padded(variables, config, pad_margin(y, m)), m), 0.0, 1.0)
