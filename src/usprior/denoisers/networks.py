"""One-pass network denoisers: FFDNet (``"ffdnet"``) and the Pix2Pix generator (``"pix2pix"``).

Both run ``batch`` frames per forward pass; the last batch is padded by repeating its last frame,
so every call has one static shape (one compilation per frame size).

``sigma`` (call time): FFDNet's noise-level map, in the noise-std units the model was trained
with — the denoising-strength knob: a number, or a per-pixel map (H, W) or (T, H, W) for
spatially varying strength. None: :func:`default_noise_level`, the speckle std read from the
frames themselves (:func:`usprior.physics.noise.estimate_speckle_std`, the reading the scanner
models were trained with), one level for the whole stack so a cine does not flicker.
Pix2Pix has no noise-level input.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from usprior.amortized.checkpoint import AmortizedCheckpoint, load_model
from usprior.amortized.ffdnet import ffdnet_apply
from usprior.amortized.pix2pix import pix2pix_apply
from usprior.denoisers.base import Denoiser
from usprior.physics.noise import estimate_speckle_std
from usprior.validation import check_int

SHIPPED_MODELS = {"ffdnet": "ffdnet_us", "pix2pix": "pix2pix_us"}
"""The shipped checkpoint of each network kind (default ``checkpoint``)."""

ESTIMATE_FRAMES = 8


def default_noise_level(frames: Sequence[np.ndarray]) -> float:
    """FFDNet's default noise level of frames (a stack (T, H, W) or a list of (H, W)): the median of
    :func:`usprior.physics.noise.estimate_speckle_std` over up to :data:`ESTIMATE_FRAMES`
    evenly spaced frames."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), ESTIMATE_FRAMES)).round().astype(int))
    return float(np.median([estimate_speckle_std(frames[t]) for t in picks]))


def frame_batches(fn: Callable[..., Any], batch: int, *stacks: np.ndarray) -> np.ndarray:
    """Apply ``fn`` to aligned stacks (T, H, W) in batches of min(batch, T) frames, each stack
    passed as (n, H, W, 1); ``fn`` returns (n, H, W, 1). The last batch is padded by repeating
    its last frame. Returns (T, H, W)."""
    total = len(stacks[0])
    size = min(batch, total)
    out = []
    for start in range(0, total, size):
        chunks = [s[start : start + size] for s in stacks]
        padded = [np.concatenate([c, np.repeat(c[-1:], size - len(c), axis=0)])[..., None] for c in chunks]
        out.append(np.asarray(fn(*padded))[: len(chunks[0]), ..., 0])
    return np.concatenate(out)


class _Network(Denoiser):
    kind: str

    def __init__(self, *, checkpoint: str | os.PathLike | None = None, batch: int = 16) -> None:
        self.model: AmortizedCheckpoint = load_model(
            SHIPPED_MODELS[self.kind] if checkpoint is None else checkpoint, kind=self.kind
        )
        if self.model.config.channels != 1:
            raise ValueError(f"{self.kind} denoises grayscale frames; the model has {self.model.config.channels} channels")
        self.batch = check_int(batch, "batch")

    def nonfinite_hint(self) -> str:
        return f": the checkpoint {self.model.directory} may be damaged"


class FFDNetDenoiser(_Network):
    """FFDNet with a noise-level map (see the module docstring). Options: ``checkpoint``
    (default ``ffdnet_us``), ``batch`` frames per pass."""

    kind = "ffdnet"
    sigma_input = "map"

    def denoise_frames(self, frames: np.ndarray, sigma: float | np.ndarray | None) -> np.ndarray:
        if sigma is None:
            sigma = default_noise_level(frames)
        variables, config = self.model.variables, self.model.config
        if np.ndim(sigma) == 0:
            level = np.float32(sigma)
            return frame_batches(lambda y: ffdnet_apply(variables, config, y, level), self.batch, frames)
        return frame_batches(lambda y, s: ffdnet_apply(variables, config, y, s), self.batch, frames, sigma)


class Pix2PixDenoiser(_Network):
    """The Pix2Pix U-Net generator. Options: ``checkpoint`` (default ``pix2pix_us``), ``batch``."""

    kind = "pix2pix"
    sigma_input = "none"

    def denoise_frames(self, frames: np.ndarray, sigma: None) -> np.ndarray:
        variables, config = self.model.variables, self.model.config
        return frame_batches(lambda y: pix2pix_apply(variables, config, y), self.batch, frames)
