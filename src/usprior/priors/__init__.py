"""The flow prior: the Glow network, the prior as a pytree / distrax distribution, its data and training.

* :mod:`~usprior.priors.glow` — Glow (actnorm, invertible 1x1 conv, affine coupling), exact log-det.
* :mod:`~usprior.priors.flow` — :class:`~usprior.priors.flow.FlowPrior`, its distrax views and checkpoints.
* :mod:`~usprior.priors.data` — sagittal MNI152 slices and natural images, Tenengrad patch sampling.
* :mod:`~usprior.priors.training` — maximum-likelihood training with optax, bits/dim.
"""
