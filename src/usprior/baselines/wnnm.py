"""Weighted nuclear norm minimisation (WNNM) denoising, vectorised in JAX.

S. Gu, L. Zhang, W. Zuo, X. Feng, "Weighted nuclear norm minimization with application to image
denoising", CVPR 2014, pp. 2862-2869. Used as a despeckling baseline with the noise level
``sigma`` as the smoothing knob by S. Cammarasana and G. Patanè (universal despeckling framework).

Notation: ``y`` the noisy image (H, W) in [0, 1], ``p`` the patch side, patch positions are the
top-left corners ``(i, j)``, ``0 <= i < R = H - p + 1``, ``0 <= j < C = W - p + 1``, numbered
``q = i C + j``; ``P_q(x)`` is the patch of ``x`` at ``q`` as a ``p^2`` vector (row-major).

Algorithm (paper, Alg. 1 and the authors' public Matlab code ``WNNM_code.zip``), for
``k = 0, ..., iterations - 1`` starting from ``x = y``:

1. Iterative regularisation ``y_k = x + delta (y - x)``.
2. Block matching, at ``k = 0`` and then every ``rematch`` iterations, on ``y_k``: the reference
   patches lie on the grid ``i in {0, step, 2 step, ...} + {R - 1}`` (same for ``j`` with ``C``),
   so the last row/column is always a reference and, since ``step <= p``, every pixel is covered.
   For each reference ``r`` the group is the ``n`` candidates ``q = r + (dy, dx)``,
   ``|dy|, |dx| <= search``, inside the image (the window is truncated at the border, as in the
   Matlab code) with the smallest ``||P_r(y_k) - P_q(y_k)||^2``; the reference itself is always
   the first member. ``n = min(n_similar, (sy + 1)(sx + 1))`` with ``sy = min(search, R - 1)``,
   ``sx = min(search, C - 1)``: the number of candidates of a corner reference, so every group
   is full (this only bites for images barely larger than a patch).
3. Noise level of group ``r``: ``sigma_r = sigma`` at ``k = 0`` (as the public code: the input
   level, without ``lambda_``), else the local estimate of the public code at the reference patch,
   ``sigma_r = lambda_ sqrt(max(sigma^2 - mean((P_r(y) - P_r(y_k))^2), 0))`` (the paper's Eq. for
   ``sigma_n^k`` with the mean over the reference patch instead of the whole image; the Matlab
   code takes ``abs`` where we take ``max(., 0)``, i.e. the paper's form).
4. WNNM of each group: ``Y = [P_q(y_k)]`` (``p^2 x n``), ``m`` its column mean,
   ``Y - m = U diag(s) V^T`` (batched ``jnp.linalg.svd``), singular values of the clean group
   ``s_X = sqrt(max(s^2 - n sigma_r^2, 0))``, weights ``w = c sqrt(n) / (s_X + eps)``, and the
   weighted singular value thresholding ``s' = max(s - w sigma_r^2, 0)``, the paper's closed-form
   solution for non-descending weights (``w`` grows as ``s`` decreases); ``X = U diag(s') V^T + m``.
   ``eps = 1e-8`` (Matlab's ``eps`` is 2.2e-16; the result is the same for any ``eps << sigma``).
5. Aggregation: every estimated patch of every group is added into the image with weight 1
   (uniform, as the public code's ``Patch2Im``) and the sum divided by the number of estimates
   covering each pixel; this is the new ``x``.

The result is clipped to [0, 1]. Deviations from the public code: a fixed group size ``n``
(the Matlab code removes 10 patches at every re-matching), the one-shot weights of the paper
(step 4) instead of the code's fixed-point ``ClosedWNNM``, and ``c = 2 sqrt(2)`` applied as
``w sigma^2`` (equal to the code's ``Par.c = sqrt(2)`` times the factor 2 in ``TempC``).

Implementation: one jit-compiled function per (image shape, integer parameters); the float
parameters are traced, so a sweep over ``sigma`` compiles once. The iterations are a
``lax.fori_loop`` and re-matching a ``lax.cond``. Block matching computes, for one vertical
offset ``dy`` at a time, the distances of all ``G`` references to their ``2 sx + 1`` candidates
of that offset row (shifted squared differences, separable box sums at the reference grid); a
``lax.scan`` over blocks of offset rows (about 1024 candidates per block) merges each block with
the ``n`` best so far by one ``lax.top_k``, so memory is ``O(G (n + 1024) + sx H W)``, not
``O(G (2 search + 1)^2)``. The groups are processed by a ``lax.scan`` over chunks of ``chunk``
references (one batched SVD of a ``(chunk, p^2, n)`` array per step) that scatter-adds the
estimated patches (``.at[].add`` at the groups' patch indices) into a ``(R C, p^2)`` patch
accumulator, folded into the image by one scatter-add with a static pixel-index array. On CPU the
call runs with BLAS limited to one thread (threadpoolctl): jaxlib's batched SVD is a loop of
small LAPACK calls, which a multi-threaded OpenBLAS slows down 40-80x on a loaded machine.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from usprior.blas import single_threaded_blas
from usprior.solvers.engine import balanced_chunk_size
from usprior.validation import as_float_image, check_int, check_positive, unit_image

__all__ = ["DEFAULTS", "wnnm"]

DEFAULTS: dict[str, float | int] = {
    "patch": 6,
    "n_similar": 60,
    "search": 15,
    "step": 3,
    "iterations": 8,
    "rematch": 2,
    "delta": 0.1,
    "c": 2.0 * math.sqrt(2.0),
    "lambda_": 0.54,
    "chunk": 1024,
}
"""Default parameters of :func:`wnnm` (see its docstring)."""

_MERGE_CANDIDATES = 1024  # block matching merges about this many new candidates per lax.top_k
_EPS = 1e-8  # the eps of the weights w = c sqrt(n) / (s_X + eps), in [0, 1] image units


def _reference_grid(n_positions: int, step: int) -> np.ndarray:
    """Reference positions ``0, step, 2 step, ...`` along one axis plus the last one, ``n_positions - 1``."""
    grid = np.arange(0, n_positions, step)
    if grid[-1] != n_positions - 1:
        grid = np.append(grid, n_positions - 1)
    return grid


def _row_box(x: jax.Array, patch: int) -> jax.Array:
    """Sums of ``patch`` consecutive rows ('valid') over the second-to-last axis: (..., H, W) -> (..., H - p + 1, W)."""
    rows = x.shape[-2] - patch + 1
    return sum(x[..., a : a + rows, :] for a in range(patch))


def _col_box(x: jax.Array, patch: int) -> jax.Array:
    """Sums of ``patch`` consecutive columns ('valid') over the last axis: (..., H, W) -> (..., H, W - p + 1)."""
    cols = x.shape[-1] - patch + 1
    return sum(x[..., a : a + cols] for a in range(patch))


def _patch_pixels(shape: tuple[int, int], patch: int) -> np.ndarray:
    """Flat pixel index of pixel ``(a, b)`` of the patch at ``q = i C + j`` of an (H, W) image: (R C, p^2) int32."""
    rows, cols = shape[0] - patch + 1, shape[1] - patch + 1
    corner = (np.arange(rows)[:, None] * shape[1] + np.arange(cols)[None, :]).reshape(-1, 1)
    within = (np.arange(patch)[:, None] * shape[1] + np.arange(patch)[None, :]).reshape(1, -1)
    return (corner + within).astype(np.int32)


def _patches(x: jax.Array, patch: int) -> jax.Array:
    """All ``patch x patch`` patches of ``x`` (H, W) as rows, position-major: -> (R C, p^2)."""
    return x.reshape(-1)[_patch_pixels(x.shape, patch)]


def _fold(values: jax.Array, shape: tuple[int, int], patch: int) -> jax.Array:
    """Overlap-add of per-patch values (R C, p^2) into an image ``shape`` (H, W) (adjoint of :func:`_patches`)."""
    flat = jnp.zeros(shape[0] * shape[1], values.dtype).at[_patch_pixels(shape, patch)].add(values)
    return flat.reshape(shape)


@partial(
    jax.jit,
    static_argnames=("patch", "n_similar", "search", "step", "iterations", "rematch", "chunk"),
)
def _wnnm(
    y: jax.Array,
    sigma: jax.Array,
    delta: jax.Array,
    c: jax.Array,
    lambda_: jax.Array,
    *,
    patch: int,
    n_similar: int,
    search: int,
    step: int,
    iterations: int,
    rematch: int,
    chunk: int,
) -> jax.Array:
    """WNNM of a float32 (H, W) image (module docstring), unclipped: -> (H, W)."""
    height, width = y.shape
    p, dim = patch, patch * patch
    rows, cols = height - p + 1, width - p + 1
    sy, sx = min(search, rows - 1), min(search, cols - 1)
    n = min(n_similar, (sy + 1) * (sx + 1))
    grid_r, grid_c = _reference_grid(rows, step), _reference_grid(cols, step)
    ref_r = np.repeat(grid_r, grid_c.size).astype(np.int32)  # (G,)
    ref_c = np.tile(grid_c, grid_r.size).astype(np.int32)
    n_refs = ref_r.size
    n_chunks, chunk = balanced_chunk_size(n_refs, chunk)  # fewer than n_chunks padding references
    pad = n_chunks * chunk - n_refs
    live = np.concatenate([np.ones(n_refs, np.float32), np.zeros(pad, np.float32)])  # padding refs add nothing

    side = 2 * sx + 1
    per_merge = min(2 * sy + 1, -(-_MERGE_CANDIDATES // side))  # offset rows per top_k merge
    n_merges = -(-(2 * sy + 1) // per_merge)
    dy_blocks = np.arange(-sy, -sy + n_merges * per_merge, dtype=np.int32).reshape(n_merges, per_merge)
    dxs = np.arange(-sx, sx + 1, dtype=np.int32)

    def match(x: jax.Array) -> jax.Array:
        """The ``n`` candidates nearest to each reference in ``x`` (reference first): -> (G, n) int32."""
        xp = jnp.pad(x, ((sy, sy), (sx, sx)))

        def row_distances(dy: jax.Array) -> jax.Array:
            """Squared patch distances of every reference to its candidates at offsets (dy, -sx..sx): (2sx+1, G)."""
            band = lax.dynamic_slice(xp, (sy + dy, 0), (height, width + 2 * sx))
            shifted = jax.vmap(lambda dx: lax.dynamic_slice_in_dim(band, sx + dx, width, axis=1))(jnp.asarray(dxs))
            diff = x[None] - shifted
            dist = _col_box(_row_box(diff * diff, p)[:, grid_r, :], p)[:, :, grid_c]  # (2sx+1, nr, nc)
            return dist.reshape(side, n_refs)

        def merge(best, dy):  # dy: (per_merge,) offset rows; rows past sy only pad the last block
            best_d, best_q = best
            dist = lax.map(row_distances, dy)  # (per_merge, 2sx+1, G)
            cand_r = ref_r[None, None, :] + dy[:, None, None]
            cand_c = jnp.asarray(ref_c[None, None, :] + dxs[None, :, None])
            valid = (dy[:, None, None] <= sy) & (cand_r >= 0) & (cand_r < rows) & (cand_c >= 0) & (cand_c < cols)
            dist = jnp.where(valid, dist, jnp.inf)
            dist = jnp.where((dy[:, None, None] == 0) & (dxs[None, :, None] == 0), -1.0, dist)  # reference first
            all_d = jnp.concatenate([best_d, dist.reshape(-1, n_refs).T], axis=1)
            all_q = jnp.concatenate([best_q, (cand_r * cols + cand_c).reshape(-1, n_refs).T], axis=1)
            neg, pos = lax.top_k(-all_d, n)
            return (-neg, jnp.take_along_axis(all_q, pos, axis=1)), None

        init = (jnp.full((n_refs, n), jnp.inf, x.dtype), jnp.zeros((n_refs, n), jnp.int32))
        (_, best_q), _ = lax.scan(merge, init, jnp.asarray(dy_blocks))
        return best_q

    def estimate(x: jax.Array, groups: jax.Array, noise: jax.Array) -> jax.Array:
        """Aggregated WNNM estimates of all groups (G, n) of ``x`` with noise levels (G,): -> (H, W)."""
        pats = _patches(x, p)  # (R C, p^2)
        groups = jnp.concatenate([groups, jnp.zeros((pad, n), groups.dtype)]).reshape(n_chunks, chunk, n)
        noise = jnp.concatenate([noise, jnp.zeros(pad, noise.dtype)]).reshape(n_chunks, chunk)
        weight = jnp.asarray(live).reshape(n_chunks, chunk)

        def one_chunk(acc, args):
            q, sig, wgt = args  # (chunk, n), (chunk,), (chunk,)
            members = pats[q]  # (chunk, n, p^2)
            mean = members.mean(axis=1, keepdims=True)
            u, s, vt = jnp.linalg.svd(jnp.swapaxes(members - mean, 1, 2), full_matrices=False)
            var = (sig * sig)[:, None]
            s_clean = jnp.sqrt(jnp.maximum(s * s - n * var, 0.0))
            w = c * math.sqrt(n) / (s_clean + _EPS)
            s_new = jnp.maximum(s - w * var, 0.0)
            est = jnp.swapaxes((u * s_new[:, None, :]) @ vt, 1, 2) + mean  # (chunk, n, p^2)
            return acc.at[q.reshape(-1)].add((est * wgt[:, None, None]).reshape(-1, dim)), None

        acc, _ = lax.scan(one_chunk, jnp.zeros((rows * cols, dim), x.dtype), (groups, noise, weight))
        counts = jnp.zeros(rows * cols, x.dtype).at[groups.reshape(-1)].add(jnp.repeat(weight.reshape(-1), n))
        num = _fold(acc, (height, width), p)
        den = _fold(jnp.broadcast_to(counts[:, None], (rows * cols, dim)), (height, width), p)
        return num / den

    def iteration(k, carry):
        x, groups = carry
        x = x + delta * (y - x)
        residual = _col_box(_row_box((y - x) ** 2, p)[grid_r, :], p)[:, grid_c].reshape(-1) / dim
        local = lambda_ * jnp.sqrt(jnp.maximum(sigma * sigma - residual, 0.0))
        noise = jnp.where(k == 0, sigma, local)
        groups = lax.cond(k % rematch == 0, match, lambda _: groups, x)
        return estimate(x, groups, noise), groups

    init = (y, jnp.zeros((n_refs, n), jnp.int32))
    x, _ = lax.fori_loop(0, iterations, iteration, init)
    return x


def wnnm(
    image: np.ndarray,
    sigma: float | None = None,
    *,
    patch: int = DEFAULTS["patch"],
    n_similar: int = DEFAULTS["n_similar"],
    search: int = DEFAULTS["search"],
    step: int = DEFAULTS["step"],
    iterations: int = DEFAULTS["iterations"],
    rematch: int = DEFAULTS["rematch"],
    delta: float = DEFAULTS["delta"],
    c: float = DEFAULTS["c"],
    lambda_: float = DEFAULTS["lambda_"],
    chunk: int = DEFAULTS["chunk"],
) -> np.ndarray:
    """Denoise ``image`` by weighted nuclear norm minimisation (Gu et al. 2014), see the module docstring.

    Args:
        image: (H, W) image, float in [0, 1] or integer (rescaled by its dtype range); both sides
            at least ``patch``.
        sigma: noise standard deviation in [0, 1] image units, > 0: the smoothing strength (larger
            smooths more). ``None`` estimates it with ``skimage.restoration.estimate_sigma``
            (wavelet MAD; an estimate of 0, e.g. for a constant image, leaves the image as is).
        patch: patch side ``p`` (6: the paper's value for sigma <= 20 / 255).
        n_similar: patches per group, reference included (60: the paper's 70 minus the first
            decrement of 10; clipped to the candidates of a corner reference on tiny images).
        search: half-size of the square search window, (2 search + 1)^2 candidates (public code: 30;
            15 here for speed: with step 3 about 2.5x faster, within 0.03 dB on a natural-image test).
        step: stride of the reference grid, 1 <= step <= patch (public code: floor(p / 2 - 1) = 2;
            3 here for speed).
        iterations: number of iterative-regularisation rounds K (paper, sigma <= 20 / 255: 8).
        rematch: block matching is redone every ``rematch`` iterations (public code: 2).
        delta: iterative regularisation weight in (0, 1] (paper: 0.1).
        c: weight constant, w = c sqrt(n) / (s_X + eps) (paper: 2 sqrt(2)).
        lambda_: noise re-estimation factor (paper: 0.54 for sigma <= 20 / 255, 0.56 up to 40 / 255).
        chunk: references per batched SVD: bounds memory (about chunk * n * p^2 * 16 bytes),
            not the result.

    Returns:
        (H, W) float32 estimate clipped to [0, 1].

    Raises:
        ValueError: a non-2-D / non-finite / out-of-range image, a side shorter than ``patch``,
            a non-positive ``sigma``, ``delta``, ``c`` or ``lambda_``, ``delta > 1``, a non-integer
            or too small integer parameter, or ``step > patch`` (pixels left uncovered).
    """
    patch = check_int(patch, "patch", 1)
    y = as_float_image(image, min_size=patch, name="image")
    n_similar = check_int(n_similar, "n_similar", 1)
    search = check_int(search, "search", 1)
    step = check_int(step, "step", 1)
    if step > patch:
        raise ValueError(f"step must be <= patch (= {patch}) so that every pixel is covered, got {step}")
    iterations = check_int(iterations, "iterations", 1)
    rematch = check_int(rematch, "rematch", 1)
    chunk = check_int(chunk, "chunk", 1)
    delta = check_positive(delta, "delta")
    if delta > 1.0:
        raise ValueError(f"delta must lie in (0, 1], got {delta!r}")
    c = check_positive(c, "c")
    lambda_ = check_positive(lambda_, "lambda_")
    if sigma is None:
        from skimage.restoration import estimate_sigma

        sigma = float(estimate_sigma(y))
        if not sigma > 0.0:
            return y.copy()
    else:
        sigma = check_positive(sigma, "sigma")
    with single_threaded_blas():
        out = _wnnm(
            jnp.asarray(y),
            jnp.float32(sigma),
            jnp.float32(delta),
            jnp.float32(c),
            jnp.float32(lambda_),
            patch=patch,
            n_similar=n_similar,
            search=search,
            step=step,
            iterations=iterations,
            rematch=rematch,
            chunk=chunk,
        )
        out = np.asarray(out)  # block here: the SVDs run asynchronously, inside the thread limit
    return unit_image(out)
