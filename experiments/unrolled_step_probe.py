"""Unrolled MAP on validation patches: the trained schedule vs constant step sizes / lambdas,
and full MAP (100 Adam steps) on the same patches.

The data are those that validate ``train_amortized.py unrolled``: 32x32 patches of the first
two sagittal 'validation' slices under convolutional B-mode speckle at 40, 50 and 60 dB (16
per noisy image, seed 1), Gaussian likelihood with sigma = each image's noise std. Scores are
pooled PSNR (dB) against the speckle-free targets. Writes
``docs/results/unrolled_step_probe.json``.

    python experiments/unrolled_step_probe.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from usprior.priors import data
from usprior.physics import simulate
from usprior.amortized import clean_teacher, load_model, make_pairs
from usprior.solvers.unrolled import UnrolledConfig, patch_start, unrolled_patches
from usprior.eval.benchmark import device_name
from usprior.priors.flow import load_prior
from usprior.physics.likelihoods import Gaussian
from usprior.solvers.map import MAPConfig, solve_patches

PATCHES_PER_IMAGE = 16


def main() -> None:
    prior = load_prior()
    corrupt = simulate.NOISE_MODELS["convolutional"].corrupt
    val = make_pairs(data.sagittal_slices("validation")[:2], corrupt, clean_teacher, [40.0, 50.0, 60.0],
                     patch=32, patches_per_image=PATCHES_PER_IMAGE, seed=1)

    def score(denoiser) -> float:
        """Pooled PSNR of denoiser(y_patches, likelihood), one noisy image's patches at a time."""
        squared_error = 0.0
        for start in range(0, len(val.noisy), PATCHES_PER_IMAGE):
            rows = slice(start, start + PATCHES_PER_IMAGE)
            x = denoiser(jnp.asarray(val.noisy[rows]), Gaussian(float(val.sigma[rows][0])))
            squared_error += float(np.sum(np.square(np.asarray(x) - val.target[rows])))
        return round(10 * math.log10(val.target.size / squared_error), 2)

    model = load_model("unrolled_us", kind="unrolled")
    cfg: UnrolledConfig = model.config
    unrolled = lambda p: lambda y, lik: unrolled_patches(p, cfg, prior, lik, y, patch_start(prior, y, cfg.init_blur))
    constant = lambda lr, lam: {"log_lr": jnp.full((cfg.steps,), math.log(lr)), "log_lam": jnp.full((cfg.steps,), math.log(lam))}
    rows = {"noisy": score(lambda y, lik: y), "trained schedule": score(unrolled(model.variables["params"]))}
    for lam in (96.0, 384.0):
        for lr in (0.005, 0.02, 0.05, 0.1):
            rows[f"constant lr {lr:g}, lambda {lam:g}"] = score(unrolled(constant(lr, lam)))
            print(rows, flush=True)
    full = MAPConfig(steps=100)
    rows["full MAP, 100 Adam steps, lambda 96"] = score(
        lambda y, lik: solve_patches(y, patch_start(prior, y, cfg.init_blur), prior, lik, jnp.float32(96.0), full).x
    )
    out = {"meta": {"command": "python experiments/unrolled_step_probe.py", "device": device_name(),
                    "steps": cfg.steps, "patches": len(val.noisy)}, "pooled_psnr_db": rows}
    Path("docs/results/unrolled_step_probe.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
