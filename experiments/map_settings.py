"""MAP settings measured on the sagittal validation band: start, objective, steps, lambda, stride.

Gaussian noise of known sigma (unclipped) on sagittal *validation* slices (never the test band,
never the axial / coronal evaluation planes). Every variant is ``usprior.denoise(method, sigma=
sigma, **options)`` with the true sigma; a variant is written ``method:key=value,key=value``
(``map`` when the method is left out), e.g. ``objective=global,start=bm3d,global_steps=20``.
Writes docs/results/<name>.{md,json} with the mean PSNR and the seconds per 233x189 image
(compilation excluded: the slices share one shape, so only the first call compiles and the
later ones are timed): the measurements behind MAP's defaults.

``--bmode`` replaces the Gaussian noise by scanner-like B-mode frames of the same slices
(:func:`usprior.physics.randomized.random_bmode_pair`, a sector on every frame; the target is
the speckle-free image in the same display). There ``--sigmas`` are multipliers c of the
speckle-aware noise estimate (sigma = c :func:`usprior.physics.noise.estimate_speckle_std` of
the frame), and c = 0 passes no sigma (each method's own default).

    python experiments/map_settings.py --variants bm3d: steps=10 steps=40 steps=100 start=bm3d,steps=20
    python experiments/map_settings.py --bmode --sigmas 0 1 2 --variants bm3d: ffdnet: map: start=ffdnet
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import usprior
from usprior.eval.benchmark import device_name
from usprior.eval.metrics import psnr
from usprior.physics.noise import estimate_speckle_std
from usprior.physics.randomized import PhysicsRanges, random_bmode_pair
from usprior.priors import data

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(text: str) -> tuple[str, dict]:
    """``"method:key=value,..."`` -> (method, options); values are Python literals or strings."""
    method, _, spec = text.rpartition(":")
    options = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return method or "map", options


def observations(slices: list[np.ndarray], pick: np.ndarray, sigma: float, clip: bool, bmode: bool) -> list[tuple]:
    """(noisy, target, sigma given) per picked slice (see the module docstring)."""
    if bmode:
        pairs = [random_bmode_pair(slices[i], int(i), PhysicsRanges(p_sector=1.0)) for i in pick]
        return [(p.noisy, p.target, sigma * estimate_speckle_std(p.noisy) if sigma else None) for p in pairs]
    noisy = [(slices[i] + sigma * np.random.default_rng(int(i)).standard_normal(slices[i].shape)).astype(np.float32) for i in pick]
    return [(np.clip(y, 0.0, 1.0) if clip else y, slices[i], sigma) for i, y in zip(pick, noisy)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--n-slices", type=int, default=2)
    parser.add_argument("--clip", action="store_true", help="clip the observations to [0, 1] (a display image)")
    parser.add_argument("--bmode", action="store_true", help="scanner-like B-mode frames; --sigmas multiply the speckle estimate")
    parser.add_argument("--name", default="map_settings")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    slices = data.sagittal_slices("validation")
    pick = np.linspace(0, len(slices) - 1, args.n_slices).round().astype(int)
    cells = []
    for sigma in args.sigmas:
        obs = observations(slices, pick, sigma, args.clip, args.bmode)
        for variant in args.variants:
            method, options = parse_variant(variant)
            den = usprior.make_denoiser(method, **options)
            scores, seconds = [], []
            for y, target, given in obs:
                t0 = time.perf_counter()
                out = den(y[None], sigma=given)[0]
                seconds.append(time.perf_counter() - t0)
                scores.append(psnr(target, out))
            cells.append({"sigma": sigma, "variant": variant, "method": method, "options": options,
                          "psnr": float(np.mean(scores)), "seconds": float(np.mean(seconds[1:] or seconds))})
            print(cells[-1], flush=True)
    command = shlex.join(["python", "experiments/map_settings.py", *sys.argv[1:]])
    record = {"command": command, "device": device_name(), "clipped": args.clip, "bmode": args.bmode,
              "slices": [int(data.SAGITTAL_SPLITS["validation"][i]) for i in pick], "cells": cells}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# MAP settings on the sagittal validation band", "",
             f"Generated by `{command}` on {device_name()}. Validation slices {record['slices']}, "
             + ("scanner-like B-mode frames (`random_bmode_pair`, a sector each), sigma = the column's multiple of the "
                "speckle estimate (0: none given)" if args.bmode else
                f"Gaussian noise of known sigma ({'clipped to [0, 1]: display images' if args.clip else 'unclipped'}), "
                "the true sigma given")
             + "; mean PSNR (dB) and seconds per 233x189 image "
             "(start included, compilation excluded). A variant is `method:options` (`map` when no method is "
             "named); unnamed options are the library's defaults at the time of the run.", "",
             "| sigma | variant | PSNR | s |", "|---|---|---|---|"]
    for sigma in args.sigmas:
        rows = [c for c in cells if c["sigma"] == sigma]
        best = max(rows, key=lambda c: c["psnr"])
        lines += [f"| {c['sigma']:g} | `{c['variant']}` | {c['psnr']:.2f}{' **best**' if c is best else ''} | "
                  f"{c['seconds']:.1f} |" for c in rows]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / args.name}.md")


if __name__ == "__main__":
    main()
