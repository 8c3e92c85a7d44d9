"""The one-call API: ``usprior.denoise(image, method=...)`` returning a float image in [0, 1].

Regularisation weight. The solver minimises NLL(y | f^-1(z)) + lam ||z||^2. For additive
Gaussian noise, NLL = ||y - x||^2 / (2 sigma^2), so the MRI-prior paper's form
||y - x||^2 + lam_p ||z||^2 with its default lam_p = 0.75 sigma^2 is the same problem with
lam = lam_p / (2 sigma^2) = 0.375: a noise-level-free constant (lam = 0.5 is the exact
Bayesian MAP under z ~ N(0, I)). ``DEFAULT_LAM`` is that value.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from usprior.amortized.inference import get_model, run_model
from usprior.checkpoint import get_prior
from usprior.likelihoods import Likelihood, make_likelihood
from usprior.prior import FlowPrior
from usprior.solvers import MAPConfig, map_denoise
from usprior.validation import as_float_frames, check_positive

DEFAULT_LAM = 0.375
METHODS = ("map", "unrolled", "pix2pix", "ffdnet")


def denoise(
    image: np.ndarray,
    method: str = "map",
    likelihood: str | Likelihood | None = None,
    sigma: float | None = None,
    lam: float | None = None,
    steps: int | None = None,
    stride: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
    warm_steps: int | None = None,
    batch: int = 16,
) -> np.ndarray:
    """Denoise a grayscale image (H, W) or a cine stack (T, H, W); float32 of the same shape in [0, 1].

    ``image``: integer (rescaled by its dtype range) or float in [0, 1], H, W >= 32.
    ``method``: ``"map"`` (latent MAP with the flow prior, iterative), ``"unrolled"`` (K learned
    MAP steps), ``"pix2pix"`` or ``"ffdnet"`` (one network pass); ``checkpoint``: the method's
    checkpoint directory (the prior for ``"map"``, the model for the others; default: the
    shipped one). ``sigma``: the noise level — of the likelihood for ``"map"`` / ``"unrolled"``,
    of the noise-level map (strength knob) for ``"ffdnet"``; None estimates it from the first
    frame for ``"map"`` (wavelet MAD, ``Likelihood.from_image``) and takes the model's
    training median for the amortised ones (:mod:`usprior.amortized.inference`).
    ``likelihood``: a name (``usprior.likelihoods.LIKELIHOODS``) or object; default
    ``"gaussian"`` for ``"map"``, the trained one for ``"unrolled"``. ``lam`` / ``steps``:
    weight of ||z||^2 (default :data:`DEFAULT_LAM`) and Adam steps per patch, ``"map"`` only;
    ``stride``: patch stride (``"map"``, ``"unrolled"``).

    Cine: frames are denoised in order; ``"map"`` warm-starts every frame after the first from
    the previous frame's latents and runs ``warm_steps`` Adam steps on it (default
    ``steps // 4``); ``"pix2pix"`` / ``"ffdnet"`` run ``batch`` frames per pass. All methods
    are deterministic: the same input and settings give the same output. Options a method does
    not have raise ``ValueError``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method != "map":
        if lam is not None or steps is not None or warm_steps is not None:
            raise ValueError(f"lam, steps and warm_steps are options of 'map', not of {method!r}")
        model = get_model(method, checkpoint)
        frames = as_float_frames(image, min_size=1)  # unrolled_denoise checks the patch size
        out = run_model(model, frames, sigma=sigma, likelihood=likelihood, batch=batch, stride=stride)
    else:
        prior = get_prior(checkpoint)
        frames = as_float_frames(image, min_size=prior.config.patch)
        out = _map_frames(frames, prior, likelihood or "gaussian", sigma, lam, steps, warm_steps, stride, progress)
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"{method} produced non-finite values; try a larger sigma (or lam)")
    out = np.clip(out, 0.0, 1.0)
    return out if np.ndim(image) == 3 else out[0]


def _map_frames(
    frames: np.ndarray,
    prior: FlowPrior,
    likelihood: str | Likelihood,
    sigma: float | None,
    lam: float | None,
    steps: int | None,
    warm_steps: int | None,
    stride: int | None,
    progress: bool,
) -> np.ndarray:
    """MAP on each frame of (T, H, W), frames after the first warm-started from the previous latents."""
    lik = make_likelihood(likelihood, sigma=sigma, image=frames[0])
    lam = DEFAULT_LAM if lam is None else check_positive(lam, "lam")
    overrides = {k: v for k, v in {"steps": steps, "stride": stride}.items() if v is not None}
    cold = dataclasses.replace(MAPConfig(), **overrides)
    warm = dataclasses.replace(cold, steps=max(1, cold.steps // 4) if warm_steps is None else warm_steps)
    out, z = [], None
    for frame in frames:
        result = map_denoise(frame, prior, lik, lam, cold if z is None else warm, z0=z, progress=progress)
        out.append(result.image)
        z = result.z
    return np.stack(out)
