"""Denoising files: one input into its outputs, checked first; the unit of folder mode and Dask.

:func:`denoise_file` reads any supported input (:func:`usprior.io.scans.read_scan`), checks
every output path against it before any work, picks the mask (``--mask``), denoises inside it
(:func:`usprior.scanner.denoise.denoise_scan`) and writes the outputs atomically.
:func:`worker_denoise_file` is the same for a Dask worker: it builds the denoiser once per
worker process and reuses it for every file the worker gets.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from usprior.denoisers import Denoiser
from usprior.io.images import check_output, side_by_side
from usprior.io.scans import Scan, check_output_suffix, display_pixels, read_scan, write_scan
from usprior.scanner.denoise import DenoisedScan, denoise_scan
from usprior.scanner.mask import bmode_mask, load_mask


@dataclasses.dataclass(frozen=True)
class FileSettings:
    """What to do with every file: the denoiser (``method`` and its ``options``), the call-time
    ``sigma``, the ``mask`` (``"auto"``, ``"none"``, a mask file, or None: auto for DICOM input,
    none otherwise), whether existing outputs may be replaced, and plug-in modules to import."""

    method: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sigma: float | None = None
    mask: str | None = None
    overwrite: bool = False
    plugins: tuple[str, ...] = ()


def check_outputs(source: Path, output: Path, compare: Path | None, overwrite: bool) -> list[Path]:
    """The output paths of one input, checked against it and each other (the suffix is checked
    with the scan, once it is read)."""
    outputs = [("-o", output)] + ([("--compare", compare)] if compare is not None else [])
    for flag, path in outputs:
        if path.resolve() == source.resolve():
            raise ValueError(f"{flag} {path} is the input file: choose another name (the input is never overwritten)")
        check_output(path, overwrite=overwrite)
    if compare is not None and compare.resolve() == output.resolve():
        raise ValueError("--compare and -o name the same file: give them different names")
    return [path for _, path in outputs]


def file_mask(settings: FileSettings, scan: Scan) -> np.ndarray:
    """The (H, W) mask of ``settings.mask`` (see :class:`FileSettings`)."""
    choice = settings.mask or ("auto" if scan.header is not None else "none")
    if choice == "none":
        return np.ones(scan.shape, bool)
    if choice == "auto":
        mask = bmode_mask(scan)
        if not mask.any():
            print(f"usprior: warning: no B-mode region found in {scan.source}; nothing is denoised "
                  "(--mask none denoises every gray pixel)", file=sys.stderr)
        return mask
    return load_mask(choice, scan.shape)


def compare_scan(scan: Scan, result: Scan | DenoisedScan) -> tuple[Scan, np.ndarray, np.ndarray]:
    """[before | after] side by side: (the scan to write it as, its display pixels, its luminance)."""
    before = display_pixels(scan, scan.frames, scan.pixels)
    after = display_pixels(scan, result.frames, result.pixels)
    pixels = side_by_side(before, after, axis=2)
    frames = side_by_side(scan.frames, result.frames, axis=2)
    return dataclasses.replace(scan, pixels=pixels, frames=frames, bits=scan.bits or 8, header=None), pixels, frames


def denoise_file(settings: FileSettings, denoiser: Callable[[], Denoiser], source: Path, output: Path,
                 compare: Path | None = None) -> tuple[int, float]:
    """Denoise one input into its outputs; returns (frames, seconds of denoising). ``denoiser()``
    builds (or returns the cached) denoiser, after the input and the outputs passed their checks."""
    outputs = check_outputs(source, output, compare, settings.overwrite)
    scan = read_scan(source)
    for path in outputs:  # the comparison is no DICOM instance: it is checked as a scan without header
        check_output_suffix(path, scan if path == output else dataclasses.replace(scan, header=None))
    mask = file_mask(settings, scan)
    den = denoiser()
    t0 = time.perf_counter()
    result = denoise_scan(scan, den, mask, sigma=settings.sigma)
    seconds = time.perf_counter() - t0
    write_scan(output, scan, result.frames, result.pixels, settings.method)
    if compare is not None:
        both, pixels, frames = compare_scan(scan, result)
        write_scan(compare, both, frames, pixels, settings.method)
    return len(scan.frames), seconds


_WORKER_DENOISERS: dict[tuple, Denoiser] = {}


def worker_denoise_file(settings: FileSettings, source: Path, output: Path) -> tuple[int, float]:
    """:func:`denoise_file` in a Dask worker: the denoiser is built once per worker process."""
    from usprior.denoisers import import_plugins, make_denoiser

    key = (settings.method, repr(sorted(settings.options.items())), settings.plugins)

    def denoiser() -> Denoiser:
        if key not in _WORKER_DENOISERS:
            import_plugins(settings.plugins)
            _WORKER_DENOISERS[key] = make_denoiser(settings.method, **settings.options)
        return _WORKER_DENOISERS[key]

    return denoise_file(settings, denoiser, source, output)
