"""Tests for usprior.solvers.patches: tiling, reflect padding, overlap-add stitching."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from usprior.solvers.patches import (
    PatchGrid,
    extract_patches,
    overlap_window,
    patch_grid,
    stitch_patches,
)

SHAPES = [(32, 32), (33, 47), (100, 64), (257, 129)]
STRIDES = [4, 8, 16, 32]

# Jitted once here (grid static): eager dispatch would compile every primitive separately.
extract = jax.jit(extract_patches, static_argnums=1)
stitch = jax.jit(stitch_patches, static_argnums=1)


def _image(shape: tuple[int, int], seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), dtype=jnp.float32)


@pytest.mark.parametrize(("shape", "stride"), list(itertools.product(SHAPES, STRIDES)))
def test_round_trip(shape: tuple[int, int], stride: int) -> None:
    grid = patch_grid(shape, patch=32, stride=stride)
    image = _image(shape)
    patches = extract(image, grid)
    assert patches.shape == (grid.n_patches, 32, 32)
    np.testing.assert_allclose(stitch(patches, grid), image, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("shape", "patch", "stride"), [((9, 13), 8, 3), ((33, 47), 32, 32)])
def test_patches_match_numpy_reflect_pad(shape: tuple[int, int], patch: int, stride: int) -> None:
    grid = patch_grid(shape, patch=patch, stride=stride)
    top, bottom, left, right = grid.padding
    assert top == left == patch // 2
    padded = np.pad(np.asarray(_image(shape)), ((top, bottom), (left, right)), mode="reflect")
    assert padded.shape == grid.padded_shape
    assert (padded.shape[0] - patch) % stride == 0 and (padded.shape[1] - patch) % stride == 0
    ny, nx = grid.grid_shape
    assert ny == (shape[0] + top + bottom - patch) // stride + 1
    assert nx == (shape[1] + left + right - patch) // stride + 1
    assert grid.n_patches == ny * nx

    patches = np.asarray(extract(_image(shape), grid))
    assert patches.shape == (ny * nx, patch, patch)
    for iy, ix in itertools.product(range(ny), range(nx)):
        y, x = iy * stride, ix * stride
        np.testing.assert_array_equal(patches[iy * nx + ix], padded[y : y + patch, x : x + patch])


def test_grid_formula_and_hashable() -> None:
    grid = patch_grid((33, 47), patch=32, stride=16)
    # pad 16 each side, then (-33) % 16 = 15 and (-47) % 16 = 1 extra at the bottom/right
    assert grid.padding == (16, 31, 16, 17)
    assert grid.padded_shape == (80, 80)
    assert grid.grid_shape == (4, 4)
    assert grid.n_patches == 16
    assert isinstance(grid, PatchGrid)
    assert hash(grid) == hash(patch_grid((33, 47), patch=32, stride=16))


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_stitch_constant(stride: int) -> None:
    grid = patch_grid((70, 45), patch=32, stride=stride)
    patches = jnp.full((grid.n_patches, 32, 32), 0.37, dtype=jnp.float32)
    np.testing.assert_allclose(stitch(patches, grid), 0.37, atol=1e-6, rtol=0)


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_stitch_is_convex_combination(stride: int) -> None:
    grid = patch_grid((70, 45), patch=32, stride=stride)
    n = grid.n_patches
    labels = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[:, None, None], (n, 32, 32))
    image = np.asarray(stitch(labels, grid))
    assert image.shape == (70, 45)
    assert np.all(np.isfinite(image))
    assert image.min() >= -1e-5 and image.max() <= n - 1 + 1e-4


def test_overlap_window_values() -> None:
    w = np.asarray(overlap_window(32))
    h = np.sin(np.pi * (np.arange(32) + 0.5) / 32) ** 2
    assert w.shape == (32, 32)
    np.testing.assert_allclose(w, np.outer(h, h), atol=1e-6)
    assert w.min() > 0 and w.max() <= 1
    np.testing.assert_allclose(w, w.T, atol=0)


@pytest.mark.parametrize("patch", [8, 32])
def test_partition_of_unity_at_half_stride(patch: int) -> None:
    w = np.asarray(overlap_window(patch), dtype=np.float64)
    stride, n = patch // 2, 6
    size = (n - 1) * stride + patch
    canvas = np.zeros((size, size))
    for iy, ix in itertools.product(range(n), range(n)):
        canvas[iy * stride : iy * stride + patch, ix * stride : ix * stride + patch] += w
    interior = canvas[stride:-stride, stride:-stride]
    np.testing.assert_allclose(interior, 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "patch", "stride", "message"),
    [
        ((20, 300), 32, 16, r"image of shape \(20, 300\) is smaller than the 32x32 patch size"),
        ((64, 31), 32, 16, "smaller than the 32x32 patch"),
        ((64, 64), 32, 0, "stride"),
        ((64, 64), 32, 33, "stride"),
        ((64, 64), 31, 16, "even"),
        ((64, 64), 0, 1, "even"),
        ((64, 64), 32, 1.5, "stride must be an integer, got 1.5"),  # used to run silently as stride 1
        ((64, 64), 32, True, "stride must be an integer, got True"),
    ],
)
def test_bad_inputs(shape: tuple[int, int], patch: int, stride: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        patch_grid(shape, patch=patch, stride=stride)


def test_shape_mismatch_raises() -> None:
    grid = patch_grid((40, 40), patch=32, stride=16)
    with pytest.raises(ValueError):
        extract_patches(jnp.zeros((41, 40)), grid)
    with pytest.raises(ValueError):
        stitch_patches(jnp.zeros((grid.n_patches + 1, 32, 32)), grid)


def test_jit_matches_eager() -> None:
    grid = patch_grid((50, 77), patch=32, stride=16)
    image = _image((50, 77), seed=1)
    patches = extract(image, grid)
    np.testing.assert_array_equal(patches, extract_patches(image, grid))
    np.testing.assert_allclose(stitch(patches, grid), stitch_patches(patches, grid), atol=1e-6)


def test_equal_grids_share_one_trace() -> None:
    traces: list[PatchGrid] = []

    def traced(image: jax.Array, grid: PatchGrid) -> jax.Array:
        traces.append(grid)
        return extract_patches(image, grid)

    jitted = jax.jit(traced, static_argnums=1)
    image = _image((40, 40))
    first = jitted(image, patch_grid((40, 40), patch=32, stride=8))
    second = jitted(image, patch_grid((40, 40), patch=32, stride=8))
    np.testing.assert_array_equal(first, second)
    assert len(traces) == 1
