"""The Glow patch prior p(x) as a JAX pytree, and its distrax bijector / distribution views.

``FlowPrior`` bundles a :class:`~usprior.priors.glow.GlowConfig` (static) with trained parameters
(pytree leaves), so it can be passed straight into ``jax.jit``-compiled functions. Its
methods accept any number of leading batch dimensions: x and z have shape (..., P, P, C).

    encode:  z = f(x)                         (image patch -> latent)
    decode:  x = f^-1(z)                      (latent -> image patch)
    log_prob(x) = log N(f(x); 0, I) + log|det df/dx|
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import distrax
import jax
import jax.numpy as jnp
from flax import struct

from usprior.io import checkpoints
from usprior.priors.glow import Glow, GlowConfig

Array = jax.Array


def _flatten_batch(a: Array, event_shape: tuple[int, ...]) -> tuple[Array, tuple[int, ...]]:
    """(..., *event_shape) -> ((B, *event_shape), leading shape)."""
    lead = a.shape[: a.ndim - len(event_shape)]
    if a.shape[a.ndim - len(event_shape) :] != event_shape:
        raise ValueError(f"expected trailing shape {event_shape}, got array of shape {a.shape}")
    return a.reshape((-1, *event_shape)), lead


@struct.dataclass
class FlowPrior:
    """A trained (or initialised) Glow flow over patches of shape ``config.event_shape``."""

    params: Any
    config: GlowConfig = struct.field(pytree_node=False)

    @property
    def event_shape(self) -> tuple[int, int, int]:
        """(P, P, C): the shape of one patch and of its latent."""
        return self.config.event_shape

    def encode_and_log_det(self, x: Array) -> tuple[Array, Array]:
        """z = f(x) and log|det df/dx|: (..., P, P, C) -> ((..., P, P, C), (...))."""
        xb, lead = _flatten_batch(x, self.event_shape)
        z, log_det = Glow(self.config).apply(self.params, xb)
        return z.reshape(x.shape), log_det.reshape(lead)

    def decode_and_log_det(self, z: Array) -> tuple[Array, Array]:
        """x = f^-1(z) and log|det df^-1/dz|: (..., P, P, C) -> ((..., P, P, C), (...))."""
        zb, lead = _flatten_batch(z, self.event_shape)
        x, log_det = Glow(self.config).apply(self.params, zb, method=Glow.inverse)
        return x.reshape(z.shape), log_det.reshape(lead)

    def encode(self, x: Array) -> Array:
        """z = f(x), (..., P, P, C) -> (..., P, P, C)."""
        return self.encode_and_log_det(x)[0]

    def decode(self, z: Array) -> Array:
        """x = f^-1(z), (..., P, P, C) -> (..., P, P, C); x lies in (0, 1)-ish by construction."""
        return self.decode_and_log_det(z)[0]

    def log_prob(self, x: Array) -> Array:
        """log p(x) = -||f(x)||^2 / 2 - D/2 log(2 pi) + log|det df/dx|, (..., P, P, C) -> (...)."""
        z, log_det = self.encode_and_log_det(x)
        d = math.prod(self.event_shape)
        sq = jnp.sum(jnp.square(z), axis=(-3, -2, -1))
        return -0.5 * sq - 0.5 * d * math.log(2.0 * math.pi) + log_det

    def sample(self, key: Array, n: int, temperature: float = 1.0) -> Array:
        """Draw n patches x = f^-1(T z), z ~ N(0, I): returns (n, P, P, C)."""
        z = temperature * jax.random.normal(key, (n, *self.event_shape))
        return self.decode(z)

    def bijector(self) -> "GlowBijector":
        """The generative map z -> x as a distrax bijector (forward = f^-1)."""
        return GlowBijector(self)

    def distribution(self) -> distrax.Transformed:
        """p(x) as a distrax distribution: N(0, I) pushed through :meth:`bijector`."""
        base = distrax.Independent(
            distrax.Normal(jnp.zeros(self.event_shape), jnp.ones(self.event_shape)),
            reinterpreted_batch_ndims=3,
        )
        return distrax.Transformed(base, self.bijector())


class GlowBijector(distrax.Bijector):
    """distrax view of a :class:`FlowPrior`: forward is the generative map z -> x = f^-1(z).

    Event shape (P, P, C) both ways; log-determinants are returned per batch element.
    """

    def __init__(self, prior: FlowPrior):
        super().__init__(event_ndims_in=3, event_ndims_out=3)
        self.prior = prior

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        return self.prior.decode_and_log_det(x)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        return self.prior.encode_and_log_det(y)


def init_prior(config: GlowConfig, key: Array, x_init: Array) -> FlowPrior:
    """Initialise a prior; actnorm layers take their data-dependent init from ``x_init``.

    ``x_init``: (B, P, P, C) patches in [0, 1], B large enough for stable statistics (>= 64).
    """
    params = Glow(config).init(key, jnp.asarray(x_init, jnp.float32))
    return FlowPrior(params=params, config=config)


# --- checkpoints ------------------------------------------------------------------------------

DEFAULT_PRIOR = "glow_mri"
"""The shipped prior (a name for :func:`usprior.io.checkpoints.resolve`)."""


def save_prior(prior: FlowPrior, directory: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``prior`` to ``directory`` (created; must not exist or be empty) with its checksums."""
    return checkpoints.write_checkpoint(directory, "glow", prior.config, {"params": prior.params}, metadata)


def _checkpoint_dir(checkpoint: str | os.PathLike | None) -> Path:
    return checkpoints.shipped(DEFAULT_PRIOR) if checkpoint is None else checkpoints.resolve(checkpoint)


def read_metadata(checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """The metadata saved with a prior checkpoint (see :func:`load_prior` for the errors)."""
    return checkpoints.read_record(_checkpoint_dir(checkpoint), {"glow": GlowConfig})[2]


def _load(directory: Path) -> FlowPrior:
    _, config, _ = checkpoints.read_record(directory, {"glow": GlowConfig})
    checkpoints.verify(directory)
    patch = jax.ShapeDtypeStruct((1, *config.event_shape), "float32")
    target = jax.eval_shape(lambda x: Glow(config).init(jax.random.PRNGKey(0), x), patch)
    params = checkpoints.restore_tree(directory / "params", target, config)
    return FlowPrior(params=params, config=config)


def load_prior(checkpoint: str | os.PathLike | None = None) -> FlowPrior:
    """Load a prior saved by :func:`save_prior`: a directory or a shipped name (default ``glow_mri``).

    Cached until its files change (:func:`usprior.io.checkpoints.load_cached`). Raises
    ``FileNotFoundError`` for a missing directory / file and ``ValueError`` for a corrupt config,
    a file that fails its checksum or a parameter tree that does not fit the architecture.
    """
    return checkpoints.load_cached(_load, _checkpoint_dir(checkpoint))
