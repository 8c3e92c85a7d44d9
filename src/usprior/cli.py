"""Command line: ``usprior denoise IN -o OUT [...]``, ``usprior adapt FRAMES... -o MODEL`` and ``usprior bench [...]``.

``denoise`` denoises one image or a cine stack (T, H, W) with any registered denoiser
(``--method``; ``--plugin MODULE`` imports a module that registers more); ``bench`` runs
:mod:`usprior.eval.benchmark` (tune every method per noise level on a tuning image, evaluate on
test images, write JSON / Markdown / PNG); ``adapt`` fine-tunes an FFDNet on a scanner's own
frames without clean targets (:mod:`usprior.amortized.adapt`).

Formats are those of :mod:`usprior.io.scans` (DICOM, PNG, JPEG, TIFF, NPY, GIF). Everything that can be checked before the work is
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
    d.add_argument("--objective", default=None, help="map: global (default) or latent")
    d.add_argument("--start", default=None,
                   help="map: the start image, blur or a registered denoiser (default bm3d; latent: blur)")
    d.add_argument("--lam", type=float, default=None,
                   help="map: prior weight (default 0.25 global, 1 latent; calibrated)")
    d.add_argument("--global-steps", type=int, default=None, help="map: Adam steps on the global objective (default 20)")
    d.add_argument("--steps", type=int, default=None, help="map_latent: Adam steps per patch (default 100; map: of the latent start of a clipped frame, default 30)")
    d.add_argument("--warm-steps", type=int, default=None, help="map_latent, cine: steps on warm-started frames")
    d.add_argument("--stride", type=int, default=None, help="map_latent / unrolled: patch stride in pixels")
    d.add_argument("--batch", type=int, default=None, help="pix2pix / ffdnet: frames per pass")
    d.add_argument("--strength", type=float, default=None,
                   help="ffdnet without --sigma: the factor on the noise level read from the frames (default 1)")
    d.add_argument("--noise", default=None, choices=["auto", "speckle"],
                   help="map: how a missing --sigma is read (default: speckle for an ultrasound DICOM, where map "
                        "runs as map_bmode, auto elsewhere)")
    d.add_argument("--checkpoint", default=None, help="checkpoint of the method: a directory or a shipped name")
    d.add_argument("--compare", type=Path, default=None, help="also write a before/after image (.png, .gif for cine)")
    d.add_argument("--mask", default=None, metavar="auto|none|FILE",
                   help="pixels to denoise: auto (the detected B-mode region; default for DICOM), none (every gray "
                        "pixel; default otherwise) or a mask file (nonzero = denoise)")
    d.add_argument("--format", default=None, choices=(".dcm", ".png", ".tif", ".npy", ".gif"),
                   help="folder input: the output format (default: the input's; JPEG -> PNG)")
    d.add_argument("--dask", default=None, metavar="local:N|ADDRESS",
                   help="folder input: share the files out to Dask workers (local:N starts N here)")
    d.add_argument("--overwrite", action="store_true", help="replace output files that exist")

    a = sub.add_parser("adapt", help="adapt an FFDNet to your scanner's frames, self-supervised (no clean targets)")
    a.add_argument("inputs", nargs="+", help="frames: DICOM / image files or example:NAME (the last ones are held out)")
    a.add_argument("--from", dest="source", default="ffdnet_us", help="the FFDNet to start from (name or directory)")
    a.add_argument("-o", "--output", type=Path, required=True, help="new checkpoint directory (must not exist)")
    a.add_argument("--steps", type=int, default=200, help="optimiser steps (default 200)")
    a.add_argument("--batch", type=int, default=8, help="crops per step")
    a.add_argument("--crop", type=int, default=96, help="crop side in pixels")
    a.add_argument("--learning-rate", type=float, default=1e-4)
    a.add_argument("--cell", type=int, default=6, help="block side of the neighbour pairs (pixels >= cell / 2 apart)")
    a.add_argument("--holdout", type=float, default=0.25, help="fraction of the frames kept out to measure (default 0.25)")
    a.add_argument("--sigma", type=float, default=None, help="noise-map level (default: the speckle std read from the frames)")
    a.add_argument("--mask", default=None, metavar="auto|none", help="crop frames to the B-mode region (default auto for DICOM)")
    a.add_argument("--seed", type=int, default=0)

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
    from usprior.io.images import read_image
    from usprior.io.scans import SCAN_SUFFIXES
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
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in SCAN_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(SCAN_SUFFIXES)}) in {args.images}")
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


def _settings(args: argparse.Namespace):
    """The :class:`usprior.scanner.files.FileSettings` of the denoise arguments (plug-ins imported,
    the method checked: an unknown one fails before anything is read)."""
    from usprior.denoisers import denoiser_entry, denoiser_options, import_plugins
    from usprior.scanner.files import FileSettings

    import_plugins(args.plugin)
    denoiser_entry(args.method)
    given = {"likelihood": args.likelihood, "objective": args.objective, "start": args.start, "lam": args.lam,
             "global_steps": args.global_steps, "steps": args.steps, "warm_steps": args.warm_steps,
             "stride": args.stride, "batch": args.batch, "checkpoint": args.checkpoint, "noise": args.noise,
             "strength": args.strength}
    options = {k: v for k, v in given.items() if v is not None}
    valid = denoiser_options(args.method)
    if args.input_is_file and (valid is None or "progress" in valid):
        options["progress"] = True
    return FileSettings(args.method, options, args.sigma, args.mask, args.overwrite, tuple(args.plugin))


def _denoise(args: argparse.Namespace) -> None:
    from usprior.denoisers import make_denoiser
    from usprior.io.examples import resolve_input
    from usprior.scanner.files import denoise_file

    source = resolve_input(args.input)
    args.input_is_file = not source.is_dir()
    settings = _settings(args)
    if source.is_dir():
        _denoise_folder(args, source, settings)
        return
    if args.format is not None or args.dask is not None:
        raise ValueError("--format and --dask are for folder input; a single output takes the format of its suffix")
    frames, seconds, method = denoise_file(settings, lambda m: make_denoiser(m, **settings.options), source,
                                           args.output, args.compare)
    if method != args.method:
        print(f"usprior: {source} is an ultrasound DICOM: {args.method} runs with its B-mode settings, as {method} "
              "(--noise auto keeps the white-noise reading)")
    print(f"denoised {source} ({frames} frame{'s' * (frames > 1)}) by {method} in {seconds:.1f} s "
          f"({frames / max(seconds, 1e-9):.1f} frames/s) -> {args.output}")
    if args.compare is not None:
        print(f"before/after comparison -> {args.compare}")


def _folder_jobs(args: argparse.Namespace, folder: Path) -> tuple[list[tuple[Path, Path]], int]:
    """(input, output) of every supported file below ``folder`` whose output is still to be made,
    and the number of outputs that exist already (skipped: resumable)."""
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
    jobs, skipped = [], 0
    for path in files:
        suffix = args.format or (".png" if path.suffix.lower() in (".jpg", ".jpeg") else path.suffix.lower() or ".dcm")
        target = (args.output / path.relative_to(folder)).with_suffix(suffix)
        if target.exists() and not args.overwrite:
            skipped += 1
        else:
            jobs.append((path, target))
    return jobs, skipped


def _dask_client(spec: str):
    """A Dask client: ``local:N`` starts N single-threaded worker processes here, anything else is
    a scheduler address (start one ``dask worker`` per GPU, each with its CUDA_VISIBLE_DEVICES)."""
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ModuleNotFoundError('--dask needs Dask distributed: pip install "usprior[distributed]"') from None
    if spec.startswith("local:"):
        workers = int(spec.split(":", 1)[1])
        return Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None))
    return Client(spec)


def _denoise_folder(args: argparse.Namespace, folder: Path, settings) -> None:
    """Every supported file below ``folder`` into the same relative path below ``-o``; outputs
    that exist are skipped (resumable), a file that fails is reported and the rest go on. With
    ``--dask`` the files are shared out to Dask workers."""
    from tqdm.auto import tqdm

    from usprior.scanner.files import cached_denoisers, denoise_file, worker_denoise_file

    jobs, skipped = _folder_jobs(args, folder)
    done, frames, seconds, failed, methods = 0, 0, 0.0, [], set()
    outcomes = []
    if args.dask is None:
        denoiser = cached_denoisers(settings, {})
        for path, target in tqdm(jobs, desc="files", unit="file"):
            try:
                outcomes.append((path, denoise_file(settings, denoiser, path, target)))
            except (ValueError, OSError) as err:
                outcomes.append((path, err))
    else:
        from distributed import as_completed

        with _dask_client(args.dask) as client:
            futures = {client.submit(worker_denoise_file, settings, path, target, pure=False): path for path, target in jobs}
            for future in tqdm(as_completed(futures), total=len(futures), desc="files", unit="file"):
                error = future.exception()
                outcomes.append((futures[future], error if error is not None else future.result()))
    for path, outcome in outcomes:
        if isinstance(outcome, BaseException):
            failed.append(f"{path}: {' '.join(str(outcome).split())}")
        else:
            done, frames, seconds = done + 1, frames + outcome[0], seconds + outcome[1]
            methods.add(outcome[2])
    print(f"denoised {done} file(s), {frames} frames by {' and '.join(sorted(methods)) or args.method} in {seconds:.1f} s "
          f"({frames / max(seconds, 1e-9):.1f} frames/s); skipped {skipped} existing, {len(failed)} failed -> {args.output}")
    if failed:
        raise ValueError(f"{len(failed)} file(s) failed: " + "; ".join(sorted(failed)))


def _adapt(args: argparse.Namespace) -> None:
    """``usprior adapt``: Neighbor2Neighbor fine-tuning of an FFDNet on a scanner's own frames."""
    import math

    from usprior.amortized.adapt import adapt_ffdnet
    from usprior.denoisers.networks import default_noise_level
    from usprior.amortized.checkpoint import load_model, save_model
    from usprior.io.examples import resolve_input
    from usprior.io.scans import read_scan
    from usprior.scanner.files import FileSettings, file_mask
    from usprior.validation import check_real

    holdout = check_real(args.holdout, "--holdout", low=0.0, high=1.0, strict=True)
    if args.output.exists():
        raise FileExistsError(f"{args.output} exists: give a new checkpoint directory")
    model = load_model(args.source, kind="ffdnet")
    frames = []
    for text in args.inputs:
        scan = read_scan(resolve_input(text))
        mask = file_mask(FileSettings("ffdnet", mask=args.mask), scan)
        rows, cols = np.nonzero(mask) if mask.any() else np.nonzero(np.ones(scan.shape, bool))
        frames += [f[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] for f in scan.frames]
    if len(frames) < 2:
        raise ValueError("adapt needs at least 2 frames: some to train on, some held out to measure")
    n_held = min(max(1, math.ceil(holdout * len(frames))), len(frames) - 1)
    sigma = args.sigma if args.sigma is not None else default_noise_level(frames)
    t0 = time.perf_counter()
    result = adapt_ffdnet(model.variables, model.config, frames[:-n_held], frames[-n_held:], sigma, steps=args.steps,
                          batch=args.batch, crop=args.crop, learning_rate=args.learning_rate, cell=args.cell, seed=args.seed)
    seconds = time.perf_counter() - t0
    metadata = {**model.metadata, "teacher": "self-supervised (Neighbor2Neighbor)", "adapted_from": str(args.source),
                "adapt": {"inputs": list(args.inputs), "frames": len(frames) - n_held, "heldout_frames": n_held,
                          "steps": args.steps, "batch": args.batch, "crop": args.crop, "cell": args.cell,
                          "learning_rate": args.learning_rate, "sigma": sigma, "seconds": seconds,
                          "heldout_loss_before": result.heldout_before, "heldout_loss_after": result.heldout_after}}
    save_model(model.config, result.variables, args.output, metadata)
    print(f"adapted {args.source} on {len(frames) - n_held} frames in {seconds:.0f} s: self-supervised loss on "
          f"{n_held} held-out frame(s) {result.heldout_before:.5f} -> {result.heldout_after:.5f} -> {args.output}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "bench":
            _bench(args, argv)
        elif args.command == "adapt":
            _adapt(args)
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
