"""Denoisers that use the flow prior: MAP (``"map"``, ``"map_latent"``) and unrolled MAP (``"unrolled"``).

Regularisation weight. Latent MAP minimises NLL(y | f^-1(z)) + lam ||z||^2. For additive
Gaussian noise, NLL = ||y - x||^2 / (2 sigma^2), so the MRI-prior paper's form
||y - x||^2 + lam_p ||z||^2 with its default lam_p = 0.75 sigma^2 is the same problem with
lam = lam_p / (2 sigma^2) = 0.375: a noise-level-free constant (lam = 0.5 is the exact
Bayesian MAP under z ~ N(0, I)). ``DEFAULT_LAM["latent"]`` = 1 was measured best on the
sagittal validation band at sigma 0.1 and 0.2 alike (docs/results/calibrate_map.md), so it stays
a constant, not a function of the noise level; so is the global objective's
``DEFAULT_LAM["global"]`` = 0.25 (docs/results/map_settings.md).

The default ``"map"`` is the global patch-prior objective started from BM3D's estimate: on the
validation band its optimum is a worse estimate than an early iterate (as latent MAP's is), and
20 Adam steps from BM3D, a fast estimate that is already close, gain 0.3 dB over BM3D where
latent MAP from the smoothed observation ends 0.8-1.0 dB below it (docs/results/map_settings.md).
A clipped display image (a PNG export, the bundled MRI example) starts from latent MAP instead:
BM3D's additive model is biased there (27.4 dB on the example, latent MAP 30.2, refined 31.0).

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
from usprior.denoisers.base import Denoiser, denoiser_entry, make_denoiser
from usprior.denoisers.networks import default_noise_level
from usprior.physics.likelihoods import LIKELIHOODS, Gaussian, Likelihood, make_likelihood
from usprior.priors.flow import FlowPrior, load_prior
from usprior.solvers.engine import blurred
from usprior.solvers.global_map import GlobalConfig, global_map_denoise
from usprior.solvers.map import MAX_STEPS, MAPConfig, map_denoise
from usprior.solvers.unrolled import unrolled_denoise
from usprior.validation import check_int, check_positive

UNROLLED_MODEL = "unrolled_us"
CLIPPED_FRACTION = 0.01
"""The share of a frame's pixels exactly at 0 or 1 that makes ``start="auto"`` treat it as a
clipped display image (raw Gaussian observations have none)."""
CLIPPED_START_STEPS = 30
"""Latent MAP's Adam steps per patch in the ``start="auto"`` start of a clipped frame (unless
``steps`` is given): on clipped validation slices 30 steps end 0.10 dB below 100 at sigma 0.1
and 3.8 dB above them at sigma 0.2 (more steps fit the clipping's bias), at a third of the time
(docs/map.md)."""


def _check_likelihood(likelihood: str | Likelihood | None) -> str | Likelihood | None:
    if likelihood is None or not isinstance(likelihood, str) or likelihood in LIKELIHOODS:
        return likelihood
    raise ValueError(f"unknown likelihood {likelihood!r}; valid names: {sorted(LIKELIHOODS)}")


class MAPDenoiser(Denoiser):
    """MAP with a flow prior, frame by frame: the global patch-prior objective
    (:func:`usprior.solvers.global_map.global_map_denoise`) or latent MAP
    (:func:`usprior.solvers.map.map_denoise`).

    Options: ``checkpoint`` the prior (a directory or shipped name; default ``glow_mri``),
    ``likelihood`` a name of ``LIKELIHOODS`` or a likelihood object (default ``"gaussian"``),
    ``objective`` ``"global"`` (default) or ``"latent"``, ``lam`` the prior weight (default
    ``DEFAULT_LAM[objective]``), ``start`` where the estimate starts: ``"blur"`` (the
    observation smoothed by a 1 px Gaussian), the name of a registered denoiser whose output is
    the start image (``"map_latent"`` gives the latent estimate refined by the global
    objective), or ``"auto"``: ``"bm3d"`` for an observation as it comes and ``"map_latent"``
    for a clipped one (at least :data:`CLIPPED_FRACTION` of the first frame's pixels exactly at
    0 or 1: a display image, where BM3D's additive model is biased). Default ``"auto"`` for the
    global objective, ``"blur"`` for latent MAP. A start denoiser is given the Gaussian
    likelihood's sigma (the same additive-noise std; other likelihoods: its own default noise
    level); a MAP start uses the same prior and the latent options below (``steps``, ``stride``,
    ``stop_rtol``, ``skip_saturated``, ``chunk``: e.g. ``steps=30`` shortens the latent start of a clipped frame).
    ``chunk`` patches per compiled batch, ``progress`` a bar over the chunks. ``noise`` how a
    missing Gaussian ``sigma`` is estimated: ``"auto"`` (:meth:`Likelihood.from_image`, which tells
    white noise from correlated) or ``"speckle"`` (the tissue speckle of B-mode frames, FFDNet's
    default map :func:`usprior.denoisers.networks.default_noise_level`; preset ``"map_bmode"``).

    ``objective="global"``: ``global_steps`` Adam steps on the image-level objective that
    couples every overlapping patch (patches every ``global_stride`` px, default 16 or half
    the prior's patch if smaller), every frame from its own start image.

    ``objective="latent"``: every patch on its own, z* = argmin NLL(y | f^-1(z)) + lam ||z||^2,
    averaged; ``steps`` Adam steps per patch (1 to 10,000; default 100, and
    :data:`CLIPPED_START_STEPS` in the auto start of a clipped frame), ``warm_steps`` steps of every cine
    frame after the first, warm-started from the previous frame's latents (default
    ``steps // 4``), ``stride`` of the patch grid (default 16 or half the prior's patch if
    smaller), ``stop_rtol``: a patch stops early once its best objective improved by less than
    this fraction over 10 steps (0: never), ``skip_saturated``: patches of the observation that are
    constant at exactly 0 or 1 keep that value unsolved (:func:`usprior.solvers.map.map_denoise`;
    always on in the auto start of a clipped frame, whose black margins they are). Only the first
    frame uses the start image.

    Deterministic (a BM3D start to its multithreaded float rounding, ~1e-7).
    """

    def __init__(
        self,
        *,
        checkpoint: str | os.PathLike | None = None,
        likelihood: str | Likelihood = "gaussian",
        objective: str = "global",
        lam: float | None = None,
        start: str | None = None,
        steps: int | None = None,
        warm_steps: int | None = None,
        stride: int | None = None,
        stop_rtol: float = MAPConfig.stop_rtol,
        skip_saturated: bool = False,
        global_steps: int = GlobalConfig.steps,
        global_stride: int | None = None,
        chunk: int = MAPConfig.chunk,
        progress: bool = False,
        noise: str = "auto",
    ) -> None:
        if objective not in DEFAULT_LAM:
            raise ValueError(f"objective must be 'global' or 'latent', got {objective!r}")
        if noise not in ("auto", "speckle"):
            raise ValueError(f"noise must be 'auto' or 'speckle', got {noise!r}")
        self.objective, self.noise = objective, noise
        self.lam = DEFAULT_LAM[objective] if lam is None else check_positive(lam, "lam")
        start = ("auto" if objective == "global" else "blur") if start is None else start
        latent = dict(steps=steps, stride=stride, stop_rtol=stop_rtol, skip_saturated=skip_saturated, chunk=chunk)
        self.start = None if start == "blur" else _start_denoiser("bm3d" if start == "auto" else start, checkpoint, latent)
        clipped = {**latent, "steps": CLIPPED_START_STEPS if steps is None else steps, "skip_saturated": True}
        self.clipped_start = _start_denoiser("map_latent", checkpoint, clipped) if start == "auto" else None
        self.prior: FlowPrior = load_prior(checkpoint)
        patch = self.prior.config.patch
        global_stride = min(GlobalConfig.stride, patch // 2) if global_stride is None else global_stride
        self.refine = GlobalConfig(steps=global_steps, stride=global_stride, chunk=chunk)
        self.likelihood = _check_likelihood(likelihood)
        stride = min(MAPConfig.stride, patch // 2) if stride is None else stride
        self.cold = MAPConfig(steps=MAPConfig.steps if steps is None else steps, stride=stride, chunk=chunk,
                              stop_rtol=stop_rtol, skip_saturated=bool(skip_saturated))
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
        if sigma is None and self.noise == "speckle" and self.likelihood == "gaussian":
            sigma = default_noise_level(frames)
        lik = make_likelihood(self.likelihood, sigma=sigma, image=frames[0])
        if self.objective == "global":
            return np.stack([
                global_map_denoise(f, self.prior, lik, self.lam, x0=x0, cfg=self.refine).image
                for f, x0 in zip(frames, self._starts(frames, lik))
            ])
        x0 = None if self.start is None else self._starts(frames[:1], lik)[0]
        out, z = [], None
        for frame in frames:
            cfg = self.cold if z is None else self.warm
            result = map_denoise(frame, self.prior, lik, self.lam, cfg, z0=z, progress=self.progress,
                                 x0=x0 if z is None else None)
            out.append(result.image)
            z = result.z
        return np.stack(out)

    def _starts(self, frames: np.ndarray, lik: Likelihood) -> np.ndarray:
        """The start images (T, H, W): the start denoiser's output, given the Gaussian sigma; or the
        frames smoothed by latent MAP's ``init_blur`` Gaussian."""
        if self.start is None:
            return np.stack([blurred(f, self.cold.init_blur) for f in frames])
        start = self.start
        if self.clipped_start is not None and np.mean((frames[0] == 0.0) | (frames[0] == 1.0)) >= CLIPPED_FRACTION:
            start = self.clipped_start
        takes_sigma = isinstance(lik, Gaussian) and start.sigma_input != "none"
        return start(frames, sigma=float(lik.sigma) if takes_sigma else None)


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


def _start_denoiser(name: object, checkpoint: str | os.PathLike | None, latent: dict) -> Denoiser:
    """The registered denoiser ``name`` (its defaults) that makes MAP's start image; a MAP start
    (e.g. ``map_latent``) uses the same prior ``checkpoint`` and the latent options ``latent``
    (steps, stride, stop_rtol, skip_saturated, chunk) of the denoiser it starts."""
    if not isinstance(name, str) or name == "auto":
        raise ValueError(f"start must be 'auto', 'blur' or the name of a registered denoiser, got {name!r}")
    if denoiser_entry(name).load() is MAPDenoiser:
        return make_denoiser(name, checkpoint=checkpoint, **latent)
    return make_denoiser(name)


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
