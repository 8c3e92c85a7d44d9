"""Classical despeckling / denoising baselines, one signature: ``fn(image, **params) -> image``.

``image`` is a 2-D float image in [0, 1] (integer images are rescaled by their dtype range);
the result is float32 (H, W) in [0, 1]. Bad images or parameters raise ``ValueError``.

* :func:`nlm`, :func:`tv`, :func:`bm3d` -- scikit-image and ``bm3d`` package wrappers (``classical``).
* :func:`lee`, :func:`kuan`, :func:`frost` -- local-statistics speckle filters (``local_statistics``).
* :func:`srad` -- speckle reducing anisotropic diffusion, JAX (``srad``).
* :func:`obnlm` -- Bayesian NLM with the Pearson distance, blockwise, JAX (``obnlm``).
* :func:`wnnm` -- weighted nuclear norm minimisation with batched SVD, JAX (``wnnm``).

The JAX filters run on the default JAX device (GPU when present). Their tuning grids for
the benchmark live in :data:`usprior.eval.benchmark.METHODS`.
"""

from usprior.baselines.classical import bm3d, nlm, tv
from usprior.baselines.local_statistics import frost, kuan, lee
from usprior.baselines.obnlm import obnlm
from usprior.baselines.srad import srad
from usprior.baselines.wnnm import wnnm

__all__ = ["bm3d", "frost", "kuan", "lee", "nlm", "obnlm", "srad", "tv", "wnnm"]
