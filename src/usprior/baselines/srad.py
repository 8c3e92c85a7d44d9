"""Speckle reducing anisotropic diffusion (SRAD), in JAX.

Y. Yu and S. T. Acton, "Speckle reducing anisotropic diffusion", IEEE Trans. Image Process.
11(11):1260-1270, 2002. The PDE ``dI/dt = div(c(q) grad I)``, ``I(0) = y``, is integrated with the
explicit scheme of the paper on the 4-neighbourhood of pixel (i, j) (grid spacing 1):

    dN, dS, dW, dE = I[i-1,j] - I, I[i+1,j] - I, I[i,j-1] - I, I[i,j+1] - I
    q^2 = (|grad I|^2 / (2 I^2) - L^2 / 16) / (1 + L / 4)^2,
        |grad I|^2 = dN^2 + dS^2 + dW^2 + dE^2,   L = (dN + dS + dW + dE) / I   (normalised Laplacian)
    c   = clip(1 / (1 + (q^2 - q0(t)^2) / (q0(t)^2 (1 + q0(t)^2))), 0, 1)
    I  <- I + dt * (c[i,j] dN + c[i+1,j] dS + c[i,j] dW + c[i,j+1] dE)

``q`` is the instantaneous coefficient of variation and ``q0(t) = q0 exp(-rho t)`` the speckle
scale at diffusion time ``t = n dt`` after ``n`` steps: the paper's exponential approximation,
not its homogeneous-ROI estimate (no ROI to pick). Boundaries are Neumann (edge pixels
replicated, so no flux leaves the image).

Time units: the update is the paper's ``I + (Delta t / 4) d`` with ``Delta t = 4 dt``, so our
``dt`` is the time step of the PDE on a unit grid and the paper's time is ``4 t``; its
``rho = 1/6`` per unit of its time is ``rho = 4 / 6 = 2/3`` here (the default). With ``c`` in
[0, 1] and ``dt <= 0.25`` every step is a convex combination of neighbouring values, so the
iterates stay in the range of the input (no overshoot, no blow-up).

The intensity ``I`` is floored at 1e-6 in the divisions, so zero pixels (and an all-zero image)
give finite coefficients. The paper applies SRAD to envelope (positive) data; here it runs on the
display image in [0, 1] directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from usprior.baselines.local_statistics import estimate_cu
from usprior.validation import as_float_image, check_int, check_nonnegative, check_positive, unit_image

__all__ = ["srad"]

_EPS = 1e-6  # floor of I (in q) and of the squared denominator of q^2
_MIN_Q0 = 1e-3  # floor of an estimated q0 (a noise-free image estimates q0 = 0)


def _diffusion_step(image: jax.Array, q0: jax.Array, dt: jax.Array) -> jax.Array:
    """One explicit SRAD step of the float32 (H, W) ``image`` at speckle scale ``q0``: (H, W) -> (H, W)."""
    padded = jnp.pad(image, 1, mode="edge")
    d_north = padded[:-2, 1:-1] - image
    d_south = padded[2:, 1:-1] - image
    d_west = padded[1:-1, :-2] - image
    d_east = padded[1:-1, 2:] - image
    intensity = jnp.maximum(image, _EPS)
    grad2 = (d_north**2 + d_south**2 + d_west**2 + d_east**2) / intensity**2
    laplacian = (d_north + d_south + d_west + d_east) / intensity
    q2 = (0.5 * grad2 - laplacian**2 / 16.0) / jnp.maximum((1.0 + 0.25 * laplacian) ** 2, _EPS)
    q02 = q0 * q0
    c = jnp.clip(1.0 / (1.0 + (q2 - q02) / (q02 * (1.0 + q02))), 0.0, 1.0)
    c_padded = jnp.pad(c, 1, mode="edge")
    divergence = c * (d_north + d_west) + c_padded[2:, 1:-1] * d_south + c_padded[1:-1, 2:] * d_east
    return image + dt * divergence


@jax.jit
def _srad(image: jax.Array, q0: jax.Array, rho: jax.Array, dt: jax.Array, iterations: jax.Array) -> jax.Array:
    """``iterations`` SRAD steps of (H, W) ``image`` with ``q0(t) = q0 exp(-rho n dt)``; scalars traced."""

    def body(n: jax.Array, current: jax.Array) -> jax.Array:
        return _diffusion_step(current, q0 * jnp.exp(-rho * n * dt), dt)

    return lax.fori_loop(0, iterations, body, image)


def srad(
    image: np.ndarray,
    iterations: int = 24,
    dt: float = 0.125,
    q0: float | None = None,
    rho: float = 2.0 / 3.0,
) -> np.ndarray:
    """Speckle reducing anisotropic diffusion (Yu & Acton 2002) of a 2-D image in [0, 1].

    Args:
        image: (H, W) in [0, 1], both sides >= 3.
        iterations: number of explicit steps >= 0 (default 24; 0 returns the input).
        dt: time step in (0, 0.25] (default 0.125, the paper's ``Delta t = 0.5``); total
            diffusion time ``iterations * dt`` (default 3).
        q0: initial speckle scale > 0; None (default) estimates it as the median local
            coefficient of variation in a 5 x 5 window
            (:func:`usprior.baselines.local_statistics.estimate_cu`), floored at 1e-3.
        rho: decay rate >= 0 of ``q0(t) = q0 exp(-rho t)`` (default 2/3, the paper's 1/6 in
            our time units).

    Returns:
        float32 (H, W) in [0, 1]. One jit-compiled ``lax.fori_loop`` per image shape; the
        parameters are traced, so new values do not recompile.

    Raises:
        ValueError: an invalid image, ``iterations < 0``, ``dt`` outside (0, 0.25], ``q0 <= 0``
            or ``rho < 0``.
    """
    y = as_float_image(image, min_size=3, name="image")
    iterations = check_int(iterations, "iterations", 0)
    dt = check_positive(dt, "dt")
    if dt > 0.25:
        raise ValueError(f"dt must be <= 0.25 for a stable explicit scheme, got {dt!r}")
    q0 = max(estimate_cu(y, 5), _MIN_Q0) if q0 is None else check_positive(q0, "q0")
    rho = check_nonnegative(rho, "rho")
    out = _srad(jnp.asarray(y), jnp.float32(q0), jnp.float32(rho), jnp.float32(dt), jnp.int32(iterations))
    return unit_image(out)
