"""Pixel (un)shuffle and padding to a multiple of a network's downsampling factor.

All functions work on batches in NHWC layout, (N, H, W, C), numpy or JAX arrays.

    pixel_unshuffle(x, r)[n, i, j, (a r + b) C + c] = x[n, r i + a, r j + b, c],  0 <= a, b < r

i.e. every r x r block becomes r^2 C channels, position-major (for r = 2 this is
:func:`usprior.priors.glow.squeeze`). :func:`pixel_shuffle` is its exact inverse.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from usprior.validation import check_int

Array = jax.Array


def pixel_unshuffle(x: Array, r: int) -> Array:
    """Space-to-depth: (N, H, W, C) -> (N, H/r, W/r, C r^2); H and W must be multiples of r."""
    r = check_int(r, "the shuffle factor")
    n, h, w, c = x.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle by {r} needs H, W divisible by {r}, got shape {x.shape}")
    x = jnp.reshape(x, (n, h // r, r, w // r, r, c))
    return jnp.reshape(jnp.transpose(x, (0, 1, 3, 2, 4, 5)), (n, h // r, w // r, r * r * c))


def pixel_shuffle(x: Array, r: int) -> Array:
    """Depth-to-space, the inverse of :func:`pixel_unshuffle`: (N, H, W, C r^2) -> (N, H r, W r, C)."""
    r = check_int(r, "the shuffle factor")
    n, h, w, c = x.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle by {r} needs channels divisible by {r * r}, got shape {x.shape}")
    x = jnp.reshape(x, (n, h, w, r, r, c // (r * r)))
    return jnp.reshape(jnp.transpose(x, (0, 1, 3, 2, 4, 5)), (n, h * r, w * r, c // (r * r)))


def pad_to_multiple(x: Array, m: int) -> tuple[Array, tuple[int, int]]:
    """Reflect-pad the bottom and right of (N, H, W, C) to (N, ceil(H/m) m, ceil(W/m) m, C).

    Returns the padded batch and the original (H, W), for :func:`crop`. Pads longer than the
    image reflect repeatedly (numpy ``mode="reflect"`` semantics).
    """
    m = check_int(m, "the padding multiple")
    h, w = x.shape[1], x.shape[2]
    pad = ((0, 0), (0, -h % m), (0, -w % m), (0, 0))
    return jnp.pad(x, pad, mode="reflect"), (h, w)


def pad_margin(x: Array, m: int) -> Array:
    """Reflect-pad all four sides of (N, H, W, C) by ``m`` pixels (numpy ``mode="reflect"``):
    run a network on the result and :func:`strip_margin` its output, and no pixel of the image
    sees the convolutions' zero padding (for ``m`` at least the receptive-field radius)."""
    return jnp.pad(x, ((0, 0), (m, m), (m, m), (0, 0)), mode="reflect")


def strip_margin(x: Array, m: int) -> Array:
    """Undo :func:`pad_margin`: drop ``m`` pixels on every side of (N, H, W, C)."""
    return x[:, m : x.shape[1] - m, m : x.shape[2] - m, :]


def crop(x: Array, hw: tuple[int, int]) -> Array:
    """The top-left (H, W) = ``hw`` window of (N, H', W', C): undoes :func:`pad_to_multiple`."""
    return x[:, : hw[0], : hw[1], :]
