"""Benchmark plug-in: the trained FFDNet checkpoint as a method ``ffdnet`` of ``usprior bench``.

The noise-level map is the method's tuned parameter (multiples of the level's noise std, the
units FFDNet was trained with). Used by docs/amortized.md:

    PYTHONPATH=experiments usprior bench --import ffdnet_plugin --methods ffdnet frost wnnm bm3d ...

``USPRIOR_FFDNET`` overrides the checkpoint directory (default ``checkpoints/ffdnet_us``).
"""

from __future__ import annotations

import os

import numpy as np

from usprior.amortized import ffdnet_denoise, load_model
from usprior.benchmark import register

CHECKPOINT = load_model(os.environ.get("USPRIOR_FFDNET", "checkpoints/ffdnet_us"), kind="ffdnet")


def ffdnet(image: np.ndarray, sigma: float) -> np.ndarray:
    """The shipped FFDNet with a uniform noise map ``sigma``."""
    return ffdnet_denoise(CHECKPOINT.variables, CHECKPOINT.config, image, sigma)


register("ffdnet", ffdnet, {"sigma": (0.5, 1.0, 2.0)}, noise_scaled=("sigma",))
