"""Physics: observation models p(y | x) and the simulators that draw from them.

* :mod:`~usprior.physics.likelihoods` — Gaussian, log-speckle, Gamma and Rayleigh speckle.
* :mod:`~usprior.physics.display` — B-mode display mapping (power in dB, log compression).
* :mod:`~usprior.physics.simulate` — convolutional speckle (Yu & Acton PSF), pixel-wise noise,
  and :data:`~usprior.physics.simulate.NOISE_MODELS`, the (noisy, target) pairs by name.
* :mod:`~usprior.physics.planewave` — plane-wave compounding with pymust (optional extra).
* :mod:`~usprior.physics.phantoms` — cyst phantoms with contrast-metric masks.
"""
