"""Command line: ``usprior denoise IN -o OUT [--likelihood ...] [--sigma ...] [--compare PNG]``.

Reads PNG / TIFF / JPEG (colour is converted to gray with ``skimage.color.rgb2gray``) or
``.npy`` (a 2-D array, float in [0, 1] or integer); writes ``.png`` (8-bit), ``.tif``/``.tiff``
(float32) or ``.npy`` (float32) by the output suffix. ``--compare`` writes a side-by-side
before/after PNG.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import skimage.color
import skimage.io
import skimage.util

from usprior.api import DEFAULT_LAM, denoise
from usprior.likelihoods import LIKELIHOODS
from usprior.validation import as_float_image

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}


def read_image(path: Path) -> np.ndarray:
    """Read a grayscale image as float32 (H, W) in [0, 1]; colour images go through rgb2gray."""
    if not path.is_file():
        raise FileNotFoundError(f"input image not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif suffix in IMAGE_SUFFIXES:
        arr = skimage.io.imread(path)
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            arr = skimage.color.rgb2gray(arr[..., :3])
    else:
        raise ValueError(f"unsupported input format {suffix!r}: use .png, .tif, .jpg or .npy")
    return as_float_image(arr, min_size=1, name=str(path))


def write_image(path: Path, image: np.ndarray) -> None:
    """Write a float image in [0, 1] as 8-bit PNG, float32 TIFF or float32 .npy by suffix."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, image.astype(np.float32))
    elif suffix in (".tif", ".tiff"):
        skimage.io.imsave(path, image.astype(np.float32), check_contrast=False)
    elif suffix == ".png":
        skimage.io.imsave(path, skimage.util.img_as_ubyte(np.clip(image, 0, 1)), check_contrast=False)
    else:
        raise ValueError(f"unsupported output format {suffix!r}: use .png, .tif or .npy")


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 8) -> np.ndarray:
    """[before | white gap | after] as one (H, 2W + gap) float image."""
    return np.concatenate([before, np.ones((before.shape[0], gap), before.dtype), after], axis=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usprior", description="Ultrasound denoising with a flow prior.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("denoise", help="denoise one image by MAP with the flow prior")
    d.add_argument("input", type=Path, help="input image (.png, .tif, .jpg, .npy)")
    d.add_argument("-o", "--output", type=Path, required=True, help="output image (.png, .tif, .npy)")
    d.add_argument("--likelihood", default="gaussian", choices=sorted(LIKELIHOODS))
    d.add_argument("--sigma", type=float, default=None, help="noise level (default: estimated)")
    d.add_argument("--lam", type=float, default=None, help=f"weight of ||z||^2 (default {DEFAULT_LAM})")
    d.add_argument("--steps", type=int, default=None, help="Adam steps per patch")
    d.add_argument("--stride", type=int, default=None, help="patch stride in pixels")
    d.add_argument("--checkpoint", type=Path, default=None, help="prior checkpoint directory")
    d.add_argument("--compare", type=Path, default=None, help="also write a before/after PNG")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        image = read_image(args.input)
        t0 = time.perf_counter()
        out = denoise(
            image, likelihood=args.likelihood, sigma=args.sigma, lam=args.lam, steps=args.steps,
            stride=args.stride, checkpoint=args.checkpoint, progress=True,
        )
        seconds = time.perf_counter() - t0
        write_image(args.output, out)
        if args.compare is not None:
            write_image(args.compare, side_by_side(image, out))
    except (ValueError, FileNotFoundError) as err:
        print(f"usprior: error: {err}", file=sys.stderr)
        return 2
    print(f"denoised {args.input} {image.shape} in {seconds:.1f} s -> {args.output}")
    if args.compare is not None:
        print(f"before/after comparison -> {args.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
