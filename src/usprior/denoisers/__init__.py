"""Every denoiser behind one interface, ``den(frames, *, sigma=None)``, and one registry.

* :mod:`~usprior.denoisers.base` — :class:`Denoiser`, :func:`register_denoiser`,
  :func:`make_denoiser` and the registry.
* :mod:`~usprior.denoisers.flow` — ``map`` (latent MAP with the flow prior) and ``unrolled``.
* :mod:`~usprior.denoisers.networks` — ``ffdnet`` (noise-level map) and ``pix2pix``.
* :mod:`~usprior.denoisers.classical` — ``nlm``, ``tv``, ``bm3d``, ``lee``, ``kuan``, ``frost``,
  ``srad``, ``obnlm``, ``wnnm``.

The built-ins are registered below by import path (loaded on first use), each with the tuning
grid of ``usprior bench``: values of names in ``noise_scaled`` are multiples of the noise std.
"""

from collections.abc import Mapping
from types import MappingProxyType

from usprior.denoisers.base import (
    CallableDenoiser,
    Denoiser,
    DenoiserEntry,
    FunctionDenoiser,
    denoiser_entry,
    denoiser_names,
    denoiser_options,
    function_factory,
    import_plugins,
    make_denoiser,
    register_denoiser,
    unregister_denoiser,
)

__all__ = [
    "DEFAULT_LAM",
    "CallableDenoiser",
    "Denoiser",
    "DenoiserEntry",
    "FunctionDenoiser",
    "denoiser_entry",
    "denoiser_names",
    "denoiser_options",
    "function_factory",
    "import_plugins",
    "make_denoiser",
    "register_denoiser",
    "unregister_denoiser",
]

DEFAULT_LAM: Mapping[str, float] = MappingProxyType({"latent": 1.0, "global": 0.25})
"""Default prior weight of MAP per objective, calibrated on the sagittal validation band: latent
MAP's weight of ||z||^2 (docs/results/calibrate_map.md: best of 0.375, 1 and 2 at sigma 0.1 and
0.2, +1.5 and +3.3 dB over the MRI-prior paper's 0.375) and the global objective's, refining a
BM3D start (docs/results/map_settings.md); see :mod:`usprior.denoisers.flow`."""

_LAM_GRID = tuple(0.375 * 4.0**k for k in range(5))  # the benchmark's grid: 0.375 ... 96
_DOUBLING = (1.0, 2.0, 4.0, 8.0, 16.0)  # noise-scaled grids: white noise wants ~1, correlated speckle 4-16
_WINDOWS = (5, 9, 17, 33)
_CLASSICAL = "usprior.denoisers.classical:"

_LATENT = {"objective": "latent", "start": "blur"}
register_denoiser("map", "usprior.denoisers.flow:MAPDenoiser", grid={"sigma": (1.0,), "lam": _LAM_GRID},
                  noise_scaled=("sigma",), description="MAP with the Glow patch prior: the global objective from BM3D")
register_denoiser("map_latent", "usprior.denoisers.flow:MAPDenoiser", presets=_LATENT,
                  grid={"sigma": (1.0,), "lam": _LAM_GRID}, noise_scaled=("sigma",),
                  description="latent MAP, independent patches from the smoothed observation")
register_denoiser("map_bmode", "usprior.denoisers.flow:MAPDenoiser", presets={"start": "ffdnet", "noise": "speckle"},
                  grid={"sigma": (1.0,), "lam": _LAM_GRID}, noise_scaled=("sigma",),
                  description="MAP for B-mode frames: the global objective from FFDNet, sigma = the speckle estimate")
register_denoiser("map_log_speckle", "usprior.denoisers.flow:MAPDenoiser", presets={"likelihood": "log_speckle", **_LATENT},
                  grid={"sigma": (1.0,), "lam": _LAM_GRID}, noise_scaled=("sigma",),
                  description="latent MAP with the log-speckle likelihood")
register_denoiser("unrolled", "usprior.denoisers.flow:UnrolledDenoiser", grid={"sigma": (1.0,)}, noise_scaled=("sigma",),
                  description="unrolled MAP: K learned steps on the flow prior")
# the scanner FFDNet's map is the speckle estimate, 1-3.4x the rms noise std on simulated slices:
# on (0.5, 1, 2) the benchmark tuned it to the grid's edge (2) at both levels of the convolutional setting
register_denoiser("ffdnet", "usprior.denoisers.networks:FFDNetDenoiser", grid={"sigma": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)},
                  noise_scaled=("sigma",), description="FFDNet, one pass, noise-level map")
register_denoiser("ffdnet_wnnm", "usprior.denoisers.networks:FFDNetDenoiser", presets={"checkpoint": "ffdnet_wnnm"},
                  grid={"sigma": (0.5, 1.0, 2.0)}, noise_scaled=("sigma",), description="FFDNet trained on WNNM outputs")
register_denoiser("pix2pix", "usprior.denoisers.networks:Pix2PixDenoiser", description="Pix2Pix U-Net, one pass")
register_denoiser("nlm", _CLASSICAL + "nlm", grid={"h": _DOUBLING}, noise_scaled=("h",), description="non-local means")
register_denoiser("tv", _CLASSICAL + "tv", grid={"weight": (0.5, *_DOUBLING)}, noise_scaled=("weight",),
                  description="total variation (Chambolle)")
register_denoiser("bm3d", _CLASSICAL + "bm3d", grid={"sigma": _DOUBLING}, noise_scaled=("sigma",), description="BM3D")
register_denoiser("lee", _CLASSICAL + "lee", grid={"window": _WINDOWS}, description="Lee filter")
register_denoiser("kuan", _CLASSICAL + "kuan", grid={"window": _WINDOWS}, description="Kuan filter")
register_denoiser("frost", _CLASSICAL + "frost", grid={"window": (5, 9, 17), "damping": (0.25, 1.0, 4.0)},
                  description="Frost filter")
register_denoiser("srad", _CLASSICAL + "srad", grid={"iterations": (24, 96, 384), "rho": (2.0 / 3.0, 1.0 / 6.0, 0.0)},
                  description="speckle reducing anisotropic diffusion")
register_denoiser("obnlm", _CLASSICAL + "obnlm", grid={"h": _DOUBLING}, noise_scaled=("h",),
                  description="optimised Bayesian NLM (Pearson distance)")
register_denoiser("wnnm", _CLASSICAL + "wnnm", grid={"sigma": _DOUBLING}, noise_scaled=("sigma",),
                  description="weighted nuclear norm minimisation")
