"""Can any despeckler reach structure leakage <= 0.20 on a real frame? Its own anatomy and noise law.

Structure leakage (:func:`usprior.eval.metrics.structure_leakage`) correlates the residual's local
variance with the input's edge strength. If the noise std of a frame grows with its brightness,
a perfect despeckler's residual (the noise itself) is larger where the tissue is bright, and
bright tissue is where the edges are: the metric then reads the noise law as structure. This
experiment measures, on each real example (frame 0, its ``bmode_mask`` on gray pixels, as
experiments/real_data.py):

1. a reference estimate x of the speckle-free frame: BM3D at its defaults through
   :func:`usprior.scanner.denoise.denoise_scan`;
2. the frame's noise law: over 11 x 11 windows inside the mask (eroded by 6 px) with local mean
   m > 0.02, a least-squares fit of log std(y - x) = log a + p log m: p = 0 is a constant std
   (log-compressed speckle), p = 0.5 the sqrt law of ``u = v + sqrt(v) eta``, p = 1 multiplicative;
   and the residual's grain: its lag-1 autocorrelation along rows and columns, rho, matched by a
   Gaussian filter of std s = sqrt(-1 / (4 ln rho)) of white noise;
3. re-simulated frames y_k = clip(x + n_k, 0, 1) with n_k that grain and (a) the fitted law,
   std a m^p, (b) a constant std equal to the law's mean over the mask; seeds 0-2. The oracle
   (the despeckler that returns x exactly) scores structure_leakage(y_k, x, mask).

The oracle's leakage in (a) is what a perfect despeckler scores on that anatomy with that noise;
in (b), what it would score if the same frame were displayed with a constant-std (log) mapping.
Both are also scored with :func:`usprior.eval.metrics.noise_law_leakage` (the residual's local
variance relative to the law fitted in homogeneous tissue), next to a despeckler that removes
structure: a Gaussian blur of 2 px of the re-simulated frame (a).
Nothing is trained or tuned. Writes docs/results/<name>.{md,json} (default leakage_noise_law);
the real methods' own leakage and noise-law leakage are copied from
docs/results/real_data_noise_law.json when it exists.

    python experiments/leakage_noise_law.py
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

import usprior
from usprior.eval import metrics
from usprior.eval.benchmark import device_name
from usprior.io.examples import example_path
from usprior.io.scans import read_scan
from usprior.scanner.denoise import denoise_scan
from usprior.scanner.mask import bmode_mask, gray_pixels

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("ybr_color", "sonosite_cine", "rgb_color", "epiq", "aloka")
MEASURED = ROOT / "docs" / "results" / "real_data_noise_law.json"  # the methods' scores on the real frames
WINDOW = 11
ERODE = 6
MIN_MEAN = 0.02
SEEDS = (0, 1, 2)


def noise_law(noisy: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(a, p) of std(y - x) = a m^p, fitted over the WINDOW-px windows of the eroded mask."""
    mean = metrics.local_moments(reference, WINDOW)[0]
    std = np.sqrt(metrics.local_moments(noisy - reference, WINDOW)[1])
    inside = ndi.binary_erosion(mask, iterations=ERODE) & (mean > MIN_MEAN) & (std > 0)
    p, log_a = np.polyfit(np.log(mean[inside]), np.log(std[inside]), 1)
    return float(np.exp(log_a)), float(p)


def grain(residual: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Gaussian-filter stds (rows, cols) whose filtered white noise has the residual's lag-1
    autocorrelations inside the mask."""
    r = np.where(mask, residual - residual[mask].mean(), 0.0)
    power = np.abs(np.fft.fft2(r)) ** 2
    auto = np.fft.ifft2(power).real
    rho = np.clip([auto[1, 0] / auto[0, 0], auto[0, 1] / auto[0, 0]], 1e-3, 0.99)
    return tuple(float(np.sqrt(-1.0 / (4.0 * np.log(v)))) for v in rho)


BLUR_PX = 2.0


def resimulated(reference: np.ndarray, std: np.ndarray, sigmas: tuple[float, float], seed: int) -> np.ndarray:
    """clip(x + std * eta, 0, 1), eta white noise filtered to the residual's grain, unit std."""
    eta = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(reference.shape), sigmas)
    return np.clip(reference + std * eta / eta.std(), 0.0, 1.0)


def leakages(noisy: np.ndarray, denoised: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(structure_leakage, noise_law_leakage) of one output."""
    return (metrics.structure_leakage(noisy, denoised, mask), metrics.noise_law_leakage(noisy, denoised, mask))


def run(images: list[str]) -> dict:
    real = json.loads(MEASURED.read_text())["images"] if MEASURED.exists() else {}
    frames = {}
    for name in images:
        scan = read_scan(example_path(name)).take(slice(1))
        mask = bmode_mask(scan)
        inside = mask & gray_pixels(scan).all(axis=0)
        y = scan.frames[0].astype(np.float64)
        x = denoise_scan(scan, usprior.make_denoiser("bm3d"), mask).frames[0].astype(np.float64)
        a, p = noise_law(y, x, inside)
        sigmas = grain(y - x, inside)
        law = a * np.clip(x, MIN_MEAN, 1.0) ** p
        constant = np.full_like(x, law[inside].mean())
        by_law = [resimulated(x, law, sigmas, s) for s in SEEDS]
        by_constant = [resimulated(x, constant, sigmas, s) for s in SEEDS]
        scored = {"oracle_law": [leakages(y_k, x, inside) for y_k in by_law],
                  "oracle_constant": [leakages(y_k, x, inside) for y_k in by_constant],
                  "blur_law": [leakages(y_k, ndi.gaussian_filter(y_k, BLUR_PX), inside) for y_k in by_law]}
        entry = {"shape": list(scan.shape), "law_a": a, "law_p": p, "grain_sigma_px": list(sigmas),
                 **{key: [v[0] for v in values] for key, values in scored.items()},
                 **{f"{key}_normalized": [v[1] for v in values] for key, values in scored.items()},
                 "methods_on_real_frame": {m: [r["leakage"], r["leakage_law"]]
                                           for m, r in real.get(name, {}).get("methods", {}).items()}}
        frames[name] = entry
        print(name, f"p {p:.2f}", *(f"{k} {np.mean(entry[k]):.2f} / {np.mean(entry[k + '_normalized']):.2f}" for k in scored),
              flush=True)
    return frames


def markdown(results: dict) -> str:
    frames = results["frames"]
    methods = sorted({m for e in frames.values() for m in e["methods_on_real_frame"]})
    lines = ["# Structure leakage of a perfect despeckler on each real frame's anatomy and noise law", "",
             f"Generated by `{results['command']}` on {results['device']}. Reference x = BM3D of frame 0; "
             "noise law std(y - x) = a m^p fitted over 11 x 11 windows of the mask; the frame re-simulated "
             "as x + noise of the residual's grain, (a) with that law, (b) with a constant std of the same "
             "mean; the oracle returns x. Mean (min-max) over seeds 0-2. The right-hand columns are the "
             "real methods' leakage / noise-law leakage on the real frame (docs/results/real_data_noise_law.json, mean over "
             "the frames scored). The real-data issues ask for leakage <= 0.20.", "",
             "| frame | noise law p | grain (px) | oracle, the frame's law | oracle, constant std | "
             + " | ".join(methods) + " |",
             "|---" * (5 + len(methods)) + "|"]
    for name, e in frames.items():
        cells = [_spread(e["oracle_law"]), _spread(e["oracle_constant"])]
        real = [" / ".join(f"{v:.2f}" for v in e["methods_on_real_frame"][m]) if m in e["methods_on_real_frame"] else ""
                for m in methods]
        lines.append(f"| {name} | {e['law_p']:.2f} | {e['grain_sigma_px'][0]:.2f} x {e['grain_sigma_px'][1]:.2f} | "
                     + " | ".join(cells + real) + " |")
    lines += ["", "## The same frames scored with `noise_law_leakage`", "",
              "structure_leakage / noise_law_leakage, mean (min-max) over the seeds; the blur (a Gaussian of "
              f"{BLUR_PX:g} px of the frame re-simulated with its law) removes structure as well as noise.", "",
              "| frame | oracle, the frame's law | oracle, constant std | 2 px blur, the frame's law |", "|---|---|---|---|"]
    for name, e in frames.items():
        cells = [f"{_spread(e[k])} / {_spread(e[k + '_normalized'])}" for k in ("oracle_law", "oracle_constant", "blur_law")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=list(IMAGES), choices=IMAGES)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--name", default="leakage_noise_law")
    args = parser.parse_args()
    results = {"command": shlex.join(["python", "experiments/leakage_noise_law.py", *sys.argv[1:]]),
               "device": device_name(), "frames": run(args.images)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(results))
    print(f"wrote {args.out / (args.name + '.md')}")


if __name__ == "__main__":
    main()
