"""Command line: ``usprior denoise IN -o OUT [...]`` and ``usprior bench [...]``.

``denoise`` denoises one image or a cine stack (T, H, W) with any registered denoiser
(``--method``; ``--plugin MODULE`` imports a module that registers more); ``bench`` runs
:mod:`usprior.eval.benchmark` (tune every method per noise level on a tuning image, evaluate on
test images, write JSON / Markdown / PNG).

Formats are those of :mod:`usprior.io.images`. Everything that can be checked before the work is
checked first — the input decodes, the outputs have a known suffix, are no directories, sit in a
writable folder, do not exist (``--overwrite`` replaces them) and are not the input — so a bad
call fails in a second with one line and exit code 2, never after minutes of denoising. Ctrl-C
stops within one chunk of patches and exits with code 130, writing nothing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usprior", description="Ultrasound denoising with a flow prior.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("denoise", help="denoise an image or a cine stack with a registered denoiser")
    d.add_argument("input", help="input file (DICOM, .png, .jpg, .tif, .npy), a folder of them, or example:NAME")
    d.add_argument("-o", "--output", type=Path, required=True,
                   help="output file (.dcm, .png, .tif, .npy, .gif), or a folder for folder input")
    d.add_argument("--method", default="map", help="registered denoiser (default: map; see usprior.denoiser_names())")
    d.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may call usprior.register_denoiser); repeatable")
    d.add_argument("--likelihood", default=None, help="map: default gaussian; unrolled: default the trained one")
    d.add_argument("--sigma", type=float, default=None,
                   help="noise level (map: default estimated; ffdnet: the noise-map strength knob)")
    d.add_argument("--lam", type=float, default=None, help="map: weight of ||z||^2 (default 0.375)")
    d.add_argument("--steps", type=int, default=None, help="map: Adam steps per patch")
    d.add_argument("--warm-steps", type=int, default=None, help="map, cine: steps on warm-started frames")
    d.add_argument("--stride", type=int, default=None, help="map / unrolled: patch stride in pixels")
    d.add_argument("--batch", type=int, default=None, help="pix2pix / ffdnet: frames per pass")
    d.add_argument("--checkpoint", default=None, help="checkpoint of the method: a directory or a shipped name")
    d.add_argument("--compare", type=Path, default=None, help="also write a before/after image (.png, .gif for cine)")
    d.add_argument("--mask", default=None, metavar="auto|none|FILE",
                   help="pixels to denoise: auto (the detected B-mode region; default for DICOM), none (every gray "
                        "pixel; default otherwise) or a mask file (nonzero = denoise)")
    d.add_argument("--format", default=None, choices=(".dcm", ".png", ".tif", ".npy", ".gif"),
                   help="folder input: the output format (default: the input's; JPEG -> PNG)")
    d.add_argument("--overwrite", action="store_true", help="replace output files that exist")

    b = sub.add_parser("bench", help="compare denoisers on simulated noise (tuned per level, same noisy inputs)")
    b.add_argument("--noise", default="convolutional", help="noise model (usprior.physics.simulate.NOISE_MODELS)")
    b.add_argument("--levels", type=float, nargs="+", required=True,
                   help="noise levels: sigma, or the dynamic range in dB for 'convolutional'")
    b.add_argument("--methods", nargs="+", default=None, help="registered denoiser names (default: all)")
    b.add_argument("--images", type=Path, default=None,
                   help="folder of clean test images (default: held-out sagittal MNI152 test slices)")
    b.add_argument("--tune-image", type=Path, default=None,
                   help="clean tuning image (required with --images; default: the sagittal 'tune' slice)")
    b.add_argument("--n-test", type=int, default=3, help="number of sagittal test slices when --images is not given")
    b.add_argument("--no-phantom", action="store_true", help="skip the cyst phantom")
    b.add_argument("--seed", type=int, default=0, help="base seed of the noise draws")
    b.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may call usprior.register_denoiser); repeatable")
    b.add_argument("--out", type=Path, default=Path("bench"), help="output folder")
    b.add_argument("--name", default="benchmark", help="output file stem")
    b.add_argument("--title", default="Denoising benchmark", help="Markdown title")
    return parser


def _bench_images(args: argparse.Namespace) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The tuning image and the named test images selected by the ``bench`` arguments."""
    from usprior.io.images import READ_SUFFIXES, read_image
    from usprior.priors import data

    if args.images is None:
        if args.tune_image is not None:
            raise ValueError("--tune-image needs --images (the default images bring their own tuning slice)")
        test = data.sagittal_slices("test")
        pick = np.linspace(0, len(test) - 1, args.n_test).round().astype(int)
        names = [f"sagittal_{data.SAGITTAL_SPLITS['test'][i]}" for i in pick]
        return data.sagittal_slices("tune")[0], {n: test[i] for n, i in zip(names, pick)}
    if args.tune_image is None:
        raise ValueError("--images needs --tune-image: a separate clean image to tune the parameters on")
    if not args.images.is_dir():
        raise FileNotFoundError(f"image folder not found: {args.images}")
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in READ_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(READ_SUFFIXES)}) in {args.images}")
    return read_image(args.tune_image), {p.stem: read_image(p) for p in files}


def _bench(args: argparse.Namespace, argv: list[str] | None) -> None:
    from usprior.denoisers import denoiser_names, import_plugins
    from usprior.eval import benchmark

    import_plugins(args.plugin)
    tune, test = _bench_images(args)
    setup = benchmark.BenchmarkSetup(
        noise=args.noise, levels=tuple(args.levels), methods=tuple(args.methods or denoiser_names()),
        tune_image=tune, test_images=test, phantom_shape=None if args.no_phantom else (192, 192), seed=args.seed,
    )
    results, figures = benchmark.run_benchmark(setup)
    command = shlex.join(["usprior", *(sys.argv[1:] if argv is None else argv)])
    paths = benchmark.write_reports(results, figures, args.out, args.name, args.title, command)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _outputs(args: argparse.Namespace, source: Path, output: Path, compare: Path | None) -> list[tuple[str, Path]]:
    """The output paths of one input, checked against it and each other (the suffix is checked
    with the scan, once it is read)."""
    from usprior.io.images import check_output

    outputs = [("-o", output)] + ([("--compare", compare)] if compare is not None else [])
    for flag, path in outputs:
        if path.resolve() == source.resolve():
            raise ValueError(f"{flag} {path} is the input file: choose another name (the input is never overwritten)")
        check_output(path, overwrite=args.overwrite)
    if compare is not None and compare.resolve() == output.resolve():
        raise ValueError("--compare and -o name the same file: give them different names")
    return outputs


def _mask(args: argparse.Namespace, scan):
    """The (H, W) mask of ``--mask`` (default: auto for DICOM input, none otherwise)."""
    from usprior.scanner.mask import bmode_mask, load_mask

    choice = args.mask or ("auto" if scan.header is not None else "none")
    if choice == "none":
        return np.ones(scan.shape, bool)
    if choice == "auto":
        mask = bmode_mask(scan)
        if not mask.any():
            print(f"usprior: warning: no B-mode region found in {scan.source}; nothing is denoised "
                  "(--mask none denoises every gray pixel)", file=sys.stderr)
        return mask
    return load_mask(choice, scan.shape)


def _compare_scan(scan, result):
    """A scan of [before | after] side by side (display pixels and luminance)."""
    import dataclasses

    from usprior.io.images import side_by_side
    from usprior.io.scans import display_pixels

    before = display_pixels(scan, scan.frames, scan.pixels)
    after = display_pixels(scan, result.frames, result.pixels)
    width_axis = 2
    pixels = side_by_side(before, after, axis=width_axis)
    frames = side_by_side(scan.frames, result.frames, axis=width_axis)
    bits = scan.bits or 8
    return dataclasses.replace(scan, pixels=pixels, frames=frames, bits=bits, header=None), pixels, frames


def _denoise_file(args: argparse.Namespace, denoiser, source: Path, output: Path, compare: Path | None) -> tuple[int, float]:
    """Denoise one input into its outputs; returns (frames, seconds of denoising). ``denoiser()``
    builds (or returns the cached) denoiser, after the input and outputs passed their checks."""
    from usprior.io.scans import check_output_suffix, read_scan, write_scan
    from usprior.scanner.denoise import denoise_scan

    outputs = _outputs(args, source, output, compare)
    scan = read_scan(source)
    for _, path in outputs:
        check_output_suffix(path, scan if path == output else _compare_scan(scan, scan)[0])
    mask = _mask(args, scan)
    den = denoiser()
    t0 = time.perf_counter()
    result = denoise_scan(scan, den, mask, sigma=args.sigma)
    seconds = time.perf_counter() - t0
    write_scan(output, scan, result.frames, result.pixels, args.method)
    if compare is not None:
        both, pixels, frames = _compare_scan(scan, result)
        write_scan(compare, both, frames, pixels, args.method)
    return len(scan.frames), seconds


def _make(args: argparse.Namespace):
    from usprior.denoisers import denoiser_entry, denoiser_options, import_plugins, make_denoiser

    import_plugins(args.plugin)
    denoiser_entry(args.method)  # an unknown method fails before anything is read
    given = {"likelihood": args.likelihood, "lam": args.lam, "steps": args.steps, "warm_steps": args.warm_steps,
             "stride": args.stride, "batch": args.batch, "checkpoint": args.checkpoint}
    options = {k: v for k, v in given.items() if v is not None}
    valid = denoiser_options(args.method)
    if args.input_is_file and (valid is None or "progress" in valid):
        options["progress"] = True
    return make_denoiser, options


def _denoise(args: argparse.Namespace) -> None:
    from usprior.io.examples import resolve_input

    source = resolve_input(args.input)
    args.input_is_file = not source.is_dir()
    make, options = _make(args)
    if source.is_dir():
        _denoise_folder(args, source, make, options)
        return
    if args.format is not None:
        raise ValueError("--format is for folder input; a single output takes the format of its suffix")
    frames, seconds = _denoise_file(args, lambda: make(args.method, **options), source, args.output, args.compare)
    print(f"denoised {source} ({frames} frame{'s' * (frames > 1)}) by {args.method} in {seconds:.1f} s "
          f"({frames / max(seconds, 1e-9):.1f} frames/s) -> {args.output}")
    if args.compare is not None:
        print(f"before/after comparison -> {args.compare}")


def _denoise_folder(args: argparse.Namespace, folder: Path, make, options: dict) -> None:
    """Every supported file below ``folder`` into the same relative path below ``-o``; outputs
    that exist are skipped (resumable), a file that fails is reported and the rest go on."""
    from tqdm.auto import tqdm

    from usprior.io.dicom import is_dicom
    from usprior.io.scans import SCAN_SUFFIXES

    if args.compare is not None:
        raise ValueError("--compare takes one file; for a folder it is not available")
    if args.output.exists() and not args.output.is_dir():
        raise NotADirectoryError(f"-o {args.output} must be a folder when the input is a folder")
    if args.output.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"-o {args.output} lies inside the input folder {folder}: choose a folder outside it")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix.lower() in SCAN_SUFFIXES or is_dicom(p)))
    if not files:
        raise ValueError(f"no supported files ({', '.join(SCAN_SUFFIXES)}) in {folder}")
    cache: list = []

    def denoiser():
        if not cache:
            cache.append(make(args.method, **options))
        return cache[0]

    done = skipped = 0
    frames = 0
    seconds = 0.0
    failed: list[str] = []
    for path in tqdm(files, desc="files", unit="file"):
        suffix = args.format or (".png" if path.suffix.lower() in (".jpg", ".jpeg") else path.suffix.lower() or ".dcm")
        target = (args.output / path.relative_to(folder)).with_suffix(suffix if suffix.startswith(".") else "." + suffix)
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            n, s = _denoise_file(args, denoiser, path, target, None)
        except (ValueError, OSError) as err:
            failed.append(f"{path}: {' '.join(str(err).split())}")
            continue
        done, frames, seconds = done + 1, frames + n, seconds + s
    print(f"denoised {done} file(s), {frames} frames by {args.method} in {seconds:.1f} s "
          f"({frames / max(seconds, 1e-9):.1f} frames/s); skipped {skipped} existing, {len(failed)} failed -> {args.output}")
    if failed:
        raise ValueError(f"{len(failed)} file(s) failed: " + "; ".join(failed))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "bench":
            _bench(args, argv)
        else:
            _denoise(args)
    except KeyboardInterrupt:
        print("usprior: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError, FloatingPointError, ModuleNotFoundError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"usprior: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
