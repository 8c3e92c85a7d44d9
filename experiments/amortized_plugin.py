"""Benchmark plug-in: the trained amortised checkpoints as methods of ``usprior bench``.

Registers, for every checkpoint directory that exists (``checkpoints/`` by default, or the
folder in ``USPRIOR_MODELS``):

* ``ffdnet`` (``ffdnet_us``) and ``ffdnet_wnnm`` (``ffdnet_wnnm``, trained on WNNM outputs):
  the noise-level map is the tuned parameter, in multiples of the level's noise std (the units
  FFDNet was trained with);
* ``unrolled`` (``unrolled_us``): the likelihood sigma = 1 x the noise std, as in training;
* ``pix2pix`` (``pix2pix_us``): no parameter;
* ``wnnm_teacher``: WNNM exactly as it labelled ``ffdnet_wnnm``'s training pairs
  (sigma = 4 x the noise std, ``train_amortized.py --teacher wnnm --teacher-scale 4``), so the
  student can be compared with its teacher on the same inputs.

All go through ``usprior.denoise(image, method=..., checkpoint=...)``. Used by docs/amortized.md:

    PYTHONPATH=experiments usprior bench --import amortized_plugin --methods ffdnet pix2pix unrolled ...
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from usprior import baselines, denoise
from usprior.eval.benchmark import register
from usprior.io.checkpoints import default_checkpoint

FOLDER = Path(os.environ.get("USPRIOR_MODELS", default_checkpoint().parent))
MODELS = {  # benchmark name: (method, checkpoint directory name, grid of sigma in noise stds)
    "ffdnet": ("ffdnet", "ffdnet_us", (0.5, 1.0, 2.0)),
    "ffdnet_wnnm": ("ffdnet", "ffdnet_wnnm", (0.5, 1.0, 2.0)),
    "unrolled": ("unrolled", "unrolled_us", (1.0,)),
    "pix2pix": ("pix2pix", "pix2pix_us", ()),
}


def _method(method: str, checkpoint: Path):
    def run(image: np.ndarray, **params: float) -> np.ndarray:
        return denoise(image, method=method, checkpoint=checkpoint, **params)

    return run


for name, (method, directory, sigmas) in MODELS.items():
    if (FOLDER / directory).is_dir():
        grid = {"sigma": sigmas} if sigmas else {}
        register(name, _method(method, FOLDER / directory), grid, noise_scaled=tuple(grid))

register("wnnm_teacher", baselines.wnnm, {"sigma": (4.0,)}, noise_scaled=("sigma",))
