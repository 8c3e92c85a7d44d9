"""usprior: ultrasound despeckling as a probabilistic inverse problem with a Glow patch prior.

Main entry points:

* :func:`denoise` — denoise an image (H, W) or a cine stack (T, H, W) by MAP, unrolled MAP,
  Pix2Pix or FFDNet (numpy in, numpy out, float in [0, 1]).
* :func:`load_prior` / :class:`FlowPrior` — the Glow prior (also as a distrax distribution).
* :mod:`usprior.likelihoods` — observation models p(y | x), selectable by name.
* :func:`map_denoise` — the latent MAP solver with full diagnostics.
"""

from usprior.api import DEFAULT_LAM, denoise, get_prior
from usprior.checkpoint import load_prior, save_prior
from usprior.glow import GlowConfig
from usprior.likelihoods import LIKELIHOODS, make_likelihood
from usprior.prior import FlowPrior, GlowBijector, init_prior
from usprior.solvers import MAPConfig, MAPResult, map_denoise

__all__ = [
    "DEFAULT_LAM",
    "LIKELIHOODS",
    "FlowPrior",
    "GlowBijector",
    "GlowConfig",
    "MAPConfig",
    "MAPResult",
    "denoise",
    "get_prior",
    "init_prior",
    "load_prior",
    "make_likelihood",
    "map_denoise",
    "save_prior",
]
