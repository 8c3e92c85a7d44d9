"""MAP estimation in the latent space of an invertible prior, over all patches of an image.

For every overlapping patch y_k (P x P x C) of the noisy image the solver computes

    z_k* = argmin_z  J_k(z),   J_k(z) = NLL(y_k | f^-1(z)) + lam * ||z||^2,
    x_k* = f^-1(z_k*)

with optax Adam and reduce-on-plateau learning-rate decay, starting from z_k = f(clip(g * y)_k),
the latents of the observation smoothed by a small Gaussian g (``init_blur`` pixels; 0 gives
f(y)), or from given latents, e.g. the previous frame's: a warm start. The problem is
non-convex, and the smoothed start reaches a much lower objective in the same number of steps
(docs/design.md). The per-patch problems are
independent: one problem is a ``lax.scan`` over the optimiser steps, ``jax.vmap`` runs a chunk
of patches at once and one ``jax.jit`` compiles it; chunks bound memory. The denoised patches
are stitched with Hann overlap weights (:mod:`usprior.patches`).

The solver only uses ``prior.encode / prior.decode / prior.event_shape`` and
``likelihood.nll(x, y)`` — any prior or likelihood with that interface works.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.ndimage
from tqdm.auto import tqdm

from usprior.patches import PatchGrid, extract_patches, patch_grid, stitch_patches
from usprior.validation import check_image

Array = jax.Array


class LatentPrior(Protocol):
    """An invertible map between image patches and standard-normal latents (a JAX pytree)."""

    @property
    def event_shape(self) -> tuple[int, int, int]: ...

    def encode(self, x: Array) -> Array: ...

    def decode(self, z: Array) -> Array: ...


class DataFidelity(Protocol):
    """-log p(y | x) summed over the elements of a patch (a JAX pytree)."""

    def nll(self, x: Array, y: Array) -> Array: ...


@dataclasses.dataclass(frozen=True)
class MAPConfig:
    """Optimiser settings of the latent MAP solver.

    ``steps`` Adam iterations per patch, ``learning_rate`` Adam step size, the learning rate is
    multiplied by ``decay`` after ``patience`` steps without relative improvement ``rtol``, but
    never below ``min_scale`` times its initial value; ``stride`` of the patch grid; ``chunk``
    patches per compiled vmapped batch; ``init_blur`` the std (pixels) of the Gaussian that
    smooths the observation before it is encoded as the starting point (0: start at f(y)).
    """

    steps: int = 100
    learning_rate: float = 0.05
    decay: float = 0.5
    patience: int = 10
    rtol: float = 1e-4
    min_scale: float = 0.01
    init_blur: float = 1.0
    stride: int = 16
    chunk: int = 256

    def __post_init__(self) -> None:
        if self.steps < 1 or self.chunk < 1 or self.patience < 1:
            raise ValueError(f"steps, chunk and patience must be >= 1, got {self}")
        if not (self.learning_rate > 0 and 0 < self.decay <= 1 and 0 <= self.min_scale <= 1):
            raise ValueError(f"need learning_rate > 0, 0 < decay <= 1, 0 <= min_scale <= 1; got {self}")
        if not self.init_blur >= 0:
            raise ValueError(f"init_blur must be >= 0, got {self.init_blur}")


class PatchMAPResult(NamedTuple):
    """Per-patch solutions: z, x (N, P, P, C) and the objective J_k per step (N, steps)."""

    z: Array
    x: Array
    objective: Array


class MAPResult(NamedTuple):
    """Image-level solution: the stitched image (H, W), the patch latents (N, P, P, C) for
    warm starts, the mean per-patch objective per step (steps,), and the patch grid."""

    image: np.ndarray
    z: np.ndarray
    objective: np.ndarray
    grid: PatchGrid


def latent_objective(
    z: Array, y: Array, prior: LatentPrior, likelihood: DataFidelity, lam: Array
) -> Array:
    """J(z) = NLL(y | f^-1(z)) + lam ||z||^2 for one patch z, y of shape (P, P, C)."""
    return likelihood.nll(prior.decode(z), y) + lam * jnp.sum(jnp.square(z))


def _optimizer(cfg: MAPConfig) -> optax.GradientTransformationExtraArgs:
    return optax.chain(
        optax.adam(cfg.learning_rate),
        optax.contrib.reduce_on_plateau(
            factor=cfg.decay, patience=cfg.patience, rtol=cfg.rtol, min_scale=cfg.min_scale
        ),
    )


def _solve_patch(
    y: Array, z0: Array, prior: LatentPrior, likelihood: DataFidelity, lam: Array, cfg: MAPConfig
) -> tuple[Array, Array]:
    """Adam + plateau decay on one patch.

    Returns the best iterate z* = argmin over the visited z of J(z) (so J(z*) <= J(z0)) and
    the objective at every step, (steps,).
    """
    opt = _optimizer(cfg)
    value_and_grad = jax.value_and_grad(latent_objective)

    def step(carry: tuple, _: None) -> tuple[tuple, Array]:
        z, state, best_z, best_value = carry
        value, grad = value_and_grad(z, y, prior, likelihood, lam)
        better = value < best_value
        best_z = jnp.where(better, z, best_z)
        best_value = jnp.where(better, value, best_value)
        updates, state = opt.update(grad, state, z, value=value)
        return (optax.apply_updates(z, updates), state, best_z, best_value), value

    init = (z0, opt.init(z0), z0, jnp.asarray(jnp.inf, z0.dtype))
    (z, _, best_z, best_value), trace = jax.lax.scan(step, init, None, length=cfg.steps)
    final_value = latent_objective(z, y, prior, likelihood, lam)
    return jnp.where(final_value < best_value, z, best_z), trace


@functools.partial(jax.jit, static_argnames="cfg")
def solve_patches(
    y: Array, z0: Array, prior: LatentPrior, likelihood: DataFidelity, lam: Array, cfg: MAPConfig
) -> PatchMAPResult:
    """Solve the latent MAP problem for a batch of patches y, z0 (N, P, P, C), vmapped."""
    z, trace = jax.vmap(_solve_patch, in_axes=(0, 0, None, None, None, None))(
        y, z0, prior, likelihood, lam, cfg
    )
    return PatchMAPResult(z=z, x=prior.decode(z), objective=trace)


@jax.jit
def _encode(prior: LatentPrior, y: Array) -> Array:
    return prior.encode(jnp.clip(y, 0.0, 1.0))


def start_patches(image: np.ndarray, grid: PatchGrid, blur: float) -> Array:
    """Patches of g * y, (H, W) -> (N, P, P, 1), g a Gaussian of std ``blur`` px (0: y itself).

    Their latents f(clip(g * y)) are the solver's default starting point.
    """
    start = scipy.ndimage.gaussian_filter(image, blur, mode="reflect") if blur > 0 else image
    return extract_patches(jnp.asarray(start, jnp.float32), grid)[..., None]


def map_denoise(
    image: np.ndarray,
    prior: LatentPrior,
    likelihood: DataFidelity,
    lam: float,
    cfg: MAPConfig = MAPConfig(),
    z0: np.ndarray | None = None,
    progress: bool = False,
) -> MAPResult:
    """Denoise a 2-D image (H, W) by latent MAP on every patch of a strided grid.

    Patches are taken from the reflect-padded image with ``cfg.stride``, solved in
    ceil(N / cfg.chunk) equal chunks of at most ``cfg.chunk`` patches (the last one padded by
    repeating patches, so all chunks share one static shape: one compilation per image size),
    and stitched with Hann weights. ``z0`` (N, P, P, C) warm-starts
    the latents, e.g. from the previous frame's :attr:`MAPResult.z` of the same image size.
    """
    p, _, c = prior.event_shape
    if c != 1:
        raise ValueError(f"map_denoise handles grayscale images; the prior has {c} channels")
    image = check_image(image).astype(np.float32)
    grid = patch_grid(image.shape, p, cfg.stride)
    y = extract_patches(jnp.asarray(image), grid)[..., None]
    n = y.shape[0]
    if z0 is not None and tuple(z0.shape) != tuple(y.shape):
        raise ValueError(f"warm-start latents have shape {tuple(z0.shape)}, expected {tuple(y.shape)}")
    n_chunks = -(-n // cfg.chunk)
    chunk = -(-n // n_chunks)  # balanced: at most n_chunks - 1 padded (repeated) patches
    idx = np.minimum(np.arange(n_chunks * chunk), n - 1).reshape(n_chunks, chunk)
    lam_arr = jnp.asarray(lam, jnp.float32)
    starts = start_patches(image, grid, cfg.init_blur) if z0 is None else None
    zs, xs, traces = [], [], []
    for rows in tqdm(idx, desc="MAP chunks", disable=not progress):
        z_c = _encode(prior, starts[rows]) if z0 is None else jnp.asarray(z0[rows], jnp.float32)
        res = solve_patches(y[rows], z_c, prior, likelihood, lam_arr, cfg)
        zs.append(res.z)
        xs.append(res.x)
        traces.append(res.objective)
    z = jnp.concatenate(zs)[:n]
    x = jnp.concatenate(xs)[:n]
    objective = jnp.concatenate(traces)[:n].mean(axis=0)
    out = stitch_patches(x[..., 0], grid)
    return MAPResult(image=np.asarray(out), z=np.asarray(z), objective=np.asarray(objective), grid=grid)
