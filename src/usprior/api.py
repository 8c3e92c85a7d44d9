"""The one-call API: ``usprior.denoise(image, method=..., **options)``.

A thin wrapper over the registry (:mod:`usprior.denoisers`): validate once, look up, call, clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from usprior.denoisers import make_denoiser


def denoise(image: object, method: str = "map", *, sigma: object = None, **options: Any) -> np.ndarray:
    """Denoise a grayscale image (H, W) or a cine stack (T, H, W); float32 of the same shape in [0, 1].

    ``image``: float in [0, 1] or integers of 8- or 16-bit range (:mod:`usprior.validation`);
    methods for additive noise (Gaussian MAP, NLM, TV, BM3D) take any finite float as it comes;
    (H, W, 1) is one image. ``method``: a registered denoiser (``usprior.denoiser_names()``):
    ``"map"`` (MAP with the flow prior: the global patch-prior objective from BM3D's estimate),
    ``"map_latent"`` (latent MAP, independent patches), ``"unrolled"``, ``"ffdnet"``,
    ``"pix2pix"``, the baselines ``"nlm"``, ``"bm3d"``, ``"wnnm"``, ... or one added with
    :func:`usprior.register_denoiser`. ``sigma``: the noise level (for FFDNet also a per-pixel
    map), None for the method's default. ``options``: the method's options, e.g. ``likelihood``,
    ``objective``, ``lam``, ``start``, ``global_steps``, ``steps``, ``checkpoint``, ``progress``
    for ``"map"``; ``checkpoint``, ``batch`` for ``"ffdnet"`` (see each denoiser's docstring).
    An option the method does not take raises ``ValueError`` listing the valid ones.

    Cine: ``"map_latent"`` warm-starts every frame after the first from the previous frame's
    latents; ``"map"`` solves each frame from its own start; the networks run ``batch`` frames
    per pass. Every built-in method is deterministic (BM3D, and so ``"map"``, to float rounding).
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D (H, W) or a stack of frames (T, H, W), got shape {arr.shape}")
    single = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 1)
    frames = arr.reshape(1, *arr.shape[:2]) if single else arr
    out = make_denoiser(method, **options)(frames, sigma=sigma)
    return out[0] if single else out
