"""Every denoiser on real scanner frames: figures and no-reference numbers.

For each real example (usprior.io.examples; the held-out / training split is in docs/real_data.md)
the B-mode mask is detected (usprior.scanner.mask.bmode_mask) and every method runs with its
default settings through usprior.scanner.denoise.denoise_scan, exactly as ``usprior denoise``
does (on these ultrasound DICOMs ``map`` runs as ``map_bmode``: usprior.scanner.files.file_method). Nothing is tuned on these frames. Per method and image (inside the mask, gray pixels):

* speckle suppression: median over homogeneous windows of std(input) / std(output);
* structure leakage: correlation of the residual's local variance with the input's edge strength;
* noise-law leakage: the same after dividing that variance by the frame's noise law, fitted in
  homogeneous tissue (usprior.eval.metrics.noise_law_leakage: about 0 for a perfect despeckler
  also where the noise grows with the brightness);
* brightness bias: |mean change|;
* gCNR and CNR between a dark and a tissue region (docs/results/real_regions.json, frame 0);
* temporal stability (cines): frame-to-frame change of the output relative to the input's;
* seconds per frame (wall clock, after a warm-up call on the same frame size).

Writes docs/results/<name>.{md,json} (default name real_data) and one figure per image,
<name>_<image>.png: a row
of the input and every output on the mask's bounding box, then a row of the same 3x zoomed
central crop, with the ROIs drawn on the input.

    python experiments/real_data.py                       # all methods, all images (CPU: ~30 min)
    python experiments/real_data.py --methods nlm bm3d --images ybr_color --cine-frames 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import skimage.io
import skimage.util

import usprior
from usprior.eval import metrics
from usprior.eval.benchmark import Figure, device_name, figure_grid
from usprior.io.examples import example_path
from usprior.io.scans import Scan, read_scan
from usprior.scanner.denoise import denoise_scan
from usprior.scanner.files import FileSettings, file_method
from usprior.scanner.mask import bmode_mask, gray_pixels

METHODS = ("map", "unrolled", "ffdnet", "pix2pix", "nlm", "obnlm", "srad", "lee", "frost", "tv", "bm3d", "wnnm")
IMAGES = {  # example name: (role, what it is)
    "ybr_color": ("held out", "SonoSite cardiac cine (frames 0-29 of the loop)"),
    "sonosite_cine": ("held out", "the same SonoSite loop at its full 480x640 (frames 0-7 scored)"),
    "rgb_color": ("held out", "GE LOGIQ 700 lymph node, power Doppler"),
    "epiq": ("training pool", "Philips EPIQ 7C adult echo"),
    "aloka": ("training pool", "ALOKA SSD-4000 pelvis, dual display"),
}
ROOT = Path(__file__).resolve().parents[1]


def roi_masks(regions: dict, shape: tuple[int, int], inside: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, (r, c, h, w) in regions.items():
        box = np.zeros(shape, bool)
        box[r : r + h, c : c + w] = True
        out[name] = box & inside
    return out


def scores(scan: Scan, out_frames: np.ndarray, inside: np.ndarray, rois: dict) -> dict:
    y, x = scan.frames, out_frames
    per_frame = [metrics.no_reference_scores(y[t], x[t], inside) for t in range(len(y))]
    row = {k: float(np.mean([p[k] for p in per_frame])) for k in per_frame[0]}
    row["gcnr"] = metrics.gcnr(x[0], rois["dark"], rois["tissue"])
    row["cnr"] = metrics.cnr(x[0], rois["dark"], rois["tissue"])
    if len(y) > 1:
        row["temporal"] = metrics.temporal_stability(y, x, inside)
    return row


def figure(columns: dict[str, np.ndarray], per_row: int = 4) -> np.ndarray:
    """:func:`usprior.eval.benchmark.figure_grid` with at most ``per_row`` columns per row pair
    (the last row padded with white tiles), so wide frames stay readable."""
    names = list(columns)
    blank = np.ones_like(columns[names[0]])
    groups = [names[i : i + per_row] for i in range(0, len(names), per_row)]
    figures = [Figure(0.0, {n: columns[n] for n in g} | {f"_{k}": blank for k in range(per_row - len(g))}) for g in groups]
    return figure_grid(figures)


def draw_boxes(image: np.ndarray, rois: dict) -> np.ndarray:
    out = image.copy()
    for mask in rois.values():
        rows, cols = np.nonzero(mask)
        if rows.size:
            r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
            out[r0, c0 : c1 + 1] = out[r1, c0 : c1 + 1] = 1.0
            out[r0 : r1 + 1, c0] = out[r0 : r1 + 1, c1] = 1.0
    return out


def run(name: str, methods: list[str], cine_frames: int, regions: dict, out_dir: Path, stem: str) -> dict:
    scan = read_scan(example_path(name))
    scan = scan.take(slice(cine_frames))  # MAP's CPU time grows with every frame
    mask = bmode_mask(scan)
    inside = mask & gray_pixels(scan).all(axis=0)
    rois = roi_masks(regions[name], scan.shape, inside)
    rows, cols = np.nonzero(mask)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    entry = {"role": IMAGES[name][0], "description": IMAGES[name][1], "frames": len(scan.frames),
             "shape": list(scan.shape), "mask_fraction": float(mask.mean()), "methods": {}}
    noisy = {"gcnr": metrics.gcnr(scan.frames[0], rois["dark"], rois["tissue"]),
             "cnr": metrics.cnr(scan.frames[0], rois["dark"], rois["tissue"])}
    entry["input"] = noisy
    columns = {"input": draw_boxes(scan.frames[0], rois)[box]}
    for method in methods:
        runs_as = file_method(FileSettings(method), scan)  # usprior denoise's choice for this file
        den = usprior.make_denoiser(runs_as)
        denoise_scan(scan.take(slice(1)), den, mask)  # warm-up: compile for this frame size
        t0 = time.perf_counter()
        result = denoise_scan(scan, den, mask)
        seconds = (time.perf_counter() - t0) / len(scan.frames)
        row = scores(scan, result.frames, inside, rois)
        row["seconds_per_frame"] = seconds
        row["runs_as"] = runs_as
        entry["methods"][method] = row
        columns[method] = result.frames[0][box]
        print(f"{name} {method} (as {runs_as}): " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if k != "runs_as"),
              flush=True)
    skimage.io.imsave(out_dir / f"{stem}_{name}.png", skimage.util.img_as_ubyte(figure(columns)), check_contrast=False)
    entry["figure_columns"] = list(columns)
    return entry


def markdown(results: dict, command: str, stem: str) -> str:
    lines = ["# Every denoiser on real scanner frames", "",
             f"Generated by `{command}` on {results['device']}. Default settings of every method (nothing tuned "
             "on these frames); the B-mode mask detected by `bmode_mask`; metrics on the gray pixels inside it "
             "(definitions in `usprior.eval.metrics` and docs/real_data.md). Suppression: std(in) / std(out) in "
             "homogeneous windows (higher = smoother); leakage: correlation of the residual's local variance with "
             "the input's edges (0 = only speckle removed, where the noise std is the same everywhere); law leakage: "
             "the same relative to the frame's noise law (`noise_law_leakage`: 0 = only noise removed, whatever the "
             "law; below 0 = noise left at edges); bias: |mean change|; gCNR / CNR: dark vs tissue ROI "
             "(input value in the heading); temporal: frame-to-frame change relative to the input's (cines); "
             "s / frame: CPU wall clock.", ""]
    for name, entry in results["images"].items():
        lines += [f"## {name}: {entry['description']} ({entry['role']}, {entry['frames']} frame(s), "
                  f"{entry['shape'][0]}x{entry['shape'][1]})", "",
                  f"Input gCNR {entry['input']['gcnr']:.3f}, CNR {entry['input']['cnr']:.2f}; mask "
                  f"{100 * entry['mask_fraction']:.0f} % of the frame.", "",
                  "| method | suppression | leakage | law leakage | bias | gCNR | CNR | temporal | s / frame |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for method, r in entry["methods"].items():
            temporal = f"{r['temporal']:.2f}" if "temporal" in r else "-"
            name_cell = method if r.get("runs_as", method) == method else f"{method} (as {r['runs_as']})"
            lines.append(f"| {name_cell} | {r['suppression']:.2f} | {r['leakage']:.2f} | {r['leakage_law']:.2f} | {r['bias']:.3f} | "
                         f"{r['gcnr']:.3f} | {r['cnr']:.2f} | {temporal} | {r['seconds_per_frame']:.2f} |")
        lines += ["", f"![{name}]({stem}_{name}.png)", "",
                  f"Tiles, left to right and in row pairs of four: {', '.join(entry['figure_columns'])}; in each pair "
                  "the mask's bounding box of frame 0 (ROIs drawn on the input), then its central third zoomed 3x.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--images", nargs="+", default=list(IMAGES), choices=list(IMAGES))
    parser.add_argument("--cine-frames", type=int, default=8, help="frames of a cine to process (default 8)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--name", default="real_data", help="output file stem (default real_data)")
    args = parser.parse_args()
    regions = json.loads((ROOT / "docs" / "results" / "real_regions.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"device": device_name(), "images": {}}
    for name in args.images:
        results["images"][name] = run(name, args.methods, args.cine_frames, regions, args.out, args.name)
    import shlex
    import sys

    command = shlex.join(["python", "experiments/real_data.py", *sys.argv[1:]])
    results["command"] = command
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(results, command, args.name))
    print(f"wrote {args.out / (args.name + '.md')}")


if __name__ == "__main__":
    main()
