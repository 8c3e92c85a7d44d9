"""The one-call API: ``usprior.denoise(image, ...)`` returning a float image in [0, 1].

Regularisation weight. The solver minimises NLL(y | f^-1(z)) + lam ||z||^2. For additive
Gaussian noise, NLL = ||y - x||^2 / (2 sigma^2), so the MRI-prior paper's form
||y - x||^2 + lam_p ||z||^2 with its default lam_p = 0.75 sigma^2 is the same problem with
lam = lam_p / (2 sigma^2) = 0.375: a noise-level-free constant (lam = 0.5 is the exact
Bayesian MAP under z ~ N(0, I)). ``DEFAULT_LAM`` is that value.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import numpy as np

from usprior.checkpoint import default_checkpoint, load_prior
from usprior.likelihoods import Likelihood, make_likelihood
from usprior.prior import FlowPrior
from usprior.solvers import MAPConfig, map_denoise
from usprior.validation import as_float_image, check_positive

DEFAULT_LAM = 0.375
METHODS = ("map",)


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path) -> FlowPrior:
    return load_prior(path)


def get_prior(checkpoint: str | os.PathLike | None = None) -> FlowPrior:
    """Load (and cache) the prior in ``checkpoint``; default: the shipped checkpoint."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    return _load_cached(path.resolve())


def denoise(
    image: np.ndarray,
    method: str = "map",
    likelihood: str | Likelihood = "gaussian",
    sigma: float | None = None,
    lam: float | None = None,
    steps: int | None = None,
    stride: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Denoise a 2-D grayscale image with the flow prior; returns float32 (H, W) in [0, 1].

    ``image``: (H, W), integer (rescaled by its dtype range) or float in [0, 1], H, W >= 32.
    ``likelihood``: a name (``usprior.likelihoods.LIKELIHOODS``) or a likelihood object.
    ``sigma``: noise level of the named likelihood; None estimates it from the image
    (wavelet MAD estimate, see ``Likelihood.from_image``). ``lam``: weight of ||z||^2
    (default :data:`DEFAULT_LAM`). ``steps`` / ``stride``: override :class:`MAPConfig`.
    MAP is deterministic: the same input and settings give the same output.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    prior = get_prior(checkpoint)
    y = as_float_image(image, min_size=prior.config.patch)
    lik = make_likelihood(likelihood, sigma=sigma, image=y)
    lam = DEFAULT_LAM if lam is None else check_positive(lam, "lam")
    overrides = {k: v for k, v in {"steps": steps, "stride": stride}.items() if v is not None}
    cfg = dataclasses.replace(MAPConfig(), **overrides)
    result = map_denoise(y, prior, lik, lam, cfg, progress=progress)
    if not np.all(np.isfinite(result.image)):
        raise FloatingPointError("MAP produced non-finite values; try a larger sigma or lam")
    return np.clip(result.image, 0.0, 1.0)
