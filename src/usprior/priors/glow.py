"""Glow normalizing flow (Kingma & Dhariwal 2018) over small image patches, in Flax.

The flow f maps an image patch x in [0, 1]^(P x P x C) to a latent z of the same shape,

    h_0 = logit(a + (1 - 2a) x)                        (logit preprocessing, a = ``alpha``)
    for each level l = 1..L:
        h = squeeze(h)                                 (H, W, C) -> (H/2, W/2, 4C)
        K times: h = coupling(invconv(actnorm(h)))     (one flow step)
        if l < L: (h, z_l) = split(h)                  half of the channels leave as latent
    z = concat(flatten(z_1), ..., flatten(z_L = h))    reshaped to (P, P, C)

with an exact log-determinant  log|det df/dx|  accumulated layer by layer, so that
``log p(x) = log N(f(x); 0, I) + log|det df/dx|``. Every latent is standard normal, so
``||z||^2 = -2 log N(z; 0, I) + const`` — the regulariser of the latent MAP problem.

Layers map ``(B, H, W, C) -> ((B, H, W, C), log_det (B,))``; called with ``reverse=True``
they apply the inverse map and return the log-determinant of the inverse (the negative).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from usprior.validation import check_int, check_real

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class GlowConfig:
    """Architecture of a Glow flow over ``patch x patch x channels`` inputs.

    ``levels`` multi-scale levels, ``depth`` flow steps per level, ``hidden`` channels of
    the 3-layer coupling networks, ``alpha`` the logit-preprocessing margin, ``scale_floor``
    the lower bound of the coupling scale (bounds each coupling's condition number by
    1 / scale_floor, so the inverse of out-of-distribution patches stays accurate in float32).
    """

    patch: int = 32
    channels: int = 1
    levels: int = 3
    depth: int = 8
    hidden: int = 64
    alpha: float = 0.01
    scale_floor: float = 0.1

    def __post_init__(self) -> None:
        for name in ("patch", "channels", "levels", "depth", "hidden"):
            check_int(getattr(self, name), name)
        if self.patch % (2**self.levels):
            raise ValueError(f"patch {self.patch} must be divisible by 2**levels = {2**self.levels}")
        if not 0.0 < check_real(self.alpha, "alpha") < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {self.alpha}")
        if not 0.0 < check_real(self.scale_floor, "scale_floor") < 1.0:
            raise ValueError(f"scale_floor must lie in (0, 1), got {self.scale_floor}")

    @property
    def event_shape(self) -> tuple[int, int, int]:
        """Shape of one patch and of its latent: (patch, patch, channels)."""
        return (self.patch, self.patch, self.channels)

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """Per-level latent shapes (h, w, c): half the channels leave at each split."""
        shapes = []
        size, ch = self.patch, self.channels
        for level in range(self.levels):
            size, ch = size // 2, ch * 4
            if level < self.levels - 1:
                ch //= 2
            shapes.append((size, size, ch))
        return tuple(shapes)


def squeeze(x: Array) -> Array:
    """Space-to-depth: (B, H, W, C) -> (B, H/2, W/2, 4C), each 2x2 block into channels."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x: Array) -> Array:
    """Depth-to-space, the inverse of :func:`squeeze`: (B, H, W, 4C) -> (B, 2H, 2W, C)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h, w, 2, 2, c // 4)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c // 4)


class ActNorm(nn.Module):
    """Per-channel affine normalisation y = (x + b) * exp(s), log|det| = H W sum(s).

    Data-dependent initialisation: on the first batch b = -mean(x), s = -log std(x), so the
    output has zero mean and unit variance per channel.
    """

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        axes = (0, 1, 2)
        bias = self.param("bias", lambda _: -jnp.mean(x, axis=axes))
        logs = self.param("logs", lambda _: -jnp.log(jnp.std(x, axis=axes) + 1e-6))
        log_det = self._log_det(x, logs)
        if reverse:
            return x * jnp.exp(-logs) - bias, -log_det
        return (x + bias) * jnp.exp(logs), log_det

    @staticmethod
    def _log_det(x: Array, logs: Array) -> Array:
        return jnp.full((x.shape[0],), x.shape[1] * x.shape[2] * jnp.sum(logs))


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution y = W x per pixel, W = P L (U + diag(sign * exp(log_s))).

    LU parameterisation: P a fixed permutation, L unit lower-triangular, U strictly upper
    triangular, so log|det W| = sum(log_s) and log|det| of the layer = H W sum(log_s).
    Initialised from a random rotation.
    """

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        w, log_s = self._weight(x.shape[-1])
        log_det = self._log_det(x, log_s)
        if reverse:
            return x @ jnp.linalg.inv(w).T, -log_det
        return x @ w.T, log_det

    def _weight(self, c: int) -> tuple[Array, Array]:
        def lu_init(key: Array) -> dict[str, Array]:
            q, _ = jnp.linalg.qr(jax.random.normal(key, (c, c)))
            p, low, up = jax.scipy.linalg.lu(q)
            diag = jnp.diag(up)
            return {
                "p": p,
                "l": low,
                "u": jnp.triu(up, 1),
                "sign_s": jnp.sign(diag),
                "log_s": jnp.log(jnp.abs(diag)),
            }

        lu = self.param("lu", lu_init)
        p = jax.lax.stop_gradient(lu["p"])
        sign_s = jax.lax.stop_gradient(lu["sign_s"])
        low = jnp.tril(lu["l"], -1) + jnp.eye(c)
        up = jnp.triu(lu["u"], 1) + jnp.diag(sign_s * jnp.exp(lu["log_s"]))
        return p @ low @ up, lu["log_s"]

    @staticmethod
    def _log_det(x: Array, log_s: Array) -> Array:
        return jnp.full((x.shape[0],), x.shape[1] * x.shape[2] * jnp.sum(log_s))


class AffineCoupling(nn.Module):
    """Affine coupling: x = (x_a, x_b), y = (x_a, (x_b + t(x_a)) * s(x_a)).

    s = f + (1 - f) sigmoid(h + 2) in (f, 1), f = ``floor``: the sigmoid scale of Glow with a
    floor, so that no coupling contracts by more than 1/f (without it, noisy out-of-distribution
    inputs drive s to ~0 and the inverse x_b = y_b / s - t loses all precision).
    log|det| = sum log s. The coupling net is conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3
    with the last layer zero-initialised, so the layer starts close to the identity (t = 0).
    """

    hidden: int
    floor: float

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        x_a, x_b = jnp.split(x, 2, axis=-1)
        h = nn.relu(nn.Conv(self.hidden, (3, 3), name="conv_in")(x_a))
        h = nn.relu(nn.Conv(self.hidden, (1, 1), name="conv_mid")(h))
        h = nn.Conv(
            2 * x_b.shape[-1],
            (3, 3),
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            name="conv_out",
        )(h)
        shift, raw_scale = h[..., 0::2], h[..., 1::2]
        scale = self.floor + (1.0 - self.floor) * nn.sigmoid(raw_scale + 2.0)
        log_det = jnp.sum(jnp.log(scale), axis=(1, 2, 3))
        if reverse:
            return jnp.concatenate([x_a, x_b / scale - shift], axis=-1), -log_det
        return jnp.concatenate([x_a, (x_b + shift) * scale], axis=-1), log_det


class FlowStep(nn.Module):
    """One Glow step: actnorm -> invertible 1x1 conv -> affine coupling."""

    hidden: int
    floor: float

    def setup(self) -> None:
        self.actnorm = ActNorm()
        self.invconv = InvConv1x1()
        self.coupling = AffineCoupling(self.hidden, self.floor)

    def __call__(self, x: Array) -> tuple[Array, Array]:
        x, ld1 = self.actnorm(x)
        x, ld2 = self.invconv(x)
        x, ld3 = self.coupling(x)
        return x, ld1 + ld2 + ld3

    def inverse(self, y: Array) -> tuple[Array, Array]:
        y, ld3 = self.coupling(y, reverse=True)
        y, ld2 = self.invconv(y, reverse=True)
        y, ld1 = self.actnorm(y, reverse=True)
        return y, ld1 + ld2 + ld3


class Glow(nn.Module):
    """Multi-scale Glow: ``__call__`` is f (x -> z), ``inverse`` is f^-1 (z -> x).

    Shapes: x and z are (B, P, P, C) with x in [0, 1]; log-determinants are (B,).
    """

    config: GlowConfig

    def setup(self) -> None:
        cfg = self.config
        self.steps = [FlowStep(cfg.hidden, cfg.scale_floor) for _ in range(cfg.levels * cfg.depth)]

    def __call__(self, x: Array) -> tuple[Array, Array]:
        cfg = self.config
        a = cfg.alpha
        u = a + (1.0 - 2.0 * a) * x
        h = jnp.log(u) - jnp.log1p(-u)
        log_det = jnp.sum(math.log(1.0 - 2.0 * a) - jnp.log(u) - jnp.log1p(-u), axis=(1, 2, 3))
        latents = []
        for level in range(cfg.levels):
            h = squeeze(h)
            for step in self.steps[level * cfg.depth : (level + 1) * cfg.depth]:
                h, ld = step(h)
                log_det = log_det + ld
            if level < cfg.levels - 1:
                h, z_l = jnp.split(h, 2, axis=-1)
                latents.append(z_l)
        latents.append(h)
        z = jnp.concatenate([zl.reshape(zl.shape[0], -1) for zl in latents], axis=1)
        return z.reshape(x.shape), log_det

    def inverse(self, z: Array) -> tuple[Array, Array]:
        cfg = self.config
        flat = z.reshape(z.shape[0], -1)
        sizes = [math.prod(s) for s in cfg.latent_shapes]
        offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        latents = [
            flat[:, offsets[i] : offsets[i + 1]].reshape((-1, *shape))
            for i, shape in enumerate(cfg.latent_shapes)
        ]
        h = latents[-1]
        log_det = jnp.zeros(z.shape[0], z.dtype)
        for level in reversed(range(cfg.levels)):
            if level < cfg.levels - 1:
                h = jnp.concatenate([h, latents[level]], axis=-1)
            for step in reversed(self.steps[level * cfg.depth : (level + 1) * cfg.depth]):
                h, ld = step.inverse(h)
                log_det = log_det + ld
            h = unsqueeze(h)
        a = cfg.alpha
        u = jax.nn.sigmoid(h)
        x = (u - a) / (1.0 - 2.0 * a)
        log_det = log_det + jnp.sum(
            jnp.log(u) + jnp.log1p(-u) - math.log(1.0 - 2.0 * a), axis=(1, 2, 3)
        )
        return x, log_det
