"""The patch engine shared by latent MAP and unrolled MAP: grid, balanced chunks, solve, stitch.

Both estimators denoise an image (H, W) patch by patch:

1. :func:`patch_problem`: the strided grid of the reflect-padded image
   (:func:`usprior.solvers.patches.patch_grid`), the noisy patches y (N, P, P, 1) and the patches
   of the Gaussian-smoothed image g * y (the usual start, f(clip(g * y))).
2. :func:`solve_chunks`: the N patches in ceil(N / chunk) *balanced* chunks of one static size
   (:func:`balanced_chunks`; the last chunk is padded by repeating the last patch, so a chunked
   solver compiles once per image size and wastes fewer than ``n_chunks`` patch solves), each
   chunk solved by the estimator's own jitted per-chunk step, waited for before the next one is
   dispatched (so Ctrl-C stops within one chunk, and device memory holds one chunk's work).
   With several local devices each chunk is split over all of them (``jax.sharding``, a 1-D
   mesh over the patch axis): the per-patch problems are independent, so no communication.
3. :func:`usprior.solvers.patches.stitch_patches`: Hann-weighted overlap-add of the result.

Only step 2's ``solve`` differs between the estimators; it never sees the image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage
from tqdm.auto import tqdm

from jax.sharding import Mesh, NamedSharding, PartitionSpec

from usprior.solvers.patches import PatchGrid, extract_patches, patch_grid

Array = jax.Array
T = TypeVar("T")


class PatchProblem(NamedTuple):
    """The patches of one image: its ``grid``, the noisy patches ``y`` (N, P, P, 1) and the
    patches ``start`` (N, P, P, 1) of the starting image (by default the image smoothed by a
    Gaussian of ``blur`` px)."""

    grid: PatchGrid
    y: Array
    start: Array


def balanced_chunk_size(n: int, max_chunk: int, multiple: int = 1) -> tuple[int, int]:
    """(n_chunks, size): the fewest chunks of at most ``max_chunk`` items, all of one ``size``:
    n_chunks = ceil(n / max_chunk), size = ceil(n / n_chunks) rounded up to a multiple of
    ``multiple`` (the number of devices a chunk is split over). With ``multiple`` = 1 there are
    fewer than n_chunks padding items."""
    n_chunks = -(-n // max_chunk)
    size = -(-n // n_chunks)
    return n_chunks, -(-size // multiple) * multiple


def balanced_chunks(n: int, max_chunk: int, multiple: int = 1) -> np.ndarray:
    """Indices (n_chunks, size) of :func:`balanced_chunk_size` chunks of range(n), the padding
    entries repeating the last index n - 1."""
    n_chunks, size = balanced_chunk_size(n, max_chunk, multiple)
    return np.minimum(np.arange(n_chunks * size), n - 1).reshape(n_chunks, size)


def patch_sharding(devices: Sequence[jax.Device] | None = None) -> NamedSharding | None:
    """The sharding that splits a batch of patches (axis 0) over ``devices`` (default: all local
    devices); None for a single device (nothing to split)."""
    devices = list(jax.local_devices() if devices is None else devices)
    if len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.array(devices), ("patches",)), PartitionSpec("patches"))


def blurred(image: np.ndarray, blur: float) -> np.ndarray:
    """g * image (H, W), g a Gaussian of std ``blur`` px (reflect boundary; 0: the image itself):
    latent MAP's default start."""
    return scipy.ndimage.gaussian_filter(image, blur, mode="reflect") if blur > 0 else image


def patch_problem(
    image: np.ndarray, patch: int, stride: int, blur: float, start: np.ndarray | None = None
) -> PatchProblem:
    """Cut a float32 image (H, W) into its strided patches and those of the start image.

    The start is ``start`` (H, W) when given (e.g. a fast denoiser's estimate), else g * y with
    g a Gaussian of std ``blur`` px (reflect boundary; 0: the image itself).
    """
    grid = patch_grid(image.shape, patch, stride)
    smooth = blurred(image, blur) if start is None else start
    y = extract_patches(jnp.asarray(image, jnp.float32), grid)[..., None]
    start = extract_patches(jnp.asarray(smooth, jnp.float32), grid)[..., None]
    return PatchProblem(grid, y, start)


def replicate(tree: T, sharding: NamedSharding | None) -> T:
    """``tree`` (e.g. the prior and the likelihood a per-chunk step closes over) copied to every
    device of ``sharding``'s mesh, so it can meet the sharded patches; unchanged for None."""
    if sharding is None:
        return tree
    return jax.device_put(tree, NamedSharding(sharding.mesh, PartitionSpec()))


def solve_chunks(
    solve: Callable[..., Array | tuple[Array, ...]],
    inputs: Sequence[Array | np.ndarray],
    chunk: int,
    progress: bool = False,
    desc: str = "patch chunks",
    sharding: NamedSharding | None = None,
) -> tuple[Array, ...]:
    """``solve(*[a[rows] for a in inputs])`` for every balanced chunk ``rows`` of the N patches.

    ``inputs`` are per-patch arrays (N, ...); ``solve`` returns one array or a tuple of arrays
    with a leading chunk axis. Returns the outputs concatenated over the chunks and cut to N
    (always a tuple). Each chunk is finished before the next starts (see the module docstring).

    ``sharding``: how a chunk is split over devices (:func:`patch_sharding`; None: one device).
    The chunks are padded to a multiple of the device count, and whatever ``solve`` closes over
    must be on those devices too (:func:`replicate`).
    """
    n = len(inputs[0])
    multiple = 1 if sharding is None else len(sharding.device_set)
    outputs: list[tuple[Array, ...]] = []
    for rows in tqdm(balanced_chunks(n, chunk, multiple), desc=desc, disable=not progress):
        args = [a[rows] for a in inputs]
        if sharding is not None:
            args = [jax.device_put(a, sharding) for a in args]
        out = solve(*args)
        outputs.append(jax.block_until_ready(out if isinstance(out, tuple) else (out,)))
    return tuple(jnp.concatenate(parts)[:n] for parts in zip(*outputs))
