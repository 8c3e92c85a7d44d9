"""BLAS thread control for CPU code that makes many tiny LAPACK / BLAS calls.

jaxlib's CPU batched SVD (WNNM) and pymust's per-frequency matrix-vector products (plane-wave
simulation) call BLAS once per small matrix; a multi-threaded OpenBLAS then spends far more
time synchronising than computing (measured 6-80x slower on 2 shared cores). No effect on GPU work.
"""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """A context manager limiting BLAS / LAPACK thread pools to one thread (``threadpoolctl``)."""
    return threadpool_limits(limits=1, user_api="blas")
