"""Observation models p(y | x) linking the clean image x to the observed image y.

Every model is a :func:`flax.struct.dataclass`, i.e. a JAX pytree whose numeric
parameters are leaves, so a likelihood can be handed as an ordinary argument to
a function under ``jax.jit`` / ``jax.vmap`` / ``jax.grad``. A MAP solver only
relies on the :class:`Likelihood` protocol:

* ``name`` -- class-level identifier (not a pytree field),
* ``nll(x, y)`` -- negative log-likelihood ``-log p(y | x)`` summed over all
  elements, up to an additive constant that does not depend on ``x``,
* ``sample(key, x)`` -- a draw ``y ~ p(y | x)`` with the shape of ``x``,
* ``params()`` -- the parameters as plain floats, for logging (call it outside
  ``jit``: it converts the leaves with ``float``).

Intensities live in the display domain: ``x`` and ``y`` are float arrays with
values nominally in [0, 1], of any shape (typically ``(32, 32, 1)`` patches).

Conventions shared by all models:

* **Dropped constants.** ``nll`` omits every term that does not depend on
  ``x`` (e.g. ``log(2 pi sigma^2) / 2`` for the Gaussian, ``log Gamma(L)`` and
  ``log y`` terms for the gamma model). Values are therefore only meaningful
  up to an ``x``-independent offset; gradients with respect to ``x`` are exact.
* **Floor.** Wherever a model divides by ``x`` or takes ``log x`` it uses
  ``max(x, EPS)`` with ``EPS = 1e-3``, so ``nll`` and its gradient are finite
  for ``x`` in [0, 1], including exactly 0. Below the floor the scale is
  constant, so its contribution to the gradient is zero there.
* **Noise estimation.** ``from_image(y)`` estimates the noise parameter from a
  noisy 2-D image with :func:`usprior.physics.noise.estimate_noise`: the
  wavelet MAD estimate for white noise, the std in homogeneous windows for
  correlated speckle (``s_hat``, with the intensity ``level`` of those windows),
  converted with the model's variance formula. ``s_hat`` is clamped from below
  at ``1e-3``, about the quantisation noise of an 8-bit image
  (``1 / (255 sqrt(12))``), so a noise-free image gives a sharp but
  non-degenerate model (MAP then stays close to ``y``).
"""

from __future__ import annotations

from typing import ClassVar, Protocol, Self, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from usprior.physics.noise import NoiseEstimate, estimate_noise
from usprior.validation import check_nonnegative, check_positive

__all__ = [
    "EPS",
    "LIKELIHOODS",
    "GammaSpeckle",
    "Gaussian",
    "Likelihood",
    "LogSpeckle",
    "RayleighSpeckle",
    "make_likelihood",
]

EPS: float = 1e-3
"""Floor applied to ``x`` wherever a model divides by ``x`` or takes ``log x``."""



@runtime_checkable
class Likelihood(Protocol):
    """Interface every observation model implements (see the module docstring)."""

    name: ClassVar[str]

    def nll(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Return ``-log p(y | x)`` summed over all elements (a scalar), up to an ``x``-free constant."""
        ...

    def sample(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Draw ``y ~ p(y | x)`` with the shape of ``x``."""
        ...

    def params(self) -> dict[str, float]:
        """Return the model parameters as plain floats (for logging)."""
        ...


def _as_image(y: np.ndarray) -> np.ndarray:
    """Return ``y`` as a 2-D float64 array; a trailing channel axis of size 1 is dropped."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 3 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.ndim != 2:
        raise ValueError(f"expected a 2-D image (H, W) or (H, W, 1), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("image contains non-finite values")
    return y


def _noise(y: np.ndarray) -> NoiseEstimate:
    """:func:`usprior.physics.noise.estimate_noise` of a validated 2-D image."""
    return estimate_noise(y)


def _float_array(x: jax.Array) -> jax.Array:
    """Return ``x`` as a JAX array of a floating dtype (the default float for integer input)."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(jnp.result_type(float))


@struct.dataclass
class Gaussian:
    """Additive white Gaussian noise in the (log-compressed) display domain.

    Observation model::

        y = x + sigma * n,    n ~ N(0, 1) i.i.d.

    Negative log-likelihood (the constant ``N/2 * log(2 pi sigma^2)`` dropped)::

        nll(x, y) = sum_i (y_i - x_i)^2 / (2 sigma^2)

    Attributes:
        sigma: noise standard deviation (scalar, > 0, same units as ``y``).

    ``from_image``: ``sigma = s_hat``, the wavelet MAD noise estimate of ``y``.
    """

    name: ClassVar[str] = "gaussian"
    sigma: float

    @classmethod
    def from_sigma(cls, sigma: float) -> Self:
        """Build the model with noise std ``sigma`` (validated: finite, > 0)."""
        return cls(sigma=check_positive(sigma, "sigma"))

    @classmethod
    def from_image(cls, y: np.ndarray) -> Self:
        """Estimate ``sigma = s_hat`` from a noisy image ``y`` of shape (H, W) or (H, W, 1)."""
        return cls.from_sigma(_noise(_as_image(y)).std)

    def nll(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Return ``sum (y - x)^2 / (2 sigma^2)`` (a scalar) for arrays of any common shape."""
        x = _float_array(x)
        return jnp.sum(jnp.square(y - x)) / (2.0 * jnp.square(self.sigma))

    def sample(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Draw ``y = x + sigma * n`` with the shape and dtype of ``x``."""
        x = _float_array(x)
        return x + self.sigma * jax.random.normal(key, x.shape, x.dtype)

    def params(self) -> dict[str, float]:
        """Return ``{"sigma": sigma}``."""
        return {"sigma": float(self.sigma)}


@struct.dataclass
class LogSpeckle:
    """Signal-dependent speckle of log-compressed ultrasound (Loupas et al. 1989).

    The model used by Coupé et al. (2009) for the OBNLM filter::

        y = x + x^gamma * sigma * eta,    eta ~ N(0, 1) i.i.d.

    so ``y | x ~ N(x, sigma^2 x^(2 gamma))``. Negative log-likelihood, with
    ``xc = max(x, EPS)`` in the noise scale and the constant
    ``N * (log sigma + log(2 pi) / 2)`` dropped::

        nll(x, y) = sum_i [ (y_i - x_i)^2 / (2 sigma^2 xc_i^(2 gamma)) + gamma * log xc_i ]

    ``sample`` uses the same floored scale ``sigma * xc^gamma``.

    Attributes:
        sigma: noise level (scalar, > 0); the local std is ``sigma * x^gamma``.
        gamma: signal-dependence exponent (scalar, >= 0; 0.5 in Coupé et al.,
            0 reduces to :class:`Gaussian`).

    ``from_image``: the image-wide noise variance is ``sigma^2 * mean(x^(2 gamma))``
    and ``x`` is replaced by the observation, so
    ``sigma = s_hat / sqrt(mean(max(y, EPS)^(2 gamma)))``.
    """

    name: ClassVar[str] = "log_speckle"
    sigma: float
    gamma: float = 0.5

    @classmethod
    def from_sigma(cls, sigma: float, gamma: float = 0.5) -> Self:
        """Build the model from ``sigma`` (finite, > 0) and ``gamma`` (finite, >= 0)."""
        return cls(sigma=check_positive(sigma, "sigma"), gamma=check_nonnegative(gamma, "gamma"))

    @classmethod
    def from_image(cls, y: np.ndarray, gamma: float = 0.5) -> Self:
        """Estimate ``sigma = s_hat / max(level, EPS)^gamma`` from a noisy image ``y``, with
        ``level`` the intensity of the homogeneous windows the noise was read in."""
        gamma = check_nonnegative(gamma, "gamma")
        noise = _noise(_as_image(y))
        return cls.from_sigma(noise.std / max(noise.level, EPS) ** gamma, gamma)

    def nll(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Return ``sum (y - x)^2 / (2 sigma^2 xc^(2 gamma)) + gamma log xc`` with ``xc = max(x, EPS)``."""
        x = _float_array(x)
        log_xc = jnp.log(jnp.maximum(x, EPS))
        var = jnp.square(self.sigma) * jnp.exp(2.0 * self.gamma * log_xc)
        return jnp.sum(jnp.square(y - x) / (2.0 * var) + self.gamma * log_xc)

    def sample(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Draw ``y = x + max(x, EPS)^gamma * sigma * eta`` with the shape and dtype of ``x``."""
        x = _float_array(x)
        scale = self.sigma * jnp.power(jnp.maximum(x, EPS), self.gamma)
        return x + scale * jax.random.normal(key, x.shape, x.dtype)

    def params(self) -> dict[str, float]:
        """Return ``{"sigma": sigma, "gamma": gamma}``."""
        return {"sigma": float(self.sigma), "gamma": float(self.gamma)}


@struct.dataclass
class GammaSpeckle:
    """Multiplicative gamma speckle on intensity images.

    Observation model::

        y = x * s,    s ~ Gamma(shape=L, scale=1/L) i.i.d.    (E[s] = 1, Var[s] = 1/L)

    ``L`` is the number of looks; ``L = 1`` is fully developed speckle
    (exponentially distributed intensity). Negative log-likelihood, with
    ``xc = max(x, EPS)`` and the constant ``sum[log Gamma(L) - L log L - (L - 1) log y]``
    dropped::

        nll(x, y) = sum_i L * (log xc_i + y_i / xc_i)

    Attributes:
        looks: number of looks ``L`` (scalar, > 0, need not be an integer).

    ``from_sigma(sigma)``: ``sigma`` is the relative noise std ``std(y)/x``,
    so ``L = 1 / sigma^2``.
    ``from_image``: ``L = 1 / r^2`` with ``r = s_hat / mean(y)``. The MAD
    estimate assumes Gaussian noise; on skewed gamma speckle it slightly
    underestimates the std, so ``L`` comes out high by roughly 0.35 looks
    (about 35 % at ``L = 1``, 2 % at ``L = 16``, on homogeneous regions).
    """

    name: ClassVar[str] = "gamma"
    looks: float

    @classmethod
    def from_sigma(cls, sigma: float) -> Self:
        """Build the model from the relative noise std ``sigma``: ``L = 1 / sigma^2``."""
        sigma = check_positive(sigma, "sigma")
        return cls(looks=check_positive(1.0 / sigma**2, "looks (1 / sigma^2)"))

    @classmethod
    def from_image(cls, y: np.ndarray) -> Self:
        """Estimate ``L = 1 / r^2`` with ``r = s_hat / level`` from a noisy intensity image ``y``
        (``level``: the intensity of the homogeneous windows the noise was read in)."""
        noise = _noise(_as_image(y))
        return cls.from_sigma(noise.std / check_positive(noise.level, "mean image intensity"))

    def nll(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Return ``sum L * (log xc + y / xc)`` with ``xc = max(x, EPS)``."""
        xc = jnp.maximum(_float_array(x), EPS)
        return self.looks * jnp.sum(jnp.log(xc) + y / xc)

    def sample(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Draw ``y = x * s`` with ``s ~ Gamma(L, 1/L)``, in the shape and dtype of ``x``."""
        x = _float_array(x)
        return x * jax.random.gamma(key, self.looks, x.shape, x.dtype) / self.looks

    def params(self) -> dict[str, float]:
        """Return ``{"looks": L}``."""
        return {"looks": float(self.looks)}


@struct.dataclass
class RayleighSpeckle:
    """Multiplicative Rayleigh speckle on amplitude (envelope) images.

    Observation model::

        y = x * r,    r Rayleigh with E[r^2] = 1,    p(y | x) = 2 y / x^2 * exp(-y^2 / x^2)

    (equivalently ``(y / x)^2 ~ Exponential(1)``). Negative log-likelihood, with
    ``xc = max(x, EPS)`` and the constant ``-sum log(2 y)`` dropped::

        nll(x, y) = sum_i (2 log xc_i + y_i^2 / xc_i^2)

    The model has no free noise parameter (no pytree leaves); ``from_image``
    returns the default instance and ``from_sigma`` raises ``ValueError``.
    """

    name: ClassVar[str] = "rayleigh"

    @classmethod
    def from_sigma(cls, sigma: float) -> Self:
        """Always raise ``ValueError``: the Rayleigh model has no noise parameter."""
        raise ValueError(
            f"the {cls.name!r} likelihood has no noise parameter; do not pass sigma={sigma!r}"
        )

    @classmethod
    def from_image(cls, y: np.ndarray) -> Self:
        """Return the (parameter-free) model; ``y`` is only checked to be a finite 2-D image."""
        _as_image(y)
        return cls()

    def nll(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Return ``sum (2 log xc + y^2 / xc^2)`` with ``xc = max(x, EPS)``."""
        xc = jnp.maximum(_float_array(x), EPS)
        return jnp.sum(2.0 * jnp.log(xc) + jnp.square(y / xc))

    def sample(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Draw ``y = x * sqrt(e)`` with ``e ~ Exponential(1)``, in the shape and dtype of ``x``."""
        x = _float_array(x)
        return x * jnp.sqrt(jax.random.exponential(key, x.shape, x.dtype))

    def params(self) -> dict[str, float]:
        """Return ``{}`` (no parameters)."""
        return {}


LIKELIHOODS: dict[str, type[Gaussian | LogSpeckle | GammaSpeckle | RayleighSpeckle]] = {
    cls.name: cls for cls in (Gaussian, LogSpeckle, GammaSpeckle, RayleighSpeckle)
}
"""Registry of the observation models by their ``name``."""


def make_likelihood(
    spec: str | Likelihood,
    sigma: float | None = None,
    image: np.ndarray | None = None,
) -> Likelihood:
    """Build a likelihood from a name and a noise level or a noisy image.

    Args:
        spec: a registered name (see :data:`LIKELIHOODS`) or an existing
            likelihood object, which is returned unchanged (``sigma`` and
            ``image`` are then ignored).
        sigma: noise level. ``"gaussian"`` / ``"log_speckle"``: ``sigma``;
            ``"gamma"``: relative std, ``looks = 1 / sigma^2``; ``"rayleigh"``:
            not allowed. Must be finite and > 0.
        image: noisy 2-D image used to estimate the noise parameter with
            ``from_image`` when ``sigma`` is None.

    Returns:
        The likelihood object.

    Raises:
        ValueError: unknown name, invalid ``sigma``, ``sigma`` given for
            ``"rayleigh"``, or neither ``sigma`` nor ``image`` given.
        TypeError: ``spec`` is neither a string nor a likelihood.
    """
    if not isinstance(spec, str):
        if not isinstance(spec, Likelihood):
            raise TypeError(f"spec must be a likelihood name or object, got {type(spec).__name__}")
        return spec
    if spec not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {spec!r}; valid names: {sorted(LIKELIHOODS)}")
    cls = LIKELIHOODS[spec]
    if sigma is not None:
        return cls.from_sigma(sigma)
    if image is not None:
        return cls.from_image(image)
    raise ValueError(f"likelihood {spec!r} needs either sigma or image to set its noise level")
