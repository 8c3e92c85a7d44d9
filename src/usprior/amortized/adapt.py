"""Self-supervised adaptation of an FFDNet to a user's scanner: no clean targets needed.

Neighbor2Neighbor (Huang et al., CVPR 2021) trains a denoiser f on noisy images alone: from each
image y two sub-images g1(y), g2(y) are taken, one pixel per ``cell`` x ``cell`` block each, at
different positions of the block; if the noise of the two positions is independent,
E ||f(g1 y) - g2 y||^2 is minimised by the clean sub-image. Its loss, with the regulariser that
ties the sub-sampled full-image output to the sub-image output,

    L = mean (f(g1 y) - g2 y)^2 + gamma * mean (f(g1 y) - g2 y - (g1 f(y) - g2 f(y)))^2,

(f(y) without gradient). Speckle is correlated over several pixels, so neighbouring pixels share
their noise and the plain 2 x 2 cells of the paper would teach the identity. Here the two pixels
of a block come from *opposite quadrants* of a ``cell`` x ``cell`` block (default 6): at least
``cell / 2`` = 3 pixels apart, beyond the speckle grain of the B-mode the models are made for.

The network runs in inference mode (BatchNorm's running statistics frozen) and only its weights
move, from the checkpoint given (``usprior adapt FRAMES... --from ffdnet_us -o my_model``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from usprior.amortized.ffdnet import FFDNet, FFDNetConfig
from usprior.validation import check_int, check_nonnegative, check_positive

Array = jax.Array


class AdaptResult(NamedTuple):
    """The adapted variables, the training loss per step, and the held-out loss before / after."""

    variables: dict[str, Any]
    losses: np.ndarray
    heldout_before: float
    heldout_after: float


def neighbor_indices(key: Array, height: int, width: int, cell: int) -> tuple[Array, Array]:
    """Flat pixel indices (h, w) of g1 and g2 in an (H, W) image, h = H // cell, w = W // cell:
    per block, g1 is a random pixel of its top-left quadrant and g2 one of its bottom-right."""
    h, w, half = height // cell, width // cell, cell // 2
    k1, k2 = jax.random.split(key)
    rows0 = (jnp.arange(h) * cell)[:, None]
    cols0 = (jnp.arange(w) * cell)[None, :]
    o1 = jax.random.randint(k1, (2, h, w), 0, half)
    o2 = jax.random.randint(k2, (2, h, w), 0, half) + half
    first = (rows0 + o1[0]) * width + cols0 + o1[1]
    second = (rows0 + o2[0]) * width + cols0 + o2[1]
    return first, second


def _sub(images: Array, index: Array) -> Array:
    """(N, H, W, 1) sampled at flat indices (h, w) -> (N, h, w, 1)."""
    flat = images.reshape(images.shape[0], -1)
    return flat[:, index][..., None]


def neighbor_loss(params: Any, batch_stats: Any, config: FFDNetConfig, y: Array, sigma: Array, key: Array,
                  cell: int, gamma: float) -> Array:
    """The Neighbor2Neighbor loss L of the module docstring for a batch y (N, H, W, 1)."""
    model = FFDNet(config)
    variables = {"params": params, "batch_stats": batch_stats}
    first, second = neighbor_indices(key, y.shape[1], y.shape[2], cell)
    g1, g2 = _sub(y[..., 0], first), _sub(y[..., 0], second)
    out = model.apply(variables, g1, sigma)
    full = jax.lax.stop_gradient(model.apply(variables, y, sigma))
    e1, e2 = _sub(full[..., 0], first), _sub(full[..., 0], second)
    return jnp.mean(jnp.square(out - g2)) + gamma * jnp.mean(jnp.square(out - g2 - (e1 - e2)))


@functools.partial(jax.jit, static_argnames=("config", "tx", "cell"))
def _step(params, opt_state, batch_stats, config, tx, y, sigma, key, cell: int, gamma: float):
    loss, grads = jax.value_and_grad(neighbor_loss)(params, batch_stats, config, y, sigma, key, cell, gamma)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnames=("config", "cell"))
def _eval(params, batch_stats, config, y, sigma, key, cell: int, gamma: float):
    return neighbor_loss(params, batch_stats, config, y, sigma, key, cell, gamma)


def random_crops(frames: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size`` x ``size`` crops (n, size, size, 1) from frames (each (H, W) >= size)."""
    out = np.empty((n, size, size, 1), np.float32)
    for i in range(n):
        frame = frames[rng.integers(len(frames))]
        r = rng.integers(frame.shape[0] - size + 1)
        c = rng.integers(frame.shape[1] - size + 1)
        out[i, ..., 0] = frame[r : r + size, c : c + size]
    return out


def adapt_ffdnet(
    variables: dict[str, Any],
    config: FFDNetConfig,
    train_frames: list[np.ndarray],
    heldout_frames: list[np.ndarray],
    sigma: float,
    steps: int = 200,
    batch: int = 8,
    crop: int = 96,
    learning_rate: float = 1e-4,
    cell: int = 6,
    gamma: float = 1.0,
    seed: int = 0,
) -> AdaptResult:
    """Fine-tune an FFDNet's weights on noisy frames (each (H, W), float32 in [0, 1], >= ``crop``)
    with the Neighbor2Neighbor loss at noise level ``sigma``; the loss on a fixed set of held-out
    crops is measured before and after. Deterministic for a ``seed``."""
    steps, batch, crop, cell = (check_int(v, n) for v, n in ((steps, "steps"), (batch, "batch"), (crop, "crop"), (cell, "cell")))
    if cell < 2 or cell % 2 or crop < cell:
        raise ValueError(f"cell must be even and >= 2 and crop >= cell, got cell {cell}, crop {crop}")
    check_nonnegative(gamma, "gamma")
    level = jnp.float32(check_positive(sigma, "sigma"))
    for f in [*train_frames, *heldout_frames]:
        if min(f.shape) < crop:
            raise ValueError(f"every frame must be at least {crop} px on each side (the crop), got {f.shape}")
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    tx = optax.adam(check_positive(learning_rate, "learning_rate"))
    params, stats = variables["params"], variables["batch_stats"]
    opt_state = tx.init(params)
    heldout = jnp.asarray(random_crops(heldout_frames, 4 * batch, crop, np.random.default_rng(seed + 1)))
    eval_key = jax.random.PRNGKey(seed + 1)
    before = float(_eval(params, stats, config, heldout, level, eval_key, cell, gamma))
    losses = []
    for _ in range(steps):
        key, sub = jax.random.split(key)
        y = jnp.asarray(random_crops(train_frames, batch, crop, rng))
        params, opt_state, loss = _step(params, opt_state, stats, config, tx, y, level, sub, cell, gamma)
        losses.append(float(loss))
    after = float(_eval(params, stats, config, heldout, level, eval_key, cell, gamma))
    return AdaptResult({"params": params, "batch_stats": stats}, np.asarray(losses), before, after)
