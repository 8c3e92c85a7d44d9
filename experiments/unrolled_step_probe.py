"""Unrolled MAP against full MAP: validation patches and whole held-out images.

Patches: those that validate ``train_amortized.py unrolled``, 32x32 patches of the first two
sagittal 'validation' slices under convolutional B-mode speckle at 40, 50 and 60 dB (16 per
noisy image, seed 1), Gaussian likelihood with sigma = each image's noise std; rows: the
trained schedule, the same K Adam steps at the untrained (initial) schedule, and full latent
MAP (100 Adam steps with plateau decay, the best iterate) at lambda 96, the benchmark's
B-mode lambda, from the same start. Whole images: held-out sagittal 'test' slice 0 at the same
levels, sigma = the noise std given to every method: unrolled MAP, full latent MAP (lambda 96),
the default MAP (global objective from BM3D) and BM3D. Scores are PSNR (dB) against the
speckle-free targets (pooled over the patches). Writes ``docs/results/unrolled_step_probe.{json,md}``.

    python experiments/unrolled_step_probe.py
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import usprior
from usprior.amortized import clean_teacher, load_model, make_pairs
from usprior.eval.benchmark import device_name
from usprior.eval.metrics import psnr
from usprior.physics import simulate
from usprior.physics.likelihoods import Gaussian
from usprior.priors import data
from usprior.priors.flow import load_prior
from usprior.solvers.map import MAPConfig, solve_patches
from usprior.solvers.unrolled import UnrolledConfig, init_unrolled, patch_start, unrolled_patches

PATCHES_PER_IMAGE = 16
LEVELS = (40.0, 50.0, 60.0)
FULL_LAM = 96.0
OUT = Path(__file__).resolve().parents[1] / "docs" / "results"


def patch_rows(prior, model) -> dict[str, float]:
    """Pooled PSNR on the validation patches, one noisy image's patches (one likelihood) at a time."""
    corrupt = simulate.NOISE_MODELS["convolutional"].corrupt
    val = make_pairs(data.sagittal_slices("validation")[:2], corrupt, clean_teacher, LEVELS,
                     patch=32, patches_per_image=PATCHES_PER_IMAGE, seed=1)
    cfg: UnrolledConfig = model.config

    def score(denoiser) -> float:
        squared_error = 0.0
        for start in range(0, len(val.noisy), PATCHES_PER_IMAGE):
            rows = slice(start, start + PATCHES_PER_IMAGE)
            x = denoiser(jnp.asarray(val.noisy[rows]), Gaussian(float(val.sigma[rows][0])))
            squared_error += float(np.sum(np.square(np.asarray(x) - val.target[rows])))
        return round(10 * math.log10(val.target.size / squared_error), 2)

    unrolled = lambda p: lambda y, lik: unrolled_patches(p, cfg, prior, lik, y, patch_start(prior, y, cfg.init_blur))
    full = MAPConfig(steps=100)
    return {
        "noisy": score(lambda y, lik: y),
        f"unrolled, trained ({cfg.steps} steps)": score(unrolled(model.variables["params"])),
        f"unrolled, initial schedule ({cfg.steps} Adam steps, lr {cfg.init_lr:g}, lambda {cfg.init_lam:g})":
            score(unrolled(init_unrolled(cfg))),
        f"full latent MAP (100 Adam steps, lambda {FULL_LAM:g})": score(
            lambda y, lik: solve_patches(y, patch_start(prior, y, cfg.init_blur), prior, lik, jnp.float32(FULL_LAM), full).x
        ),
    }


def image_rows() -> list[dict]:
    """PSNR and seconds per method on the held-out test slice at each level (sigma given)."""
    clean = data.sagittal_slices("test")[0]
    methods = {
        "unrolled": {"method": "unrolled"},
        f"full latent MAP (lambda {FULL_LAM:g})": {"method": "map_latent", "lam": FULL_LAM},
        "MAP default (global from BM3D)": {"method": "map"},
        "BM3D": {"method": "bm3d"},
    }
    rows = []
    for level in LEVELS:
        noisy, target = simulate.NOISE_MODELS["convolutional"].corrupt(clean, level, 0)
        sigma = simulate.noise_std(noisy, target)
        row = {"level_db": level, "sigma": round(sigma, 4), "noisy": round(psnr(target, noisy), 2)}
        for name, options in methods.items():
            t0 = time.perf_counter()
            out = usprior.denoise(noisy, sigma=sigma, **options)
            row[name] = round(psnr(target, out), 2)
            row[f"{name} s"] = round(time.perf_counter() - t0, 1)
            print(row, flush=True)
        rows.append(row)
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Unrolled MAP against full MAP ({result['meta']['device']})", "",
             f"`{result['meta']['command']}`; PSNR in dB against the speckle-free targets.", "",
             "## Validation patches (pooled)", "", "| estimator | PSNR |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in result["patches"].items()]
    images = result["images"]
    names = [k for k in images[0] if k not in ("level_db", "sigma") and not k.endswith(" s")]
    lines += ["", "## Held-out sagittal test slice 0 (233x189), sigma = the noise std", "",
              "| level (dB) | sigma | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for r in images:
        lines.append(f"| {r['level_db']:g} | {r['sigma']:.3f} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |")
    timed = [n for n in names if n != "noisy"]
    lines += ["", "Seconds per image (first call includes compilation): " + "; ".join(
        f"{n} {np.mean([r[n + ' s'] for r in images]):.1f}" for n in timed) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    prior = load_prior()
    model = load_model("unrolled_us", kind="unrolled")
    result = {
        "meta": {"command": "python experiments/unrolled_step_probe.py", "device": device_name(),
                 "steps": model.config.steps, "patches": 2 * len(LEVELS) * PATCHES_PER_IMAGE},
        "patches": patch_rows(prior, model),
        "images": image_rows(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "unrolled_step_probe.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "unrolled_step_probe.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
