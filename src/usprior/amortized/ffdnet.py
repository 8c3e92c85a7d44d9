"""FFDNet (Zhang, Zuo & Zhang 2018): a fast CNN denoiser with a tunable noise-level map.

For a noisy batch y (N, H, W, C) and a noise-level map s (N, H, W, 1),

    u = pixel_unshuffle(pad(concat(y, s)), 2)           (N, H'/2, W'/2, 4 (C + 1))
    h = ReLU(conv3x3(u))
    h = ReLU(BN(conv3x3(h)))                            (depth - 2) times
    x = crop(pixel_shuffle(conv3x3(h), 2))              (N, H, W, C)

where pad reflects H, W up to the next even H', W' and crop undoes it, so any image size
works. As in the paper the network predicts the clean image x directly (no residual
learning) and the output is not clipped; :func:`ffdnet_apply` clips it to [0, 1].

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

from usprior.amortized.shuffle import crop, pad_to_multiple, pixel_shuffle, pixel_unshuffle
from usprior.validation import check_int

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class FFDNetConfig:
    """Architecture: ``depth`` 3x3 conv layers of ``features`` channels on ``channels``-channel images.

    Zhang et al. use depth 15, 64 features for grayscale images.
    """

    features: int = 64
    depth: int = 15
    channels: int = 1

    def __post_init__(self) -> None:
        check_int(self.features, "features")
        check_int(self.channels, "channels")
        check_int(self.depth, "depth", 2)

    @property
    def factor(self) -> int:
        """The downsampling factor: inputs are padded to multiples of it."""
        return 2


def noise_map(sigma: Array, shape: tuple[int, int, int, int]) -> Array:
    """Broadcast ``sigma`` — a scalar, one level per image (N,), or a map (N, H, W, 1) — to (N, H, W, 1)."""
    sigma = jnp.asarray(sigma, jnp.float32)
    if sigma.ndim <= 1:
        sigma = jnp.reshape(sigma, (-1, 1, 1, 1))
    if sigma.ndim != 4:
        raise ValueError(f"sigma must be a scalar, (N,) or (N, H, W, 1), got shape {sigma.shape}")
    return jnp.broadcast_to(sigma, (*shape[:3], 1))


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
        out = nn.Conv(cfg.factor**2 * cfg.channels, (3, 3), name="conv_out")(h)
        return crop(pixel_shuffle(out, cfg.factor), hw)


@functools.partial(jax.jit, static_argnames="config")
def init_ffdnet(config: FFDNetConfig, key: Array) -> dict[str, Any]:
    """Fresh variables {"params", "batch_stats"} of ``FFDNet(config)`` (independent of image size)."""
    y = jnp.zeros((1, config.factor, config.factor, config.channels), jnp.float32)
    return dict(FFDNet(config).init(key, y, 0.1))


@functools.partial(jax.jit, static_argnames="config")
def ffdnet_apply(variables: dict[str, Any], config: FFDNetConfig, y: Array, sigma: Array) -> Array:
    """Inference-mode FFDNet on a batch y (N, H, W, C), any H, W; output clipped to [0, 1]."""
    return jnp.clip(FFDNet(config).apply(variables, y, sigma), 0.0, 1.0)
