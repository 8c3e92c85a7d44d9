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
    d.add_argument("input", type=Path, help="input image or (T, H, W) stack (.png, .tif, .jpg, .npy)")
    d.add_argument("-o", "--output", type=Path, required=True, help="output image (.png, .tif, .npy)")
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
    d.add_argument("--compare", type=Path, default=None, help="also write a before/after image")
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


def _denoise(args: argparse.Namespace) -> None:
    from usprior.denoisers import denoiser_entry, denoiser_options, import_plugins, make_denoiser
    from usprior.io.images import check_output, read_image, side_by_side, write_image

    import_plugins(args.plugin)
    denoiser_entry(args.method)  # an unknown method fails before anything is read
    image = read_image(args.input)
    frames = 1 if image.ndim == 2 else image.shape[0]
    outputs = [("-o", args.output)] + ([("--compare", args.compare)] if args.compare is not None else [])
    for flag, path in outputs:
        if path.resolve() == args.input.resolve():
            raise ValueError(f"{flag} {path} is the input file: choose another name (the input is never overwritten)")
        check_output(path, frames, overwrite=args.overwrite)
    if args.compare is not None and args.compare.resolve() == args.output.resolve():
        raise ValueError("--compare and -o name the same file: give them different names")
    given = {"likelihood": args.likelihood, "lam": args.lam, "steps": args.steps, "warm_steps": args.warm_steps,
             "stride": args.stride, "batch": args.batch, "checkpoint": args.checkpoint}
    options = {k: v for k, v in given.items() if v is not None}
    valid = denoiser_options(args.method)
    if valid is None or "progress" in valid:
        options["progress"] = True
    den = make_denoiser(args.method, **options)
    t0 = time.perf_counter()
    out = den(image if image.ndim == 3 else image[None], sigma=args.sigma)
    seconds = time.perf_counter() - t0
    out = out if image.ndim == 3 else out[0]
    write_image(args.output, out, overwrite=args.overwrite)
    print(f"denoised {args.input} {image.shape} by {args.method} in {seconds:.1f} s -> {args.output}")
    if args.compare is not None:
        write_image(args.compare, side_by_side(image, out), overwrite=args.overwrite)
        print(f"before/after comparison -> {args.compare}")


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
