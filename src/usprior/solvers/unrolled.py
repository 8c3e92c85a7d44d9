"""Unrolled (deep-unfolded) latent MAP: K learned Adam steps on the MAP objective.

The latent MAP solver (:mod:`usprior.solvers.map`) runs ~100 Adam steps per patch on

    J(z; lam) = NLL(y | f^-1(z)) + lam ||z||^2.

Deep unfolding fixes a small number K of steps and learns their parameters end-to-end
(Gregor & LeCun 2010; Monga, Li & Eldar 2021). For every patch, starting from the MAP
solver's start z_0 = f(clip(g * y)) (g a Gaussian of ``init_blur`` px), m_0 = v_0 = 0, and
for k = 0 .. K-1

    g_k     = grad_z J(z_k; lam_k),                        lam_k = exp(log_lam[k])
    m_{k+1} = b1 m_k + (1 - b1) g_k,   v_{k+1} = b2 v_k + (1 - b2) g_k^2
    z_{k+1} = z_k - lr_k mhat / sqrt(vhat + eps^2),        lr_k  = exp(log_lr[k])
    x       = f^-1(z_K),

with mhat = m_{k+1} / (1 - b1^(k+1)), vhat = v_{k+1} / (1 - b2^(k+1)) (Adam's bias
correction; b1 = 0.9, b2 = 0.999, eps = 1e-8 as in the MAP solver's optax Adam) and all
operations per latent entry. The learned parameters are the pytree
``{"log_lr": (K,), "log_lam": (K,)}``: a step size and a regularisation weight per step
(log-parameterised, so both stay > 0); a learned scalar on the likelihood gradient would
only re-parameterise them, so nothing else is learned.

Why Adam's per-entry scaling: the likelihood's scale depends on the noise level (the
Gaussian NLL grows like 1 / sigma^2), so a plain gradient step that is stable at one sigma
diverges at a smaller one; Adam's step is invariant to that scale, so one learned schedule
serves a batch or a test set with several noise levels. And the objective is stiff per entry:
steps normalised by the RMS of the whole patch gradient (the first version of this module)
oscillated at 0.002 and reached only +1.8 dB over the noisy input in 8 steps, where full MAP
(100 Adam steps) reaches +3.3 dB on the same patches; with Adam's per-entry scaling 16 plain
steps at MAP's own step size, untrained, reach 30.09 of MAP's 30.79 dB, trained 30.74
(docs/amortized.md).

The flow prior stays fixed: only ``log_lr`` / ``log_lam`` are trained. ``prior`` is an
ordinary pytree argument of :func:`unrolled_loss`, so a caller who wants to fine-tune it can
differentiate with respect to it as well; this module does not.

Training (:func:`unrolled_train_step`) minimises the mean squared error to target patches,
which are the clean patches or the full MAP output — the teacher is the caller's choice, as
in :func:`usprior.amortized.training.make_pairs`. The likelihood (its noise level included)
is an argument of every function, so each batch can come with its own.

Like the MAP solver, this module only uses ``prior.encode / decode / event_shape`` and
``likelihood.nll(x, y)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state

from usprior.solvers.engine import patch_problem, patch_sharding, replicate, solve_chunks
from usprior.solvers.map import DataFidelity, LatentPrior, encode_start, latent_objective
from usprior.solvers.patches import stitch_patches
from usprior.validation import check_image, check_int, check_nonnegative, check_positive

Array = jax.Array
Params = dict[str, Array]

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8
"""Adam's moment decays and epsilon (optax's defaults, those of the MAP solver). The step divides
by sqrt(vhat + eps^2), not sqrt(vhat) + eps: the same value to ~eps, and differentiable at v = 0."""


@dataclasses.dataclass(frozen=True)
class UnrolledConfig:
    """``steps`` K unrolled Adam steps; initial step size ``init_lr`` (the MAP solver's Adam
    learning rate: about the move per latent entry and step) and regularisation weight
    ``init_lam`` (latent MAP's default lambda) of every step; ``init_blur`` the std (px) of the
    Gaussian smoothing of the observation whose latents are the start (as
    ``MAPConfig.init_blur``; 0: start at f(y))."""

    steps: int = 16
    init_lr: float = 0.05
    init_lam: float = 1.0
    init_blur: float = 1.0

    def __post_init__(self) -> None:
        check_int(self.steps, "steps")
        check_positive(self.init_lr, "init_lr")
        check_positive(self.init_lam, "init_lam")
        check_nonnegative(self.init_blur, "init_blur")


def init_unrolled(config: UnrolledConfig, key: Array | None = None) -> Params:
    """The initial parameters ``{"log_lr": (K,), "log_lam": (K,)}`` float32 (``key`` unused:
    the initialisation is deterministic; accepted for the ``init(config, key)`` convention)."""
    del key
    k = config.steps
    return {
        "log_lr": jnp.full((k,), math.log(config.init_lr), jnp.float32),
        "log_lam": jnp.full((k,), math.log(config.init_lam), jnp.float32),
    }


def _check_params(params: Params, config: UnrolledConfig) -> None:
    """Raise ``ValueError`` unless ``params`` is ``{"log_lr": (K,), "log_lam": (K,)}``."""
    want = {name: (config.steps,) for name in ("log_lr", "log_lam")}
    got = {name: tuple(jnp.shape(a)) for name, a in params.items()} if isinstance(params, dict) else params
    if got != want:
        raise ValueError(f"parameters {got} do not match {config}: expected shapes {want}")


@functools.partial(jax.jit, static_argnames="config")
def unrolled_latents(
    params: Params,
    config: UnrolledConfig,
    prior: LatentPrior,
    likelihood: DataFidelity,
    y_patches: Array,
    z0: Array,
) -> Array:
    """K unrolled Adam steps on a batch of patches y, z0 (N, P, P, C) -> z_K (N, P, P, C).

    Jitted (``config`` static) and differentiable: a ``lax.scan`` over the K steps, each the
    per-patch gradient of :func:`usprior.solvers.map.latent_objective`, ``jax.vmap``-ed over patches.
    """
    _check_params(params, config)
    if y_patches.shape != z0.shape or y_patches.shape[1:] != tuple(prior.event_shape):
        raise ValueError(
            f"y_patches {y_patches.shape} and z0 {z0.shape} must both be (N, *{tuple(prior.event_shape)})"
        )
    grad = jax.vmap(jax.grad(latent_objective), in_axes=(0, 0, None, None, None))

    def step(carry: tuple[Array, Array, Array], step_params: tuple[Array, Array, Array]) -> tuple[tuple[Array, Array, Array], None]:
        z, m, v = carry
        log_lr, log_lam, t = step_params
        g = grad(z, y_patches, prior, likelihood, jnp.exp(log_lam))
        m = ADAM_B1 * m + (1 - ADAM_B1) * g
        v = ADAM_B2 * v + (1 - ADAM_B2) * jnp.square(g)
        m_hat, v_hat = m / (1 - ADAM_B1**t), v / (1 - ADAM_B2**t)
        return (z - jnp.exp(log_lr) * m_hat / jnp.sqrt(v_hat + ADAM_EPS**2), m, v), None

    z = jnp.asarray(z0, jnp.float32)
    t = jnp.arange(1, config.steps + 1, dtype=jnp.float32)
    (z, _, _), _ = jax.lax.scan(step, (z, jnp.zeros_like(z), jnp.zeros_like(z)), (params["log_lr"], params["log_lam"], t))
    return z


def unrolled_patches(
    params: Params,
    config: UnrolledConfig,
    prior: LatentPrior,
    likelihood: DataFidelity,
    y_patches: Array,
    z0: Array,
) -> Array:
    """The denoised patches x = f^-1(z_K) (N, P, P, C) of :func:`unrolled_latents`."""
    return prior.decode(unrolled_latents(params, config, prior, likelihood, y_patches, z0))


def _gaussian_blur(patches: Array, sigma: float) -> Array:
    """``scipy.ndimage.gaussian_filter(patches, (0, s, s, 0), mode="reflect")`` in JAX, per patch."""
    if sigma == 0:
        return patches
    radius = int(4.0 * sigma + 0.5)  # scipy's default truncate = 4
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = taps / taps.sum()
    out = patches
    for axis in (1, 2):
        widths = [(0, 0)] * out.ndim
        widths[axis] = (radius, radius)
        padded = jnp.pad(out, widths, mode="symmetric")  # scipy "reflect" = numpy "symmetric"
        size = out.shape[axis]
        out = sum(
            float(w) * jax.lax.slice_in_dim(padded, j, j + size, axis=axis) for j, w in enumerate(taps)
        )
    return out


def patch_start(prior: LatentPrior, y_patches: Array, blur: float) -> Array:
    """Start latents of isolated patches: f(clip(g * y_k)), each patch blurred on its own.

    (N, P, P, C) -> (N, P, P, C). For training pairs cut from images one no longer has; it
    differs from the image-level start of :func:`unrolled_denoise` (the whole image is blurred,
    then cut) only within ~4 ``blur`` px of the patch borders.
    """
    return prior.encode(jnp.clip(_gaussian_blur(jnp.asarray(y_patches, jnp.float32), blur), 0.0, 1.0))


@functools.partial(jax.jit, static_argnames="config")
def _denoise_chunk(
    params: Params, config: UnrolledConfig, prior: LatentPrior, likelihood: DataFidelity, y: Array, start: Array
) -> Array:
    return unrolled_patches(params, config, prior, likelihood, y, encode_start(prior, start))


def unrolled_denoise(
    params: Params,
    config: UnrolledConfig,
    image: np.ndarray,
    prior: LatentPrior,
    likelihood: DataFidelity,
    stride: int = 16,
    chunk: int = 256,
) -> np.ndarray:
    """Denoise a finite grayscale image (H, W), float32 (H, W) (not clipped; like
    :func:`usprior.solvers.map.map_denoise`, the observation is taken as it comes).

    The patch engine of :func:`usprior.solvers.map.map_denoise` (:mod:`usprior.solvers.engine`):
    patches every ``stride`` px, the start latents of the Gaussian-smoothed image, balanced chunks
    of at most ``chunk`` patches (one compilation per image size), Hann-weighted stitching; the
    per-chunk step is :func:`unrolled_patches`. Bad images (not 2-D, NaN / inf, smaller than a
    patch) raise ``ValueError``.
    """
    p, _, c = prior.event_shape
    if c != 1:
        raise ValueError(f"unrolled_denoise handles grayscale images; the prior has {c} channels")
    chunk = check_int(chunk, "chunk")
    _check_params(params, config)
    image = check_image(image).astype(np.float32)
    problem = patch_problem(image, p, check_int(stride, "stride"), config.init_blur)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    sharding = patch_sharding()  # every local device solves a share of each chunk
    params, prior, likelihood = replicate((params, prior, likelihood), sharding)
    (x,) = solve_chunks(
        lambda y, start: _denoise_chunk(params, config, prior, likelihood, y, start),
        (problem.y, problem.start), chunk, sharding=sharding,
    )
    return np.asarray(stitch_patches(x[..., 0], problem.grid), np.float32)


# --- training --------------------------------------------------------------------------------


def unrolled_loss(
    params: Params,
    config: UnrolledConfig,
    prior: LatentPrior,
    likelihood: DataFidelity,
    y_patches: Array,
    target_patches: Array,
    z0: Array | None = None,
) -> Array:
    """Mean squared error of :func:`unrolled_patches` to ``target_patches`` (N, P, P, C).

    ``z0``: the start latents; default :func:`patch_start` of ``y_patches`` with
    ``config.init_blur``.
    """
    if target_patches.shape != y_patches.shape:
        raise ValueError(f"target patches {target_patches.shape} do not match y_patches {y_patches.shape}")
    if z0 is None:
        z0 = patch_start(prior, y_patches, config.init_blur)
    x = unrolled_patches(params, config, prior, likelihood, y_patches, z0)
    return jnp.mean(jnp.square(x - target_patches))


class UnrolledState(train_state.TrainState):
    """A ``TrainState`` of the unrolled parameters that also carries its (static) config."""

    config: UnrolledConfig = struct.field(pytree_node=False)


def create_unrolled_state(config: UnrolledConfig, tx: optax.GradientTransformation | None = None) -> UnrolledState:
    """Fresh training state at :func:`init_unrolled`; default optimiser Adam(1e-2) on the
    log-parameters (a relative change of ~1 % per step)."""
    return UnrolledState.create(
        apply_fn=unrolled_patches,
        params=init_unrolled(config),
        tx=tx if tx is not None else optax.adam(1e-2),
        config=config,
    )


@jax.jit
def unrolled_train_step(
    state: UnrolledState,
    prior: LatentPrior,
    likelihood: DataFidelity,
    y_patches: Array,
    target_patches: Array,
    z0: Array | None = None,
) -> tuple[UnrolledState, Array]:
    """One optimiser step on :func:`unrolled_loss`; returns the new state and the loss before
    the update. The prior is fixed; ``likelihood`` (a pytree) may change from batch to batch."""
    loss, grads = jax.value_and_grad(unrolled_loss)(
        state.params, state.config, prior, likelihood, y_patches, target_patches, z0
    )
    return state.apply_gradients(grads=grads), loss
