"""Denoising files: one input into its outputs, checked first; the unit of folder mode and Dask.

:func:`denoise_file` reads any supported input (:func:`usprior.io.scans.read_scan`), checks
every output path against it before any work, picks the mask (``--mask``), denoises inside it
(:func:`usprior.scanner.denoise.denoise_scan`) and writes the outputs atomically.
:func:`worker_denoise_file` is the same for a Dask worker: it builds the denoiser once per
worker process and reuses it for every file the worker gets.

:func:`file_method` picks the method for one file: on an ultrasound DICOM (Modality US) the
flow-prior MAP runs with its B-mode settings, ``map`` as ``map_bmode`` (start from FFDNet,
sigma = the tissue speckle estimate: docs/map.md measured it 6.5 dB above the white-noise
reading on scanner-like B-mode simulations, and on the real lymph node frame 3.13 / 0.17
suppression / leakage where ``map`` barely changes it, 1.34 / 0.32). Elsewhere (PNG, TIFF, NPY:
no modality to go by) ``map`` stays ``map``; an explicit ``noise`` option always wins, as the
``--mask`` default already follows the input (auto for DICOM, none otherwise).
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


BMODE_METHODS = {"map": "map_bmode"}
"""Methods with a B-mode variant (:func:`file_method`)."""


def file_method(settings: FileSettings, scan: Scan) -> str:
    """The registered method that denoises ``scan``: ``settings.method``, or its B-mode variant
    (:data:`BMODE_METHODS`) for an ultrasound DICOM when the user set no ``noise`` option."""
    ultrasound = scan.header is not None and scan.header.get("Modality", "US") == "US"
    if ultrasound and settings.method in BMODE_METHODS and "noise" not in settings.options:
        return BMODE_METHODS[settings.method]
    return settings.method


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


def denoise_file(settings: FileSettings, denoiser: Callable[[str], Denoiser], source: Path, output: Path,
                 compare: Path | None = None) -> tuple[int, float, str]:
    """Denoise one input into its outputs; returns (frames, seconds of denoising, the method run:
    :func:`file_method`). ``denoiser(method)`` builds (or returns the cached) denoiser of that
    method with ``settings.options``, after the input and the outputs passed their checks."""
    outputs = check_outputs(source, output, compare, settings.overwrite)
    scan = read_scan(source)
    for path in outputs:  # the comparison is no DICOM instance: it is checked as a scan without header
        check_output_suffix(path, scan if path == output else dataclasses.replace(scan, header=None))
    mask = file_mask(settings, scan)
    method = file_method(settings, scan)
    den = denoiser(method)
    t0 = time.perf_counter()
    result = denoise_scan(scan, den, mask, sigma=settings.sigma)
    seconds = time.perf_counter() - t0
    write_scan(output, scan, result.frames, result.pixels, method)
    if compare is not None:
        both, pixels, frames = compare_scan(scan, result)
        write_scan(compare, both, frames, pixels, method)
    return len(scan.frames), seconds, method


_WORKER_DENOISERS: dict[tuple, Denoiser] = {}


def cached_denoisers(settings: FileSettings, cache: dict[tuple, Denoiser]) -> Callable[[str], Denoiser]:
    """``denoiser(method)`` for :func:`denoise_file` that builds each method's denoiser (with
    ``settings.options``) once and keeps it in ``cache``."""
    from usprior.denoisers import import_plugins, make_denoiser

    def denoiser(method: str) -> Denoiser:
        key = (method, repr(sorted(settings.options.items())), settings.plugins)
        if key not in cache:
            import_plugins(settings.plugins)
            cache[key] = make_denoiser(method, **settings.options)
        return cache[key]

    return denoiser


def worker_denoise_file(settings: FileSettings, source: Path, output: Path) -> tuple[int, float, str]:
    """:func:`denoise_file` in a Dask worker: each denoiser is built once per worker process."""
    return denoise_file(settings, cached_denoisers(settings, _WORKER_DENOISERS), source, output)
