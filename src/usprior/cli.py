"""Command line: ``usprior denoise IN -o OUT [...]`` and ``usprior bench [...]``.

``denoise`` denoises one image or a cine stack (T, H, W) by MAP or an amortised model
(``--method``); ``bench`` runs :mod:`usprior.benchmark` (tune every
method per noise level on a tuning image, evaluate on test images, write JSON / Markdown / PNG).

Reads PNG / TIFF / JPEG (colour is converted to gray with ``skimage.color.rgb2gray``; a
multi-page TIFF is a cine stack) or ``.npy`` (a 2-D image or a (T, H, W) stack, float in
[0, 1] or integer); writes ``.png`` (8-bit, single images), ``.tif``/``.tiff`` (float32) or
``.npy`` (float32) by the output suffix. ``--compare`` writes a side-by-side before/after
image (a stack of them for cine input).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import skimage.color
import skimage.io
import skimage.util
import tifffile

from usprior import benchmark, data, simulate
from usprior.api import DEFAULT_LAM, METHODS, denoise
from usprior.likelihoods import LIKELIHOODS
from usprior.validation import as_float_frames

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}


def read_image(path: Path) -> np.ndarray:
    """Read a grayscale image as float32 (H, W), or a cine stack as (T, H, W), in [0, 1];
    colour images go through rgb2gray."""
    if not path.is_file():
        raise FileNotFoundError(f"input image not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif suffix in IMAGE_SUFFIXES:
        # tifffile keeps TIFF pages as frames, (T, H, W); imageio would guess RGB for T = 3
        arr = tifffile.imread(path) if suffix in (".tif", ".tiff") else skimage.io.imread(path)
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            arr = skimage.color.rgb2gray(arr[..., :3])
    else:
        raise ValueError(f"unsupported input format {suffix!r}: use .png, .tif, .jpg or .npy")
    frames = as_float_frames(arr, min_size=1, name=str(path))
    return frames if np.ndim(arr) == 3 else frames[0]


def write_image(path: Path, image: np.ndarray) -> None:
    """Write a float image (H, W) or stack (T, H, W) in [0, 1] as 8-bit PNG (images only),
    float32 TIFF or float32 .npy by suffix."""
    suffix = path.suffix.lower()
    if suffix == ".png" and image.ndim != 2:
        raise ValueError(f"{path}: PNG holds one image; write a stack of {image.shape[0]} frames as .tif or .npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, image.astype(np.float32))
    elif suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, image.astype(np.float32), photometric="minisblack")
    elif suffix == ".png":
        skimage.io.imsave(path, skimage.util.img_as_ubyte(np.clip(image, 0, 1)), check_contrast=False)
    else:
        raise ValueError(f"unsupported output format {suffix!r}: use .png, .tif or .npy")


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 8) -> np.ndarray:
    """[before | white gap | after]: (..., H, W) -> (..., H, 2W + gap) float image(s)."""
    white = np.ones((*before.shape[:-1], gap), before.dtype)
    return np.concatenate([before, white, after], axis=-1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usprior", description="Ultrasound denoising with a flow prior.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("denoise", help="denoise an image or a cine stack by MAP or an amortised model")
    d.add_argument("input", type=Path, help="input image or (T, H, W) stack (.png, .tif, .jpg, .npy)")
    d.add_argument("-o", "--output", type=Path, required=True, help="output image (.png, .tif, .npy)")
    d.add_argument("--method", default="map", choices=METHODS, help="denoiser (default: map)")
    d.add_argument("--likelihood", default=None, choices=sorted(LIKELIHOODS),
                   help="map: default gaussian; unrolled: default the trained one")
    d.add_argument("--sigma", type=float, default=None,
                   help="noise level (map: default estimated; ffdnet: the noise-map strength knob)")
    d.add_argument("--lam", type=float, default=None, help=f"map: weight of ||z||^2 (default {DEFAULT_LAM})")
    d.add_argument("--steps", type=int, default=None, help="map: Adam steps per patch")
    d.add_argument("--warm-steps", type=int, default=None, help="map, cine: steps on warm-started frames")
    d.add_argument("--stride", type=int, default=None, help="map / unrolled: patch stride in pixels")
    d.add_argument("--batch", type=int, default=16, help="pix2pix / ffdnet: frames per pass")
    d.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint directory of the method (default: the shipped one)")
    d.add_argument("--compare", type=Path, default=None, help="also write a before/after PNG")

    b = sub.add_parser("bench", help="compare denoisers on simulated noise (tuned per level, same noisy inputs)")
    b.add_argument("--noise", default="convolutional", choices=sorted(simulate.NOISE_MODELS))
    b.add_argument("--levels", type=float, nargs="+", required=True,
                   help="noise levels: sigma, or the dynamic range in dB for 'convolutional'")
    b.add_argument("--methods", nargs="+", default=None, help="registered method names (default: all)")
    b.add_argument("--images", type=Path, default=None,
                   help="folder of clean test images (default: held-out sagittal MNI152 test slices)")
    b.add_argument("--tune-image", type=Path, default=None,
                   help="clean tuning image (required with --images; default: the sagittal 'tune' slice)")
    b.add_argument("--n-test", type=int, default=3, help="number of sagittal test slices when --images is not given")
    b.add_argument("--no-phantom", action="store_true", help="skip the cyst phantom")
    b.add_argument("--seed", type=int, default=0, help="base seed of the noise draws")
    b.add_argument("--import", dest="plugins", action="append", default=[],
                   help="import MODULE first (it may call usprior.benchmark.register)")
    b.add_argument("--out", type=Path, default=Path("bench"), help="output folder")
    b.add_argument("--name", default="benchmark", help="output file stem")
    b.add_argument("--title", default="Denoising benchmark", help="Markdown title")
    return parser


def _bench_images(args: argparse.Namespace) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The tuning image and the named test images selected by the ``bench`` arguments."""
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
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".npy"})
    if not files:
        raise ValueError(f"no images (.png, .tif, .jpg, .npy) in {args.images}")
    return read_image(args.tune_image), {p.stem: read_image(p) for p in files}


def _bench(args: argparse.Namespace, argv: list[str] | None) -> None:
    benchmark.import_plugins(args.plugins)
    tune, test = _bench_images(args)
    setup = benchmark.BenchmarkSetup(
        noise=args.noise, levels=tuple(args.levels), methods=tuple(args.methods or benchmark.METHODS),
        tune_image=tune, test_images=test, phantom_shape=None if args.no_phantom else (192, 192), seed=args.seed,
    )
    results, figures = benchmark.run_benchmark(setup)
    command = shlex.join(["usprior", *(sys.argv[1:] if argv is None else argv)])
    paths = benchmark.write_reports(results, figures, args.out, args.name, args.title, command)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _denoise(args: argparse.Namespace) -> None:
    image = read_image(args.input)
    t0 = time.perf_counter()
    out = denoise(
        image, method=args.method, likelihood=args.likelihood, sigma=args.sigma, lam=args.lam,
        steps=args.steps, warm_steps=args.warm_steps, stride=args.stride, batch=args.batch,
        checkpoint=args.checkpoint, progress=True,
    )
    seconds = time.perf_counter() - t0
    write_image(args.output, out)
    print(f"denoised {args.input} {image.shape} by {args.method} in {seconds:.1f} s -> {args.output}")
    if args.compare is not None:
        write_image(args.compare, side_by_side(image, out))
        print(f"before/after comparison -> {args.compare}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "bench":
            _bench(args, argv)
        else:
            _denoise(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"usprior: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
