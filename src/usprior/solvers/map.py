"""MAP estimation in the latent space of an invertible prior, over all patches of an image.

For every overlapping patch y_k (P x P x C) of the noisy image the solver computes

    z_k* = argmin_z  J_k(z),   J_k(z) = NLL(y_k | f^-1(z)) + lam * ||z||^2,
    x_k* = f^-1(z_k*)

with optax Adam and reduce-on-plateau learning-rate decay, starting from z_k = f(clip(g * y)_k),
the latents of the observation smoothed by a small Gaussian g (``init_blur`` pixels; 0 gives
f(y)), or from given latents, e.g. the previous frame's: a warm start. The problem is
non-convex, and the smoothed start reaches a much lower objective in the same number of steps
(docs/design.md). The per-patch problems are
independent: one problem is a ``lax.while_loop`` over the optimiser steps (it may stop early), ``jax.vmap`` runs a chunk
of patches at once and one ``jax.jit`` compiles it; chunks bound memory. The denoised patches
are stitched with Hann overlap weights (:mod:`usprior.solvers.patches`).

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

from usprior.solvers.engine import balanced_chunk_size, patch_problem, patch_sharding, replicate, solve_chunks
from usprior.solvers.patches import PatchGrid, stitch_patches
from usprior.validation import check_image, check_int, check_positive, check_real, check_unit

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


MAX_STEPS = 10_000
"""The most Adam steps per patch :class:`MAPConfig` accepts (100x the default; quality peaks
well below 100 steps, see docs/design.md): a larger count is a typo, not a setting."""


@dataclasses.dataclass(frozen=True)
class MAPConfig:
    """Optimiser settings of the latent MAP solver.

    ``steps`` Adam iterations per patch (at most), ``learning_rate`` Adam step size, the
    learning rate is multiplied by ``decay`` after ``patience`` steps without relative
    improvement ``rtol``, but never below ``min_scale`` times its initial value; a patch stops
    early once its best objective improved by less than ``stop_rtol`` (relative) over the last
    ``patience`` steps (0: never); ``stride`` of the patch grid; ``chunk`` patches per compiled
    vmapped batch; ``init_blur`` the std (pixels) of the Gaussian that smooths the observation
    before it is encoded as the starting point (0: start at f(y); unused with a start image);
    ``skip_saturated``: a patch of the observation that is constant at 0 or at 1 (a clipped
    display image's black margin or white saturation) is not solved, its estimate is that
    constant (see :func:`map_denoise`).
    """

    steps: int = 100
    learning_rate: float = 0.05
    decay: float = 0.5
    patience: int = 10
    rtol: float = 1e-4
    min_scale: float = 0.01
    init_blur: float = 1.0
    stop_rtol: float = 0.0
    stride: int = 16
    chunk: int = 256
    skip_saturated: bool = False

    def __post_init__(self) -> None:
        check_int(self.steps, "steps", 1, MAX_STEPS)
        check_int(self.chunk, "chunk")
        check_int(self.patience, "patience")
        check_int(self.stride, "stride")
        check_positive(self.learning_rate, "learning_rate")
        check_real(self.decay, "decay", low=0.0, high=1.0, strict=True)
        check_unit(self.min_scale, "min_scale")
        check_real(self.rtol, "rtol", low=0.0)
        check_real(self.init_blur, "init_blur", low=0.0)
        check_real(self.stop_rtol, "stop_rtol", low=0.0)


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
    """Adam + plateau decay on one patch, for ``cfg.steps`` steps or until it has converged.

    Converged (only with ``cfg.stop_rtol`` > 0): the best objective improved by less than
    ``stop_rtol * |J|`` over the last ``patience`` steps. Returns the best iterate
    z* = argmin over the visited z of J(z) (so J(z*) <= J(z0)) and the objective at every step,
    (steps,), where the steps after a stop repeat the best value. Under ``vmap`` the loop runs
    while any patch of the batch is still going; the stopped ones are frozen.
    """
    opt = _optimizer(cfg)
    value_and_grad = jax.value_and_grad(latent_objective)
    early = cfg.stop_rtol > 0

    def going(carry: tuple) -> Array:
        i, *_, stopped = carry
        return (i < cfg.steps) & ~stopped

    def step(carry: tuple) -> tuple:
        i, z, state, best_z, best_value, checked, trace, _ = carry
        value, grad = value_and_grad(z, y, prior, likelihood, lam)
        better = value < best_value
        best_z = jnp.where(better, z, best_z)
        best_value = jnp.where(better, value, best_value)
        updates, state = opt.update(grad, state, z, value=value)
        check = (i + 1) % cfg.patience == 0
        stopped = early & check & (checked - best_value < cfg.stop_rtol * jnp.abs(best_value))
        checked = jnp.where(check, best_value, checked)
        trace = trace.at[i].set(value)
        return i + 1, optax.apply_updates(z, updates), state, best_z, best_value, checked, trace, stopped

    inf = jnp.asarray(jnp.inf, z0.dtype)
    init = (0, z0, opt.init(z0), z0, inf, inf, jnp.zeros(cfg.steps, z0.dtype), jnp.asarray(False))
    i, z, _, best_z, best_value, _, trace, stopped = jax.lax.while_loop(going, step, init)
    final_value = latent_objective(z, y, prior, likelihood, lam)
    use_final = ~stopped & (final_value < best_value)  # a stopped patch's last update was not judged
    trace = jnp.where(jnp.arange(cfg.steps) < i, trace, best_value)
    return jnp.where(use_final, z, best_z), trace


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
def encode_start(prior: LatentPrior, start: Array) -> Array:
    """The default start latents f(clip(start, 0, 1)) of a batch of patches (N, P, P, C)."""
    return prior.encode(jnp.clip(start, 0.0, 1.0))


def _saturated(patches: np.ndarray) -> np.ndarray:
    """(N,) bool: the patches (N, P, P, C) whose every value is exactly 0, or exactly 1."""
    return np.all(patches == 0.0, axis=(1, 2, 3)) | np.all(patches == 1.0, axis=(1, 2, 3))


def map_denoise(
    image: np.ndarray,
    prior: LatentPrior,
    likelihood: DataFidelity,
    lam: float,
    cfg: MAPConfig = MAPConfig(),
    z0: np.ndarray | None = None,
    progress: bool = False,
    x0: np.ndarray | None = None,
) -> MAPResult:
    """Denoise a 2-D image (H, W) by latent MAP on every patch of a strided grid.

    The patch engine (:mod:`usprior.solvers.engine`) cuts the reflect-padded image every
    ``cfg.stride`` px, solves ceil(N / cfg.chunk) balanced chunks of at most ``cfg.chunk``
    patches with :func:`solve_patches` (one compilation per image size) and stitches them with
    Hann weights; with several local devices each chunk is split over all of them. ``z0``
    (N, P, P, C) warm-starts the latents, e.g. from the previous frame's
    :attr:`MAPResult.z` of the same image size; otherwise each patch starts at f(clip(x0_k)),
    the patches of the start image ``x0`` (H, W) (e.g. a fast denoiser's estimate), or without
    one at f(clip(g * y)).

    With ``cfg.skip_saturated`` the patches of the observation that are constant at exactly 0 or
    1 are not solved: their estimate is the observation and their latents its encoding (so warm
    starts still get every patch). On a clipped display frame these are the black margins, often
    half of the patches; the solved ones are gathered into whole chunks of the size the full
    grid would use, so the compiled shape does not depend on how many were skipped. The
    objective trace is then the mean over the solved patches (zeros if none).
    """
    p, _, c = prior.event_shape
    if c != 1:
        raise ValueError(f"map_denoise handles grayscale images; the prior has {c} channels")
    image = check_image(image).astype(np.float32)
    if x0 is not None:
        x0 = check_image(x0, "x0").astype(np.float32)
        if x0.shape != image.shape:
            raise ValueError(f"the start image x0 has shape {x0.shape}, the image {image.shape}")
    problem = patch_problem(image, p, cfg.stride, cfg.init_blur, start=x0)
    if z0 is not None and tuple(z0.shape) != tuple(problem.y.shape):
        raise ValueError(f"warm-start latents have shape {tuple(z0.shape)}, expected {tuple(problem.y.shape)}")
    sharding = patch_sharding()  # every local device solves a share of each chunk
    prior, likelihood, lam_arr = replicate((prior, likelihood, jnp.asarray(lam, jnp.float32)), sharding)

    def solve(y: Array, start: Array) -> tuple[Array, Array, Array]:
        z_start = encode_start(prior, start) if z0 is None else jnp.asarray(start, jnp.float32)
        res = solve_patches(y, z_start, prior, likelihood, lam_arr, cfg)
        return res.z, res.x, res.objective

    y = np.asarray(problem.y)
    starts = np.asarray(problem.start if z0 is None else z0)
    saturated = _saturated(y) if cfg.skip_saturated else np.zeros(len(y), bool)
    solved, skipped = np.flatnonzero(~saturated), np.flatnonzero(saturated)
    size = balanced_chunk_size(len(y), cfg.chunk, 1 if sharding is None else len(sharding.device_set))[1]

    def whole(rows: np.ndarray) -> np.ndarray:
        """``rows`` padded (repeating the last) to whole chunks of ``size``: one compiled shape."""
        return np.concatenate([rows, np.full(-len(rows) % size, rows[-1])])

    x, z = y.copy(), np.zeros_like(y)
    traces = np.zeros((0, cfg.steps), np.float32)
    if len(solved):
        zs, xs, ts = solve_chunks(solve, (y[whole(solved)], starts[whole(solved)]), size, progress,
                                  desc="MAP chunks", sharding=sharding)
        z[solved], x[solved], traces = (np.asarray(a)[: len(solved)] for a in (zs, xs, ts))
    if len(skipped):
        # their latents: the jitted start encoding (the clip to [0, 1] leaves a saturated patch as it is)
        (zs,) = solve_chunks(lambda patches: encode_start(prior, patches), (y[whole(skipped)],), size, sharding=sharding)
        z[skipped] = np.asarray(zs)[: len(skipped)]
    out = stitch_patches(jnp.asarray(x[..., 0]), problem.grid)
    objective = traces.mean(axis=0) if len(traces) else np.zeros(cfg.steps, np.float32)
    return MAPResult(image=np.asarray(out), z=z, objective=np.asarray(objective), grid=problem.grid)
