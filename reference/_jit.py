"""The one place where Numba compile flags live.

``fastmath`` stays off: it would let LLVM assume no NaN/inf (breaking divergence checks) and
reorder the dot product (breaking bit-for-bit equality with the readable reference).
"""

from __future__ import annotations

import numba

JIT_FLAGS: dict = {"nogil": True, "cache": False, "fastmath": False}


def njit(fn):
    """``numba.njit`` with the project's flags (works under ``NUMBA_DISABLE_JIT=1``)."""
    return numba.njit(**JIT_FLAGS)(fn)


def njit_parallel(fn):
    """The project's flags plus ``parallel=True``, for kernels with independent ``prange`` rows."""
    return numba.njit(parallel=True, **JIT_FLAGS)(fn)
