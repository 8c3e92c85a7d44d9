"""Running a trained amortised checkpoint on a stack of frames, (T, H, W) -> (T, H, W).

What the noise level ``sigma`` means per model kind:

* ``ffdnet``: the level of the (uniform) noise-level map, in the noise-std units the model
  was trained with; the denoising-strength knob. Default: the median noise std of the
  model's training pairs (``metadata["sigma_median"]``).
* ``unrolled``: the sigma of the likelihood the steps descend, ``metadata["likelihood"]``;
  default ``metadata["sigma_scale"] * metadata["sigma_median"]``, as in training. The flow
  prior is the checkpoint named by ``metadata["prior"]`` in the model's parent folder (so
  ``checkpoints/unrolled_us`` names ``checkpoints/glow_mri``); none named: the shipped prior.
* ``pix2pix``: none (the generator has no noise-level input); passing one is an error.

FFDNet and Pix2Pix run ``batch`` frames per forward pass (the last batch padded by repeating
its last frame, so every call has one static shape); unrolled MAP runs frame by frame, each
frame already a vmapped batch of patches.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from usprior.amortized.checkpoint import AmortizedCheckpoint, load_model
from usprior.amortized.ffdnet import ffdnet_apply
from usprior.amortized.pix2pix import pix2pix_apply
from usprior.amortized.unrolled import unrolled_denoise
from usprior.checkpoint import default_checkpoint, get_prior
from usprior.likelihoods import Likelihood, make_likelihood
from usprior.prior import FlowPrior
from usprior.validation import check_int, check_positive

DEFAULT_MODELS = {"ffdnet": "ffdnet_us", "pix2pix": "pix2pix_us", "unrolled": "unrolled_us"}
"""The shipped checkpoint (a directory name in ``checkpoints/``) of each amortised method."""


def default_model_dir(kind: str) -> Path:
    """``<repo>/checkpoints/<DEFAULT_MODELS[kind]>`` (next to the shipped prior)."""
    if kind not in DEFAULT_MODELS:
        raise ValueError(f"no amortised model kind {kind!r}; choose one of {sorted(DEFAULT_MODELS)}")
    return default_checkpoint().parent / DEFAULT_MODELS[kind]


@functools.lru_cache(maxsize=8)
def _cached_model(path: Path, kind: str) -> AmortizedCheckpoint:
    return load_model(path, kind=kind)


def get_model(kind: str, directory: str | os.PathLike | None = None) -> AmortizedCheckpoint:
    """Load (and cache) the ``kind`` model in ``directory``; default :func:`default_model_dir`."""
    path = Path(directory) if directory is not None else default_model_dir(kind)
    return _cached_model(path.resolve(), kind)


def _metadata_float(model: AmortizedCheckpoint, key: str) -> float:
    if key not in model.metadata:
        raise ValueError(f"the {model.kind} checkpoint records no {key!r}; pass sigma explicitly")
    return float(model.metadata[key])


def _frame_batches(fn: Callable[[np.ndarray], Any], frames: np.ndarray, batch: int) -> np.ndarray:
    """Apply ``fn`` (n, H, W, 1) -> (n, H, W, 1) to ``frames`` (T, H, W) in batches of
    min(batch, T) frames, the last batch padded by repeating its last frame."""
    size = min(batch, len(frames))
    out = []
    for start in range(0, len(frames), size):
        chunk = frames[start : start + size]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
        out.append(np.asarray(fn(padded[..., None]))[: len(chunk), ..., 0])
    return np.concatenate(out)


def unrolled_likelihood(
    model: AmortizedCheckpoint, likelihood: str | Likelihood | None, sigma: float | None
) -> Likelihood:
    """The likelihood an unrolled model descends: ``likelihood`` (default the trained one) with
    ``sigma`` (default ``sigma_scale * sigma_median`` from the checkpoint)."""
    if sigma is None:
        sigma = _metadata_float(model, "sigma_scale") * _metadata_float(model, "sigma_median")
    return make_likelihood(likelihood or model.metadata.get("likelihood", "gaussian"), sigma=sigma)


def unrolled_prior(model: AmortizedCheckpoint) -> FlowPrior:
    """The flow prior named by ``metadata["prior"]``, a sibling directory of the model's;
    the shipped prior when none is named (or the model was not loaded from disk)."""
    name = model.metadata.get("prior")
    if name is None or model.directory is None:
        return get_prior()
    return get_prior(model.directory.parent / name)


def run_model(
    model: AmortizedCheckpoint,
    frames: np.ndarray,
    sigma: float | None = None,
    likelihood: str | Likelihood | None = None,
    batch: int = 16,
    stride: int | None = None,
) -> np.ndarray:
    """Denoise ``frames`` (T, H, W) float32 in [0, 1] with ``model``; float32 (T, H, W) in [0, 1].

    ``sigma``: see the module docstring; ``likelihood``: unrolled only (default: the trained
    one); ``batch``: frames per forward pass (FFDNet, Pix2Pix); ``stride``: unrolled patch
    stride (default half the prior's patch size, 16, as for MAP). Options a model kind does not have raise ``ValueError``.
    """
    batch = check_int(batch, "batch")
    if sigma is not None:
        sigma = check_positive(sigma, "sigma")
    if model.kind != "unrolled" and (likelihood is not None or stride is not None):
        raise ValueError(f"likelihood and stride are options of 'unrolled' and 'map', not of {model.kind!r}")
    if model.kind == "pix2pix":
        if sigma is not None:
            raise ValueError("pix2pix has no noise-level input: leave sigma at None")
        return _frame_batches(lambda y: pix2pix_apply(model.variables, model.config, y), frames, batch)
    if model.kind == "ffdnet":
        level = np.float32(sigma if sigma is not None else _metadata_float(model, "sigma_median"))
        return _frame_batches(lambda y: ffdnet_apply(model.variables, model.config, y, level), frames, batch)
    lik = unrolled_likelihood(model, likelihood, sigma)
    prior = unrolled_prior(model)
    params = model.variables["params"]
    return np.stack(
        [unrolled_denoise(params, model.config, f, prior, lik, stride=stride or prior.config.patch // 2) for f in frames]
    )
