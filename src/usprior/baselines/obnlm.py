"""Optimized Bayesian non-local means (OBNLM) for ultrasound speckle, blockwise, in JAX.

P. Coupé, P. Hellier, C. Kervrann, C. Barillot, "Nonlocal means-based speckle filtering for
ultrasound images", IEEE Trans. Image Process. 18(10):2221-2229, 2009.

Noise model ``y = x + x^gamma eta`` (``gamma = 0.5`` by default), for which the Bayesian NLM
weights use the Pearson distance between a reference block ``B_c`` and a candidate block ``B_j``::

    d(c, j) = (1 / |B|) sum_k (y(B_c)_k - y(B_j)_k)^2 / max(y(B_j)_k, 1e-3)^(2 gamma),
    w(c, j) = exp(-d(c, j) / h^2),

``|B| = (2 block + 1)^2``. Deviation from the paper: the paper sums over the block, we average,
so ``h`` does not depend on the block size (the paper's ``h`` is ``h sqrt(|B|)``). The floor
1e-3 (:data:`usprior.physics.likelihoods.EPS`) keeps the denominator of dark pixels finite.

Blockwise estimate (paper, Section III): blocks of radius ``block`` are centred on the grid
``c = (step a, step b)``, ``a, b = 0, 1, ...`` inside the image. Each grid block is restored as
the weighted mean of the candidate blocks centred on every pixel ``j = c + o`` of the search
window ``|o|_inf <= search``,

    B^_c = sum_o w(c, c + o) y(B_{c + o}) / sum_o w(c, c + o),

and a pixel's estimate is the average of the restored values of all grid blocks covering it
(``step <= block + 1``, so every pixel is covered). The self weight (``o = 0``, distance 0) is
replaced by the largest weight of the other candidates (Buades et al. 2005; Coupé et al.), or
by 1 if they all underflow, which then returns the noisy block; the paper's block preselection
by local mean / variance is not used. The image is mirrored about its border without repeating
the edge (``mode="reflect"``) by ``search + block`` pixels.

Implementation: one jit-compiled function per (H, W, search, block, step), all data on the
device, two ``lax.fori_loop`` passes over the ``(2 search + 1)^2`` offsets. Pass 1 sums the
weights of each grid block; pass 2 adds, for every offset, the normalised weights scattered
onto the pixels of their blocks times the shifted image. Block distances are box sums of the
shifted Pearson term (separable ``lax.reduce_window``, strided to the grid), so memory is a few
(H, W) arrays whatever the window sizes.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from usprior.physics.likelihoods import EPS
from usprior.validation import as_float_image, check_int, check_nonnegative, check_positive, unit_image

__all__ = ["obnlm"]


def _box_sum(x: jax.Array, radius: int, stride: int) -> jax.Array:
    """Sums over the ``(2 radius + 1)^2`` windows of ``x`` ('valid'), every ``stride`` pixels."""
    size = 2 * radius + 1
    x = lax.reduce_window(x, 0.0, lax.add, (size, 1), (stride, 1), "VALID")
    return lax.reduce_window(x, 0.0, lax.add, (1, size), (1, stride), "VALID")


def _scatter_blocks(grid_values: jax.Array, shape: tuple[int, int], block: int, step: int) -> jax.Array:
    """``out[p] = sum_{grid c, |c - p|_inf <= block} grid_values[c]``: (Hg, Wg) -> ``shape`` (H, W)."""
    dilated = lax.pad(
        grid_values,
        jnp.zeros((), grid_values.dtype),
        [(block, n + block - 1 - (g - 1) * step, step - 1) for n, g in zip(shape, grid_values.shape, strict=True)],
    )
    return _box_sum(dilated, block, 1)


def _coverage(length: int, block: int, step: int) -> np.ndarray:
    """Number of grid centres ``0, step, 2 step, ... < length`` within ``block`` of each index: (length,)."""
    centres = np.arange(0, length, step)
    return (np.abs(np.arange(length)[:, None] - centres[None, :]) <= block).sum(axis=1).astype(np.float32)


@partial(jax.jit, static_argnames=("search", "block", "step"))
def _obnlm(image: jax.Array, h: jax.Array, gamma: jax.Array, search: int, block: int, step: int) -> jax.Array:
    """Blockwise OBNLM of a float32 (H, W) image (see the module docstring): -> (H, W)."""
    height, width = image.shape
    side = 2 * search + 1
    margin = search + block
    padded = jnp.pad(image, margin, mode="reflect")
    inv_scale = jnp.maximum(padded, EPS) ** (-2.0 * gamma)  # Pearson denominator of every pixel
    extent = (height + 2 * block, width + 2 * block)  # pixels of the blocks centred in the image
    reference = lax.dynamic_slice(padded, (search, search), extent)

    def offset(i: jax.Array) -> tuple[jax.Array, jax.Array]:
        return i // side - search, i % side - search

    def grid_weights(i: jax.Array) -> jax.Array:
        """exp(-d / h^2) of every grid block and its candidate at offset i: (Hg, Wg)."""
        dy, dx = offset(i)
        start = (search + dy, search + dx)
        candidate = lax.dynamic_slice(padded, start, extent)
        pearson = (reference - candidate) ** 2 * lax.dynamic_slice(inv_scale, start, extent)
        distance = _box_sum(pearson, block, step) / (2 * block + 1) ** 2
        return jnp.exp(-distance / (h * h))

    self_index = (side * side) // 2

    def accumulate_weights(i: jax.Array, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        total, largest = carry
        w = jnp.where(i == self_index, 0.0, grid_weights(i))
        return total + w, jnp.maximum(largest, w)

    grid_shape = (-(-height // step), -(-width // step))
    zeros = jnp.zeros(grid_shape, image.dtype)
    others, largest = lax.fori_loop(0, side * side, accumulate_weights, (zeros, zeros))
    self_weight = jnp.where(largest > 0.0, largest, 1.0)
    normaliser = others + self_weight

    def accumulate_estimate(i: jax.Array, estimate: jax.Array) -> jax.Array:
        w = jnp.where(i == self_index, self_weight, grid_weights(i))
        dy, dx = offset(i)
        shifted = lax.dynamic_slice(padded, (margin + dy, margin + dx), (height, width))
        return estimate + _scatter_blocks(w / normaliser, (height, width), block, step) * shifted

    estimate = lax.fori_loop(0, side * side, accumulate_estimate, jnp.zeros_like(image))
    coverage = jnp.outer(_coverage(height, block, step), _coverage(width, block, step))  # blocks per pixel
    return estimate / coverage


def obnlm(
    image: np.ndarray,
    h: float = 0.1,
    search: int = 7,
    block: int = 3,
    step: int = 2,
    gamma: float = 0.5,
) -> np.ndarray:
    """Blockwise OBNLM speckle filter (Coupé et al. 2009) of a 2-D image in [0, 1], on the JAX device.

    Args:
        image: (H, W) display (log-compressed) image in [0, 1], both sides >= ``2 block + 1``.
        h: smoothing parameter > 0 (default 0.1). A value near the noise level ``sigma`` of
            ``y = x + x^gamma sigma eta`` works well (e.g. ``LogSpeckle.from_image(y).sigma``).
        search: search window radius ``M`` >= 1 (default 7: 15 x 15 candidates, as the paper).
        block: block radius ``alpha`` >= 1 (default 3: 7 x 7 blocks, as the paper).
        step: grid spacing ``n`` of the block centres, 1 <= step <= block + 1 (default 2).
        gamma: noise-model exponent >= 0 (default 0.5; 0 gives the Gaussian NLM distance).

    Returns:
        float32 (H, W) in [0, 1].

    Raises:
        ValueError: an invalid image or parameter (``h <= 0``, non-integer or out-of-range
            ``search`` / ``block`` / ``step``, ``gamma < 0``).
    """
    h = check_positive(h, "h")
    search = check_int(search, "search", 1)
    block = check_int(block, "block", 1)
    step = check_int(step, "step", 1)
    if step > block + 1:
        raise ValueError(f"step must be <= block + 1 = {block + 1} so that blocks cover every pixel, got {step}")
    gamma = check_nonnegative(gamma, "gamma")
    y = as_float_image(image, min_size=2 * block + 1, name="image")
    out = _obnlm(jnp.asarray(y), jnp.float32(h), jnp.float32(gamma), search=search, block=block, step=step)
    return unit_image(out)
