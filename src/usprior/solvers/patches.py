"""Tiling an image into overlapping square patches and stitching them back.

An ``(H, W)`` image is reflect-padded to ``(Hp, Wp)`` and cut into every ``patch x patch``
window whose top-left corner lies on the ``stride`` lattice of the padded image,

    P_k = x_pad[s * iy : s * iy + patch, s * ix : s * ix + patch],   k = iy * nx + ix,

so that patches are in row-major order of their positions. The padding is ``patch // 2`` on
every side (border pixels then sit at the centre of some patch), plus up to ``stride - 1``
extra rows/columns at the bottom/right so that the lattice ends exactly on the padded edge:
``(Hp - patch) % stride == 0`` and ``(Wp - patch) % stride == 0``, giving
``ny = (Hp - patch) // stride + 1`` and ``nx = (Wp - patch) // stride + 1``.

Stitching is the weighted overlap-add with a separable, strictly positive Hann window ``w``,

    x = crop( sum_k w * P_k  /  sum_k w )      (sums placed on the padded canvas),

so stitching the patches of an image returns the image exactly, and stitching arbitrary
patches gives, at every pixel, a convex combination of the patch values covering it.

All index arrays are computed with numpy from the (static, hashable) :class:`PatchGrid`, so
:func:`extract_patches` (one gather) and :func:`stitch_patches` (one scatter-add) trace to
static shapes under ``jax.jit`` with ``grid`` a static argument.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from usprior.validation import check_int

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class PatchGrid:
    """How an ``image_shape = (H, W)`` image is tiled into ``patch x patch`` patches.

    ``padding = (top, bottom, left, right)`` is the reflect padding, ``padded_shape =
    (H + top + bottom, W + left + right) = (Hp, Wp)``, and ``grid_shape = (ny, nx)`` the
    number of patch positions per axis, ``ny = (Hp - patch) // stride + 1`` (same for x).
    Frozen, hence hashable: usable as a static argument of ``jax.jit``.
    """

    image_shape: tuple[int, int]
    patch: int
    stride: int
    padding: tuple[int, int, int, int]
    padded_shape: tuple[int, int]
    grid_shape: tuple[int, int]

    @property
    def n_patches(self) -> int:
        """Total number of patches N = ny * nx."""
        return self.grid_shape[0] * self.grid_shape[1]


def patch_grid(image_shape: tuple[int, int], patch: int = 32, stride: int = 16) -> PatchGrid:
    """Tiling of an ``(H, W)`` image by ``patch x patch`` patches every ``stride`` pixels.

    Pads ``patch // 2`` on every side, then ``(-H) % stride`` extra rows at the bottom and
    ``(-W) % stride`` extra columns at the right, so that ``(Hp - patch) % stride == 0``.
    Raises ``ValueError`` unless ``patch >= 2`` is even, ``1 <= stride <= patch`` and both
    image dimensions are at least ``patch``.
    """
    if len(image_shape) != 2:
        raise ValueError(f"image_shape must be (H, W), got {tuple(image_shape)}")
    height, width = (int(n) for n in image_shape)
    patch, stride = check_int(patch, "patch size", 0), check_int(stride, "stride", 0)
    if patch < 2 or patch % 2:
        raise ValueError(f"patch size must be an even integer >= 2, got {patch}")
    if not 1 <= stride <= patch:
        raise ValueError(f"stride must satisfy 1 <= stride <= patch = {patch}, got {stride}")
    if height < patch or width < patch:
        raise ValueError(
            f"image of shape ({height}, {width}) is smaller than the {patch}x{patch} patch size"
        )
    half = patch // 2
    padding = (half, half + (-height) % stride, half, half + (-width) % stride)
    padded_shape = (height + padding[0] + padding[1], width + padding[2] + padding[3])
    grid_shape = (
        (padded_shape[0] - patch) // stride + 1,
        (padded_shape[1] - patch) // stride + 1,
    )
    return PatchGrid((height, width), patch, stride, padding, padded_shape, grid_shape)


def _padded_indices(n_positions: int, patch: int, stride: int) -> np.ndarray:
    """Padded-canvas coordinates of every patch along one axis: ``(n_positions, patch)``,
    entry ``[i, j] = i * stride + j``."""
    return stride * np.arange(n_positions)[:, None] + np.arange(patch)[None, :]


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Map coordinates of a reflect-padded axis (0 = first image pixel) into ``[0, size)``.

    Reflection about the edge pixels (numpy's ``mode="reflect"``) is periodic with period
    ``2 (size - 1)``: ``m = i mod 2(size - 1)``, then ``m`` if ``m < size`` else
    ``2(size - 1) - m``. Valid for paddings of any width; needs ``size >= 2``.
    """
    period = 2 * (size - 1)
    folded = np.mod(index, period)
    return np.where(folded < size, folded, period - folded)


def extract_patches(image: Array, grid: PatchGrid) -> Array:
    """All patches of the reflect-padded image: ``(H, W) -> (N, patch, patch)``.

    ``out[iy * nx + ix] = x_pad[s*iy : s*iy + patch, s*ix : s*ix + patch]`` with ``s`` the
    stride, computed as a single gather from the unpadded image (the padding is folded
    into the static index arrays).
    """
    if image.shape != grid.image_shape:
        raise ValueError(f"image of shape {image.shape} does not match grid {grid.image_shape}")
    top, _, left, _ = grid.padding
    ny, nx = grid.grid_shape
    rows = _reflect(_padded_indices(ny, grid.patch, grid.stride) - top, grid.image_shape[0])
    cols = _reflect(_padded_indices(nx, grid.patch, grid.stride) - left, grid.image_shape[1])
    tiles = jnp.asarray(image)[rows[:, None, :, None], cols[None, :, None, :]]
    return tiles.reshape(grid.n_patches, grid.patch, grid.patch)


def _hann(patch: int) -> Array:
    """Half-sample shifted periodic Hann window ``h[i] = sin^2(pi (i + 0.5) / patch)``.

    Shape ``(patch,)``.
    """
    return jnp.sin(jnp.pi * (jnp.arange(patch) + 0.5) / patch) ** 2


def overlap_window(patch: int) -> Array:
    """Overlap-add weights ``w = outer(h, h)``: ``(patch, patch)``, strictly positive.

    ``h[i] = sin^2(pi (i + 0.5) / patch)`` is the periodic Hann window shifted by half a
    sample, so ``0 < h[i] <= 1``. For ``stride = patch / 2`` its shifted copies form a
    partition of unity, ``h[i] + h[i + patch/2] = sin^2(.) + cos^2(.) = 1``, hence the sum
    of the 2-D windows over all overlapping patch positions is exactly 1 on the interior.
    """
    h = _hann(patch)
    return h[:, None] * h[None, :]


def _overlap_add_1d(h: Array, index: np.ndarray, size: int) -> Array:
    """Sum of the window over all patch positions along one padded axis.

    ``out[t] = sum_{i, j : index[i, j] = t} h[j]`` with ``index`` the ``(n, patch)`` padded
    coordinates of :func:`_padded_indices`; ``h`` is ``(patch,)``, ``out`` is ``(size,)``.
    """
    return jnp.zeros(size, h.dtype).at[index].add(jnp.broadcast_to(h, index.shape))


def stitch_patches(patches: Array, grid: PatchGrid) -> Array:
    """Weighted overlap-add of patches: ``(N, patch, patch) -> (H, W)``.

    ``x = crop( sum_k w * P_k / sum_k w )`` where each term is placed at its patch position
    on the ``(Hp, Wp)`` padded canvas, ``w`` is :func:`overlap_window` and ``crop`` removes
    the padding. The numerator is one scatter-add; the denominator is separable,
    ``sum_k w = outer(sum_iy h, sum_ix h)``, and strictly positive everywhere since the
    patches cover the whole canvas.
    """
    expected = (grid.n_patches, grid.patch, grid.patch)
    if patches.shape != expected:
        raise ValueError(f"patches of shape {patches.shape} do not match the grid's {expected}")
    ny, nx = grid.grid_shape
    height, width = grid.image_shape
    top, _, left, _ = grid.padding
    dtype = jnp.promote_types(patches.dtype, jnp.float32)
    rows = _padded_indices(ny, grid.patch, grid.stride)
    cols = _padded_indices(nx, grid.patch, grid.stride)
    weighted = patches.astype(dtype) * overlap_window(grid.patch).astype(dtype)
    weighted = weighted.reshape(ny, nx, grid.patch, grid.patch)
    numerator = jnp.zeros(grid.padded_shape, dtype)
    numerator = numerator.at[rows[:, None, :, None], cols[None, :, None, :]].add(weighted)
    h = _hann(grid.patch).astype(dtype)
    weight_y = _overlap_add_1d(h, rows, grid.padded_shape[0])
    weight_x = _overlap_add_1d(h, cols, grid.padded_shape[1])
    denominator = weight_y[:, None] * weight_x[None, :]
    return (numerator / denominator)[top : top + height, left : left + width]
