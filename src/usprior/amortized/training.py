"""Training machinery of the amortised denoisers: teacher targets, train steps, validation.

A network learns to imitate a *teacher*: the target of a noisy image y with noise std s is
t = teacher(y, s), e.g. ``lambda y, s: usprior.denoise(y, sigma=s, lam=6.0)`` (the MAP
denoiser), a baseline such as ``lambda y, s: usprior.baselines.wnnm(y, sigma=4 * s)``, or — with :data:`clean_teacher`
— the target of the simulated pair (y, t) = corrupt(x) (a :data:`usprior.physics.simulate.Corrupt`,
e.g. ``usprior.physics.simulate.NOISE_MODELS["convolutional"].corrupt``). Swapping the teacher is one
argument of :func:`make_pairs`; the noise draws and patch positions do not depend on it.

Train steps (jitted, optax through ``flax.training.train_state``):

* FFDNet: loss = mean (F(y, s) - t)^2 (``"mse"``, as in Zhang et al.), mean |F(y, s) - t|
  (``"l1"``), or the *noise-weighted* error mean (F(y, s) - t)^2 / (n + eps), where
  n = box_w * (y - t)^2 is the pair's local noise power over w x w pixels (``"noise_weighted"``,
  :func:`noise_weighted_error`: 1 = the noise left as it was, 0 = removed); with BatchNorm
  batch statistics in training mode.
* Pix2Pix: one discriminator update on L_D, then one generator update on L_G against the
  updated discriminator (the alternation of Isola et al.; losses in
  :mod:`usprior.amortized.pix2pix`).

Validation: :func:`evaluate` (pooled PSNR against the targets, or the pooled noise-weighted
error in dB) and :class:`EarlyStopping` (patience on that score, keeps the best variables).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from usprior.amortized.ffdnet import FFDNet, FFDNetConfig, init_ffdnet
from usprior.amortized.pix2pix import (
    LAMBDA_L1,
    PatchGAN,
    PatchGANConfig,
    UNetConfig,
    UNetGenerator,
    discriminator_loss,
    generator_loss,
    init_patchgan,
    init_unet,
)
from usprior.physics.simulate import Corrupt, noise_std
from usprior.validation import as_float_image, check_image, check_int, check_nonnegative, check_positive

Array = jax.Array

Teacher = Callable[[np.ndarray, float], np.ndarray]
"""``teacher(noisy, noise_std) -> target``: a noisy image (H, W) in [0, 1] and its noise std
(:func:`usprior.physics.simulate.noise_std`) to the training target (H, W)."""

class CleanTeacher:
    """Marker teacher: the target of each simulated pair is its clean target (supervised training).

    It has no noisy -> target map of its own (the clean target is not a function of the noisy
    image), so it is not a :data:`Teacher`; :func:`make_pairs` recognises it.
    """

    def __repr__(self) -> str:
        return "clean_teacher"


clean_teacher = CleanTeacher()


class PairBatch(NamedTuple):
    """Aligned training samples: noisy and target (N, P, P, 1) float32, noise levels sigma (N,)."""

    noisy: np.ndarray
    target: np.ndarray
    sigma: np.ndarray


def _teacher_target(teacher: Teacher | CleanTeacher, noisy: np.ndarray, clean: np.ndarray, std: float) -> np.ndarray:
    if isinstance(teacher, CleanTeacher):
        return clean
    target = check_image(teacher(noisy, std), "teacher output").astype(np.float32)
    if target.shape != noisy.shape:
        raise ValueError(f"the teacher returned shape {target.shape} for a noisy image of shape {noisy.shape}")
    return target


def make_pairs(
    clean_images: Sequence[np.ndarray],
    corrupt: Corrupt,
    teacher: Teacher | CleanTeacher,
    levels: Sequence[float],
    patch: int = 64,
    patches_per_image: int = 8,
    seed: int = 0,
    level: Callable[[np.ndarray, np.ndarray], float] = noise_std,
) -> PairBatch:
    """Simulate noisy images, label them with ``teacher`` and cut aligned random patches.

    For every clean image x (H, W) in [0, 1] and level s in ``levels``: (y, t_sim) =
    corrupt(x, s, seed') with seed' drawn from ``seed``; the target is t = t_sim for
    :data:`clean_teacher`, else teacher(y, std) on the whole image; then ``patches_per_image``
    random (P, P) windows shared by y and t. The recorded noise level of a sample, and the std
    given to the teacher, is ``level(y, t_sim)`` of its whole image: by default the noise std
    rms(y - t_sim) (:func:`usprior.physics.simulate.noise_std`), the units of the FFDNet noise
    map whatever the noise model (the scanner models use the speckle estimate instead,
    :func:`usprior.amortized.scanner_pairs.simulator_pairs`). Returns N = len(clean_images)
    len(levels) patches_per_image samples. The same ``seed`` gives the same noisy patches for
    every teacher. Bad images, levels or sizes raise ``ValueError``.
    """
    patch = check_int(patch, "patch")
    patches_per_image = check_int(patches_per_image, "patches_per_image")
    levels = [check_positive(s, "level") for s in levels]
    if not levels:
        raise ValueError("levels must hold at least one noise level")
    images = [as_float_image(x, min_size=patch, name="clean image") for x in clean_images]
    if not images:
        raise ValueError("make_pairs needs at least one clean image")
    rng = np.random.default_rng(seed)
    noisy, target, sigma = [], [], []
    for x in images:
        for s in levels:
            y, t_sim = corrupt(x, s, int(rng.integers(2**31)))
            y = as_float_image(y, min_size=patch, name="corrupted image")
            if y.shape != x.shape or t_sim.shape != x.shape:
                raise ValueError(f"corrupt returned shapes {y.shape}, {t_sim.shape} for a clean image of shape {x.shape}")
            std = level(y, t_sim)
            t = _teacher_target(teacher, y, t_sim, std)
            windows = cut_windows(y, t, random_windows(*x.shape, patch, patches_per_image, rng), patch)
            noisy.append(windows[0])
            target.append(windows[1])
            sigma += [std] * patches_per_image
    return PairBatch(
        noisy=np.concatenate(noisy)[..., None],
        target=np.concatenate(target)[..., None],
        sigma=np.asarray(sigma, np.float32),
    )


def random_windows(height: int, width: int, patch: int, count: int, rng: np.random.Generator,
                   inside: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` random (patch, patch) windows of an (H, W) image (rows drawn
    first, then columns); with ``inside`` (H, W) bool, each window's centre lies in it."""
    if inside is None:
        rows = rng.integers(0, height - patch + 1, count)
        cols = rng.integers(0, width - patch + 1, count)
        return list(zip(rows.tolist(), cols.tolist()))
    half = patch // 2
    allowed = np.zeros_like(inside)
    allowed[half : height - patch + half + 1, half : width - patch + half + 1] = True
    centres = np.argwhere(inside & allowed)
    if not len(centres):
        raise ValueError(f"no {patch}x{patch} window of a {height}x{width} frame is centred inside its mask")
    picks = centres[rng.integers(0, len(centres), count)]
    return [(int(r) - half, int(c) - half) for r, c in picks]


def cut_windows(noisy: np.ndarray, target: np.ndarray, corners: list[tuple[int, int]], patch: int) -> tuple[np.ndarray, np.ndarray]:
    """The aligned (patch, patch) windows at ``corners`` of two (H, W) images: two (K, patch, patch) stacks."""
    y = np.stack([noisy[r : r + patch, c : c + patch] for r, c in corners])
    t = np.stack([target[r : r + patch, c : c + patch] for r, c in corners])
    return y, t


class BatchNormState(train_state.TrainState):
    """A ``TrainState`` that also carries BatchNorm running statistics."""

    batch_stats: Any

    @property
    def variables(self) -> dict[str, Any]:
        """{"params", "batch_stats"}: what ``ffdnet_apply`` and the checkpoints take."""
        return {"params": self.params, "batch_stats": self.batch_stats}


def create_ffdnet_state(
    config: FFDNetConfig, key: Array, tx: optax.GradientTransformation | None = None
) -> BatchNormState:
    """Fresh FFDNet training state; default optimiser Adam(1e-3) as in Zhang et al."""
    variables = init_ffdnet(config, key)
    return BatchNormState.create(
        apply_fn=FFDNet(config).apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=tx if tx is not None else optax.adam(1e-3),
    )


def create_pix2pix_states(
    gen_config: UNetConfig,
    disc_config: PatchGANConfig,
    key: Array,
    gen_tx: optax.GradientTransformation | None = None,
    disc_tx: optax.GradientTransformation | None = None,
) -> tuple[train_state.TrainState, train_state.TrainState]:
    """Fresh (generator, discriminator) training states; default optimisers Adam(2e-4, b1=0.5)
    for both, as in Isola et al."""
    if gen_config.channels != disc_config.channels:
        raise ValueError(f"generator and discriminator channels differ: {gen_config}, {disc_config}")
    gen_key, disc_key = jax.random.split(key)
    gen = train_state.TrainState.create(
        apply_fn=UNetGenerator(gen_config).apply,
        params=init_unet(gen_config, gen_key)["params"],
        tx=gen_tx if gen_tx is not None else optax.adam(2e-4, b1=0.5),
    )
    disc = train_state.TrainState.create(
        apply_fn=PatchGAN(disc_config).apply,
        params=init_patchgan(disc_config, disc_key)["params"],
        tx=disc_tx if disc_tx is not None else optax.adam(2e-4, b1=0.5),
    )
    return gen, disc


NOISE_WINDOW = 7
"""Side of the box over which :func:`noise_weighted_error` measures the local noise power
(the window of :func:`usprior.eval.metrics.structure_leakage`)."""
NOISE_FLOOR = 1e-4
"""eps of :func:`noise_weighted_error`: a noise power of std 0.01 (2.5 grey levels of 8 bits),
so noise-free windows weigh at most 1 / eps instead of infinitely."""
FFDNET_LOSSES = ("mse", "l1", "noise_weighted")


def _box_mean(images: Array, size: int) -> Array:
    """Mean of each ``size`` x ``size`` box of (N, H, W, 1) ``images``, over the pixels inside the image."""
    window, ones = (1, size, size, 1), (1, 1, 1, 1)
    total = jax.lax.reduce_window(images, 0.0, jax.lax.add, window, ones, "SAME")
    count = jax.lax.reduce_window(jnp.ones_like(images), 0.0, jax.lax.add, window, ones, "SAME")
    return total / count


def noise_weighted_error(pred: Array, noisy: Array, target: Array, size: int = NOISE_WINDOW,
                         eps: float = NOISE_FLOOR) -> Array:
    """mean over pixels of (pred - t)^2 / (box_size * (y - t)^2 + eps), all (N, H, W, 1).

    The squared error in units of the local noise power of the pair: a pixel of dim clutter
    (noise std 0.014) weighs as much as one of bright speckle (std 0.1) when both keep the same
    fraction of their noise, where the plain MSE weighs the bright one 50 x more. The identity
    scores about 1 wherever the noise exceeds ``eps``.
    """
    noise = _box_mean(jnp.square(noisy - target), size)
    return jnp.mean(jnp.square(pred - target) / (noise + eps))


@functools.partial(jax.jit, static_argnames="loss")
def ffdnet_train_step(state: BatchNormState, batch: PairBatch, loss: str = "mse") -> tuple[BatchNormState, Array]:
    """One optimiser step on ``batch`` (sigma per sample); returns the new state and the loss
    before the update. ``loss``: one of :data:`FFDNET_LOSSES` (module docstring)."""
    if loss not in FFDNET_LOSSES:
        raise ValueError(f"loss must be one of {FFDNET_LOSSES}, got {loss!r}")

    def loss_fn(params: Any) -> tuple[Array, Any]:
        variables = {"params": params, "batch_stats": state.batch_stats}
        pred, updates = state.apply_fn(variables, batch.noisy, batch.sigma, train=True, mutable=["batch_stats"])
        if loss == "noise_weighted":
            value = noise_weighted_error(pred, batch.noisy, batch.target)
        elif loss == "mse":
            value = jnp.mean(jnp.square(pred - batch.target))
        else:
            value = jnp.mean(jnp.abs(pred - batch.target))
        return value, updates["batch_stats"]

    (value, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=batch_stats), value


@jax.jit
def pix2pix_train_step(
    gen_state: train_state.TrainState,
    disc_state: train_state.TrainState,
    batch: PairBatch,
    key: Array,
    lambda_l1: float = LAMBDA_L1,
) -> tuple[train_state.TrainState, train_state.TrainState, dict[str, Array]]:
    """One D step on L_D, then one G step on L_G with the updated D (``key``: generator dropout).

    The generator runs once: its output feeds both updates, and L_G's gradient is pulled back
    through it with a VJP. Returns the new states and the losses before the updates
    (``d_loss``, ``g_loss``, ``g_adversarial``, ``g_l1``).
    """

    def generate(params: Any) -> Array:
        return gen_state.apply_fn({"params": params}, batch.noisy, train=True, rngs={"dropout": key})

    fake, pull_back = jax.vjp(generate, gen_state.params)

    def d_loss_fn(params: Any) -> Array:
        # real and fake pairs in one pass: instance norm keeps the samples independent
        logits = disc_state.apply_fn(
            {"params": params},
            jnp.concatenate([batch.noisy, batch.noisy]),
            jnp.concatenate([batch.target, fake]),
        )
        real_logits, fake_logits = jnp.split(logits, 2)
        return discriminator_loss(real_logits, fake_logits)

    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(disc_state.params)
    disc_state = disc_state.apply_gradients(grads=d_grads)

    def g_loss_fn(candidate: Array) -> tuple[Array, tuple[Array, Array]]:
        logits = disc_state.apply_fn({"params": disc_state.params}, batch.noisy, candidate)
        return generator_loss(logits, candidate, batch.target, lambda_l1)

    (g_loss, (adversarial, l1)), fake_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
    (g_grads,) = pull_back(fake_grad)
    gen_state = gen_state.apply_gradients(grads=g_grads)
    metrics = {"d_loss": d_loss, "g_loss": g_loss, "g_adversarial": adversarial, "g_l1": l1}
    return gen_state, disc_state, metrics


def evaluate(predict: Callable[[Array, Array], Array], pairs: PairBatch, batch: int = 64, loss: str = "mse") -> float:
    """Validation score in dB, pooled over every pixel of every sample: the PSNR (data range 1)
    ``10 log10(1 / MSE)`` of ``predict(noisy, sigma)`` against the targets, or for
    ``loss="noise_weighted"`` the noise removed, ``10 log10(1 / E)`` with E the mean
    :func:`noise_weighted_error` (0 dB: the identity, where the noise exceeds its floor);
    ``"l1"`` is scored by the PSNR. Higher is better for both.

    Pooling (rather than averaging per-sample PSNRs) keeps the score finite when some patches
    are reproduced exactly, e.g. patches of clipped black background. ``predict`` maps
    (n, P, P, 1) and (n,) to (n, P, P, 1), e.g.
    ``functools.partial(ffdnet_apply, state.variables, config)`` or
    ``lambda y, s: pix2pix_apply({"params": gen_state.params}, config, y)``; it runs on
    chunks of ``batch`` samples.
    """
    batch = check_int(batch, "batch")
    if loss not in FFDNET_LOSSES:
        raise ValueError(f"loss must be one of {FFDNET_LOSSES}, got {loss!r}")
    total = 0.0
    for start in range(0, len(pairs.noisy), batch):
        chunk = slice(start, start + batch)
        noisy = jnp.asarray(pairs.noisy[chunk])
        estimate = predict(noisy, jnp.asarray(pairs.sigma[chunk]))
        if loss == "noise_weighted":
            total += float(noise_weighted_error(estimate, noisy, jnp.asarray(pairs.target[chunk]))) * pairs.target[chunk].size
        else:
            total += float(np.sum(np.square(np.asarray(estimate, np.float64) - pairs.target[chunk])))
    error = total / pairs.target.size
    return float(10.0 * np.log10(1.0 / error)) if error > 0 else float("inf")


@dataclasses.dataclass
class EarlyStopping:
    """Stop when the validation score (dB) has not improved by more than ``min_delta`` dB for
    ``patience`` consecutive evaluations; ``best`` keeps the variables of the best score."""

    patience: int
    min_delta: float = 0.0
    best_score: float = dataclasses.field(default=-np.inf, init=False)
    best: Any = dataclasses.field(default=None, init=False)
    stale: int = dataclasses.field(default=0, init=False)

    def __post_init__(self) -> None:
        self.patience = check_int(self.patience, "patience")
        check_nonnegative(self.min_delta, "min_delta")

    def update(self, score: float, variables: Any) -> bool:
        """Record one validation score and its variables; returns True when training should stop."""
        if score > self.best_score + self.min_delta:
            self.best_score, self.best, self.stale = float(score), variables, 0
        else:
            self.stale += 1
        return self.stale >= self.patience
