"""Estimators over image patches: the patch grid, the shared patch engine, latent MAP, unrolled MAP.

* :mod:`~usprior.solvers.patches` — tiling into overlapping patches and Hann-weighted stitching.
* :mod:`~usprior.solvers.engine` — grid, balanced chunks, per-chunk solve, stitch (shared).
* :mod:`~usprior.solvers.map` — latent MAP, z* = argmin NLL(y | f^-1(z)) + lam ||z||^2, per patch.
* :mod:`~usprior.solvers.unrolled` — K learned gradient steps on the same objective, and their training.

A solver only uses ``prior.encode / decode / event_shape`` and ``likelihood.nll``: it never knows
which prior or likelihood it is given.
"""
