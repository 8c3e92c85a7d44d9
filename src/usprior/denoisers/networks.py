"""One-pass network denoisers: FFDNet (``"ffdnet"``) and the Pix2Pix generator (``"pix2pix"``).

Both run ``batch`` frames per forward pass; the last batch is padded by repeating its last frame,
so every call has one static shape (one compilation per frame size). On a CPU, ``threads`` passes
run at once (:func:`cpu_threads`; XLA's CPU convolutions use about one core each): a single
frame is cut into overlapping row bands (:func:`run_in_bands`), with the same result as one pass
over the whole frame.

``sigma`` (call time): FFDNet's noise-level map, in the noise-std units the model was trained
with — the denoising-strength knob: a number, or a per-pixel map (H, W) or (T, H, W) for
spatially varying strength. None: ``strength`` x :func:`default_noise_level`, the speckle std read
from the frames themselves (:func:`usprior.physics.noise.estimate_speckle_std`, the reading the
scanner models were trained with), one level for the whole stack so a cine does not flicker.
Pix2Pix has no noise-level input.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from usprior.amortized.checkpoint import AmortizedCheckpoint, load_model
from usprior.amortized.ffdnet import ffdnet_padded
from usprior.amortized.pix2pix import pix2pix_padded
from usprior.denoisers.base import Denoiser
from usprior.physics.noise import estimate_speckle_std
from usprior.validation import check_int, check_positive

SHIPPED_MODELS = {"ffdnet": "ffdnet_us", "pix2pix": "pix2pix_us"}
"""The shipped checkpoint of each network kind (default ``checkpoint``)."""

ESTIMATE_FRAMES = 8


def default_noise_level(frames: Sequence[np.ndarray]) -> float:
    """FFDNet's default noise level of frames (a stack (T, H, W) or a list of (H, W)): the median of
    :func:`usprior.physics.noise.estimate_speckle_std` over up to :data:`ESTIMATE_FRAMES`
    evenly spaced frames."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), ESTIMATE_FRAMES)).round().astype(int))
    return float(np.median([estimate_speckle_std(frames[t]) for t in picks]))


def _on_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu"


def cpu_threads() -> int:
    """Concurrent forward passes: the usable CPU cores on JAX's CPU backend, 1 on an accelerator.

    XLA's CPU convolutions run on about one core (a 3x3, 32-channel layer on 300 x 250 pixels took
    as long on one core as on two), so on a CPU the networks run several passes at once, one per
    core, each on a band of rows or a batch of frames. An accelerator runs one pass as one program.
    """
    if not _on_cpu():
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_batch() -> int:
    """Frames per pass: 16 on an accelerator (it fills the device), 1 on the CPU backend, where
    larger batches were slower per frame (FFDNet on a 16-frame 600x500 cine, 2 cores: 138 ms per
    frame at batch 1, 159 at 4, 213 at 16)."""
    return 1 if _on_cpu() else 16


def band_windows(height: int, bands: int, reach: int, factor: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Overlapping row windows of one length over rows [0, height) of a padded frame.

    ``height`` and the returned length L are multiples of ``factor``; every window starts at a
    multiple of ``factor`` (a network with a downsampling ``factor`` sees the same pixel phase);
    returns (L, [(start, keep_from, keep_to), ...]) where the kept ranges [keep_from, keep_to)
    tile [0, height) and every kept row lies at least ``reach`` rows inside its window, except
    next to the frame's own top and bottom. Run on the windows, a network whose output depends
    only on the input within ``reach`` of it gives the kept rows exactly as on the whole frame.
    """
    core = -(-height // bands)
    core = -(-core // factor) * factor
    length = min(height, -(-(core + 2 * reach + factor - 1) // factor) * factor)
    if length >= height:
        return height, [(0, 0, height)]
    windows = []
    for k in range(bands):
        keep_from, keep_to = k * core, min((k + 1) * core, height)
        if keep_from >= keep_to:
            break
        start = min(max((keep_from - reach) // factor * factor, 0), height - length)
        windows.append((start, keep_from, keep_to))
    return length, windows


def run_in_bands(
    net: Callable[..., Any],
    stacks: Sequence[np.ndarray],
    *,
    batch: int,
    margin: int,
    reach: int,
    factor: int,
    threads: int,
) -> np.ndarray:
    """``net`` on aligned stacks (T, H, W) (the frames, and a noise map if any), reflect-padded by
    ``margin`` on every side: (T, H, W), the margin stripped, not clipped.

    ``net`` takes each stack as (n, L, W + 2 margin, 1) and returns (n, L, W + 2 margin, 1); its
    output must depend only on the input within ``reach`` pixels and on the row modulo
    ``factor``. The frames go in batches of min(batch, T) (the last padded by repeating its last
    frame: one static shape); when there are fewer batches than ``threads``, each batch is cut
    into overlapping row bands (:func:`band_windows`, at most one per 4 ``reach`` rows), and up
    to ``threads`` passes run at once. The result equals one pass over each whole padded frame.
    """
    padded = []
    for s in stacks:
        p = np.pad(s, ((0, 0), (margin, margin), (margin, margin)), mode="reflect")
        padded.append(np.pad(p, ((0, 0), (0, -p.shape[1] % factor), (0, 0)), mode="reflect"))
    total, height = len(stacks[0]), padded[0].shape[1]
    size = min(batch, total)
    starts = range(0, total, size)
    bands = max(1, min(-(-threads // len(starts)), height // (4 * reach)))
    length, windows = band_windows(height, bands, reach, factor)
    out = np.empty(padded[0].shape, np.float32)

    def work(first: int, start: int) -> np.ndarray:
        rows = np.minimum(np.arange(first, first + size), total - 1)
        return np.asarray(net(*[p[rows, start : start + length, :, None] for p in padded]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        jobs = [(first, window, pool.submit(work, first, window[0])) for first in starts for window in windows]
        for first, (start, keep_from, keep_to), job in jobs:
            n = min(size, total - first)
            out[first : first + n, keep_from:keep_to] = job.result()[:n, keep_from - start : keep_to - start, :, 0]
    h, w = stacks[0].shape[1:]
    return out[:, margin : margin + h, margin : margin + w]


class _Network(Denoiser):
    kind: str

    def __init__(
        self, *, checkpoint: str | os.PathLike | None = None, batch: int | None = None, threads: int | None = None
    ) -> None:
        self.model: AmortizedCheckpoint = load_model(
            SHIPPED_MODELS[self.kind] if checkpoint is None else checkpoint, kind=self.kind
        )
        if self.model.config.channels != 1:
            raise ValueError(f"{self.kind} denoises grayscale frames; the model has {self.model.config.channels} channels")
        self.batch = default_batch() if batch is None else check_int(batch, "batch")
        self.threads = cpu_threads() if threads is None else check_int(threads, "threads")

    def nonfinite_hint(self) -> str:
        return f": the checkpoint {self.model.directory} may be damaged"


class FFDNetDenoiser(_Network):
    """FFDNet with a noise-level map (see the module docstring). Options: ``checkpoint``
    (default ``ffdnet_us``), ``batch`` frames per pass (default :func:`default_batch`),
    ``threads`` passes at once (default :func:`cpu_threads`), ``strength``: the factor on the
    estimated level when no ``sigma`` is given (default 1; a given ``sigma`` is used as it is)."""

    kind = "ffdnet"
    sigma_input = "map"

    def __init__(
        self, *, checkpoint: str | os.PathLike | None = None, batch: int | None = None, threads: int | None = None,
        strength: float = 1.0,
    ) -> None:
        self.strength = check_positive(strength, "strength")
        super().__init__(checkpoint=checkpoint, batch=batch, threads=threads)

    def denoise_frames(self, frames: np.ndarray, sigma: float | np.ndarray | None) -> np.ndarray:
        if sigma is None:
            sigma = self.strength * default_noise_level(frames)
        variables, config = self.model.variables, self.model.config
        layout = dict(batch=self.batch, margin=config.margin, reach=config.margin, factor=config.factor, threads=self.threads)
        if np.ndim(sigma) == 0:
            level = np.float32(sigma)
            return run_in_bands(lambda x: ffdnet_padded(variables, config, x, level), [frames], **layout)
        return run_in_bands(lambda x, s: ffdnet_padded(variables, config, x, s), [frames, sigma], **layout)


class Pix2PixDenoiser(_Network):
    """The Pix2Pix U-Net generator. Options: ``checkpoint`` (default ``pix2pix_us``), ``batch``,
    ``threads``."""

    kind = "pix2pix"
    sigma_input = "none"

    def denoise_frames(self, frames: np.ndarray, sigma: None) -> np.ndarray:
        variables, config = self.model.variables, self.model.config
        return run_in_bands(lambda x: pix2pix_padded(variables, config, x), [frames], batch=self.batch,
                            margin=config.margin, reach=config.reach, factor=config.factor, threads=self.threads)
