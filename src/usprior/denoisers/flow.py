"""Denoisers that use the flow prior: latent MAP (``"map"``) and unrolled MAP (``"unrolled"``).

Regularisation weight. The MAP solver minimises NLL(y | f^-1(z)) + lam ||z||^2. For additive
Gaussian noise, NLL = ||y - x||^2 / (2 sigma^2), so the MRI-prior paper's form
||y - x||^2 + lam_p ||z||^2 with its default lam_p = 0.75 sigma^2 is the same problem with
lam = lam_p / (2 sigma^2) = 0.375: a noise-level-free constant (lam = 0.5 is the exact
Bayesian MAP under z ~ N(0, I)). :data:`DEFAULT_LAM` = 1 was measured best on the sagittal
validation band at sigma 0.1 and 0.2 alike (docs/results/calibrate_map.md), so it stays a
constant, not a function of the noise level.

``sigma`` (call time) is the noise level of the likelihood. None: for ``"map"`` it is estimated
from the first frame (:meth:`Likelihood.from_image`); for ``"unrolled"`` it is the trained one,
``sigma_scale * sigma_median`` from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from usprior.amortized.checkpoint import AmortizedCheckpoint, load_model
from usprior.denoisers import DEFAULT_LAM
from usprior.denoisers.base import Denoiser
from usprior.physics.likelihoods import LIKELIHOODS, Likelihood, make_likelihood
from usprior.priors.flow import FlowPrior, load_prior
from usprior.solvers.global_map import GlobalConfig, global_map_denoise
from usprior.solvers.map import MAX_STEPS, MAPConfig, map_denoise
from usprior.solvers.unrolled import unrolled_denoise
from usprior.validation import check_int, check_positive

UNROLLED_MODEL = "unrolled_us"


def _check_likelihood(likelihood: str | Likelihood | None) -> str | Likelihood | None:
    if likelihood is None or not isinstance(likelihood, str) or likelihood in LIKELIHOODS:
        return likelihood
    raise ValueError(f"unknown likelihood {likelihood!r}; valid names: {sorted(LIKELIHOODS)}")


class MAPDenoiser(Denoiser):
    """Latent MAP with a flow prior (:func:`usprior.solvers.map.map_denoise`), frame by frame.

    Options: ``checkpoint`` the prior (a directory or shipped name; default ``glow_mri``),
    ``likelihood`` a name of ``LIKELIHOODS`` or a likelihood object (default ``"gaussian"``),
    ``lam`` the weight of ||z||^2 (default :data:`DEFAULT_LAM`), ``steps`` Adam steps per patch
    (1 to 10,000), ``warm_steps`` steps of every cine frame after the first, warm-started from the
    previous frame's latents (default ``steps // 4``), ``stride`` of the patch grid, ``chunk``
    patches per compiled batch, ``progress`` a bar over the chunks. ``objective``: ``"latent"``
    (independent patches, averaged) or ``"global"``: the latent estimate refined by
    ``global_steps`` Adam steps on the image-level objective that couples every overlapping patch
    (:mod:`usprior.solvers.global_map`, patches every 8 px). Deterministic.
    """

    def __init__(
        self,
        *,
        checkpoint: str | os.PathLike | None = None,
        likelihood: str | Likelihood = "gaussian",
        lam: float = DEFAULT_LAM,
        steps: int = MAPConfig.steps,
        warm_steps: int | None = None,
        stride: int = MAPConfig.stride,
        chunk: int = MAPConfig.chunk,
        progress: bool = False,
        objective: str = "latent",
        global_steps: int = GlobalConfig.steps,
    ) -> None:
        if objective not in ("latent", "global"):
            raise ValueError(f"objective must be 'latent' or 'global', got {objective!r}")
        self.objective = objective
        self.refine = GlobalConfig(steps=global_steps, chunk=chunk)
        self.prior: FlowPrior = load_prior(checkpoint)
        self.likelihood = _check_likelihood(likelihood)
        self.lam = check_positive(lam, "lam")
        self.cold = MAPConfig(steps=steps, stride=stride, chunk=chunk)
        warm = max(1, self.cold.steps // 4) if warm_steps is None else check_int(warm_steps, "warm_steps", 1, MAX_STEPS)
        self.warm = dataclasses.replace(self.cold, steps=warm)
        self.progress = bool(progress)

    @property
    def min_size(self) -> int:
        return self.prior.config.patch

    @property
    def input_bounds(self) -> tuple[tuple[float | None, float | None], str]:
        """Gaussian: any finite value (the observation as it comes, unclipped); the speckle
        likelihoods model non-negative intensities."""
        return _likelihood_bounds(self.likelihood)

    def nonfinite_hint(self) -> str:
        return ": the prior checkpoint may be damaged, or sigma / lam are far too small for this image"

    def denoise_frames(self, frames: np.ndarray, sigma: float | None) -> np.ndarray:
        lik = make_likelihood(self.likelihood, sigma=sigma, image=frames[0])
        out, z = [], None
        for frame in frames:
            cfg = self.cold if z is None else self.warm
            result = map_denoise(frame, self.prior, lik, self.lam, cfg, z0=z, progress=self.progress)
            image = result.image
            if self.objective == "global":
                image = global_map_denoise(frame, self.prior, lik, self.lam, x0=image, cfg=self.refine).image
            out.append(image)
            z = result.z
        return np.stack(out)


class UnrolledDenoiser(Denoiser):
    """Unrolled MAP (:func:`usprior.solvers.unrolled.unrolled_denoise`): K learned steps per patch.

    Options: ``checkpoint`` the unrolled model (default ``unrolled_us``), ``likelihood`` (default:
    the trained one), ``stride`` of the patch grid (default half the prior's patch), ``chunk``.
    The prior is the one the checkpoint names (``metadata["prior"]``): a sibling directory of the
    model's, else a shipped name; none named: the shipped prior.
    """

    def __init__(
        self,
        *,
        checkpoint: str | os.PathLike | None = None,
        likelihood: str | Likelihood | None = None,
        stride: int | None = None,
        chunk: int = MAPConfig.chunk,
    ) -> None:
        self.model: AmortizedCheckpoint = load_model(UNROLLED_MODEL if checkpoint is None else checkpoint, kind="unrolled")
        self.prior = _unrolled_prior(self.model)
        self.likelihood = _check_likelihood(likelihood) or self.model.inference.likelihood or "gaussian"
        self.stride = self.prior.config.patch // 2 if stride is None else check_int(stride, "stride")
        self.chunk = check_int(chunk, "chunk")

    @property
    def min_size(self) -> int:
        return self.prior.config.patch

    @property
    def input_bounds(self) -> tuple[tuple[float | None, float | None], str]:
        return _likelihood_bounds(self.likelihood)

    def nonfinite_hint(self) -> str:
        return f": the checkpoint {self.model.directory} or its prior may be damaged"

    def denoise_frames(self, frames: np.ndarray, sigma: float | None) -> np.ndarray:
        if sigma is None:
            meta = self.model.inference
            if meta.sigma_median is None or meta.sigma_scale is None:
                raise ValueError("the unrolled checkpoint records no sigma_median / sigma_scale; pass sigma explicitly")
            sigma = meta.sigma_scale * meta.sigma_median
        lik = make_likelihood(self.likelihood, sigma=sigma)
        params = self.model.variables["params"]
        return np.stack(
            [unrolled_denoise(params, self.model.config, f, self.prior, lik, self.stride, self.chunk) for f in frames]
        )


def _likelihood_bounds(likelihood: str | Likelihood) -> tuple[tuple[float | None, float | None], str]:
    name = likelihood if isinstance(likelihood, str) else getattr(likelihood, "name", "")
    if name == "gaussian":
        return (None, None), ""
    return (0.0, None), f"the {name} likelihood models non-negative intensities"


def _unrolled_prior(model: AmortizedCheckpoint) -> FlowPrior:
    """The prior an unrolled model names: a sibling directory of the model, else a shipped name."""
    name = model.inference.prior
    if name is None:
        return load_prior()
    sibling = model.directory.parent / name if model.directory is not None else None
    return load_prior(sibling if sibling is not None and sibling.is_dir() else name)
