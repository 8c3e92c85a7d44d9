"""Gaussian denoising of held-out MRI planes: flow-prior MAP against NLM and BM3D, defaults and tuned.

Protocol: the clean images are axial and coronal MNI152 planes
(:data:`usprior.priors.data.EVALUATION_PLANES`; the prior was trained on sagittal slices only);
the observation is y = x + sigma n, unclipped (values outside [0, 1] as noise makes them), with a
fixed seed per (plane, sigma), so every method sees the same y. For each sigma in 0.1 ... 0.4:

* ``default``: ``usprior.denoise(y, method=m, sigma=sigma)``, every other setting the library's;
* ``tuned``: the best value of one parameter (NLM h, BM3D's sigma, MAP lambda) on a grid, chosen
  on a sagittal 'tune' band slice only (never on the evaluation planes);
* ``map, blind``: ``usprior.denoise(y, method="map")``, nothing but the image (sigma estimated).

``--prior`` names the flow prior of every MAP row (default: the shipped ``glow_mri``).
Writes docs/results/<name>.{json,md,png} (figure rows: sigma; columns: clean, noisy, NLM, BM3D, MAP).

    python experiments/gaussian_mri.py
    python experiments/gaussian_mri.py --prior glow_mri_wide --name gaussian_mri_wide
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import skimage.io
import skimage.util
from skimage.metrics import structural_similarity

import usprior
from usprior.eval.benchmark import device_name
from usprior.eval.metrics import psnr
from usprior.priors.data import EVALUATION_PLANES, SAGITTAL_SPLITS, evaluation_plane, sagittal_slices

ROOT = Path(__file__).resolve().parents[1]
SIGMAS = (0.1, 0.2, 0.3, 0.4)
GRIDS = {  # method -> (option, candidates as multiples of sigma, or plain values for lam)
    "nlm": ("h", (0.4, 0.6, 0.8, 1.0, 1.2), True),
    "bm3d": ("sigma", (0.8, 1.0, 1.2, 1.5), True),
    "map": ("lam", (0.5, 1.0, 2.0), False),
}


def noisy_copy(x: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return (x + sigma * np.random.default_rng(seed).standard_normal(x.shape)).astype(np.float32)


def run(method: str, y: np.ndarray, sigma: float | None, **options) -> tuple[np.ndarray, float]:
    """(estimate, seconds) of ``usprior.denoise``; a tuned BM3D's sigma is its option here."""
    t0 = time.perf_counter()
    out = usprior.denoise(y, method=method, sigma=sigma, **options)
    return out, time.perf_counter() - t0


def tuned_options(method: str, tune: np.ndarray, sigma: float, seed: int, fixed: dict) -> tuple[float, dict, dict]:
    """The best candidate of GRIDS[method] on the tuning slice as (sigma to call with, options),
    and the PSNR of every candidate (BM3D's tuned parameter is the sigma it is called with);
    ``fixed``: options of every call (MAP's prior)."""
    name, values, scaled = GRIDS[method]
    y = noisy_copy(tune, sigma, seed)
    calls = [(v * sigma, dict(fixed)) if name == "sigma" else (sigma, {**fixed, name: v * sigma if scaled else v})
             for v in values]
    scores = [psnr(tune, run(method, y, s, **o)[0]) for s, o in calls]
    best = int(np.argmax(scores))
    labels = [f"{c[0]:.4g}" if name == "sigma" else f"{c[1][name]:.4g}" for c in calls]
    return calls[best][0], calls[best][1], dict(zip(labels, scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    parser.add_argument("--name", default="gaussian_mri")
    parser.add_argument("--prior", default=None, help="flow prior checkpoint of the MAP rows (default glow_mri)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    fixed = {m: {"checkpoint": args.prior} if m == "map" and args.prior else {} for m in GRIDS}
    tune = sagittal_slices("tune")[0]
    planes = [(f"{p} {i}", evaluation_plane(p, i)) for p, i in EVALUATION_PLANES]
    rows, figure = [], []
    for s_i, sigma in enumerate(args.sigmas):
        tuned, tune_scores = {}, {}
        for method in GRIDS:
            *tuned[method], tune_scores[method] = tuned_options(method, tune, sigma, 1000 + s_i, fixed[method])
        results: dict[str, list] = {}
        for j, (label, x) in enumerate(planes):
            y = noisy_copy(x, sigma, seed=10 * s_i + j)
            outs = {"noisy": (np.clip(y, 0, 1), 0.0)}
            for method in GRIDS:
                outs[f"{method}, default"] = run(method, y, sigma, **fixed[method])
                call_sigma, options = tuned[method]
                outs[f"{method}, tuned"] = run(method, y, call_sigma, **options)
            outs["map, blind"] = run("map", y, None, **fixed["map"])
            for key, (est, seconds) in outs.items():
                results.setdefault(key, []).append((psnr(x, est), structural_similarity(x, est, data_range=1.0), seconds))
            if j == 0:
                figure.append(np.concatenate([x, np.clip(y, 0, 1), outs["nlm, tuned"][0], outs["bm3d, default"][0],
                                              outs["map, default"][0]], axis=1))
            print(sigma, label, {k: round(v[-1][0], 2) for k, v in results.items()}, flush=True)
        row = {"sigma": sigma, "tuned": {m: {"sigma": s, **o} for m, (s, o) in tuned.items()},
               "tune_psnr": tune_scores}
        for key, vals in results.items():
            arr = np.asarray(vals)
            row[key] = {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean()), "seconds": float(arr[:, 2].mean()),
                        "per_plane_psnr": [float(v) for v in arr[:, 0]]}
        rows.append(row)
    write(args, rows, planes, figure)


def write(args: argparse.Namespace, rows: list[dict], planes: list, figure: list) -> None:
    command = shlex.join(["python", "experiments/gaussian_mri.py", *sys.argv[1:]])
    keys = ["noisy", "nlm, default", "nlm, tuned", "bm3d, default", "bm3d, tuned", "map, default", "map, tuned", "map, blind"]
    record = {"command": command, "device": device_name(), "prior": args.prior or "glow_mri", "planes": [p for p, _ in planes],
              "tune_slice": int(SAGITTAL_SPLITS["tune"][0]), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Gaussian denoising of held-out MRI planes (axial and coronal)", "",
        f"Generated by `{command}` on {device_name()}. Planes {', '.join(record['planes'])} (never trained or tuned "
        f"on); MAP's prior `{record['prior']}`; y = x + sigma n unclipped; mean PSNR (dB) / SSIM over the planes. *default*: sigma given, every other "
        f"setting the library's; *tuned*: one parameter chosen on sagittal tune slice {record['tune_slice']} "
        "(NLM h, BM3D sigma, MAP lambda; values in the JSON); *blind*: nothing but the image.", "",
        "| sigma | " + " | ".join(keys) + " | MAP default - BM3D default (dB) |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for r in rows:
        cells = [f"{r[k]['psnr']:.2f} / {r[k]['ssim']:.3f}" for k in keys]
        lines.append(f"| {r['sigma']:g} | " + " | ".join(cells) + f" | {r['map, default']['psnr'] - r['bm3d, default']['psnr']:+.2f} |")
    lines += ["", "Seconds per image (CPU wall clock, mean over planes): " + "; ".join(
        f"sigma {r['sigma']:g}: " + ", ".join(f"{k} {r[k]['seconds']:.1f}" for k in keys[1:]) for r in rows) + ".", "",
        f"![rows: sigma; columns: clean, noisy, NLM tuned, BM3D, MAP default]({args.name}.png)", ""]
    (args.out / f"{args.name}.md").write_text("\n".join(lines))
    skimage.io.imsave(args.out / f"{args.name}.png", skimage.util.img_as_ubyte(np.clip(np.concatenate(figure), 0, 1)),
                      check_contrast=False)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
