"""usprior: ultrasound despeckling as a probabilistic inverse problem with a Glow patch prior.

The user API (imported lazily: ``import usprior`` loads no JAX until it is used):

* :func:`denoise` — denoise an image (H, W) or a cine stack (T, H, W) with any registered method.
* :class:`Denoiser`, :func:`make_denoiser`, :func:`register_denoiser`, :func:`denoiser_names` —
  the one denoiser interface ``den(frames, *, sigma=None)`` and its registry.
* :func:`load_prior` / :class:`FlowPrior` — the Glow prior (also as a distrax distribution).
* :func:`make_likelihood` — observation models p(y | x) by name.
* :func:`map_denoise`, :class:`MAPConfig` — the latent MAP solver with full diagnostics.

The layers are subpackages (docs/design.md): :mod:`usprior.physics`, :mod:`usprior.priors`,
:mod:`usprior.solvers`, :mod:`usprior.amortized`, :mod:`usprior.baselines`,
:mod:`usprior.denoisers`, :mod:`usprior.eval`, :mod:`usprior.io`.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["amortized", "baselines", "denoisers", "eval", "io", "physics", "priors", "solvers", "validation"],
    submod_attrs={
        "api": ["denoise"],
        "denoisers": ["DEFAULT_LAM", "Denoiser", "denoiser_names", "make_denoiser", "register_denoiser"],
        "physics.likelihoods": ["make_likelihood"],
        "priors.flow": ["FlowPrior", "load_prior", "save_prior"],
        "priors.glow": ["GlowConfig"],
        "solvers.map": ["MAPConfig", "MAPResult", "map_denoise"],
    },
)

__version__ = "0.1.0"
