"""Probes behind the "Speckle-aware MAP" notes of docs/ultrasound.md (tuning slice only).

On the sagittal 'tune' slice, with the benchmark's seeds (image index 999 of level 0):

* lambda beyond the benchmark grid on 40 dB convolutional speckle, for both likelihoods
  (sigma = the rms noise std, as in the benchmark);
* the log-speckle likelihood's sigma on log_speckle noise (sigma 0.1): the rms noise std that
  the benchmark passes versus the model's own sigma, over lambda in {0.375, 1.5, 6}.

Writes docs/results/map_speckle_probes.json (PSNR / SSIM per setting, device).

    python experiments/map_speckle_probes.py
"""

from __future__ import annotations

import json
from pathlib import Path

from usprior.priors import data
from usprior.eval import metrics
from usprior.physics import simulate
from usprior.api import denoise
from usprior.eval.benchmark import device_name


def scores(noisy, target, likelihood: str, sigma: float, lam: float) -> dict[str, float]:
    est = denoise(noisy, method="map_latent", likelihood=likelihood, sigma=sigma, lam=lam)
    return {"likelihood": likelihood, "sigma": sigma, "lam": lam,
            "psnr": metrics.psnr(target, est), "ssim": metrics.ssim(target, est)}


def main() -> None:
    x = data.sagittal_slices("tune")[0]
    rows = []
    noisy, target = simulate.NOISE_MODELS["convolutional"].corrupt(x, 40.0, 999)
    std = simulate.noise_std(noisy, target)
    for likelihood, lams in (("log_speckle", (96.0, 384.0, 1536.0)), ("gaussian", (96.0, 384.0))):
        rows += [{"noise": "convolutional 40 dB", **scores(noisy, target, likelihood, std, lam)} for lam in lams]
    noisy, target = simulate.NOISE_MODELS["log_speckle"].corrupt(x, 0.1, 999)
    std = simulate.noise_std(noisy, target)
    for sigma in (std, 0.1):
        rows += [{"noise": "log_speckle 0.1", **scores(noisy, target, "log_speckle", sigma, lam)} for lam in (0.375, 1.5, 6.0)]
    for r in rows:
        print(r)
    out = {"command": "python experiments/map_speckle_probes.py", "device": device_name(), "rows": rows}
    Path("docs/results/map_speckle_probes.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
