"""The one place where Numba compile flags (and the one LLVM hint the kernels use) live.

``njit``: ``fastmath`` stays off: it would let LLVM assume no NaN/inf (breaking divergence
checks) and reorder the dot product (breaking bit-for-bit equality with the readable reference).

``njit_fast`` / ``njit_parallel``: the fast kernels of :mod:`reference.fast` allow reassociation
and FMA contraction (a vectorised dot product, so results differ from the reference in the last
bits) but keep NaN/inf semantics, so a diverging run is still caught. ``njit_parallel`` adds
``prange`` threads.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

JIT_FLAGS: dict = {"nogil": True, "cache": False, "fastmath": False}
FAST_FLAGS: dict = {**JIT_FLAGS, "fastmath": {"reassoc", "contract", "nsz", "arcp"}}
PARALLEL_FLAGS: dict = {**FAST_FLAGS, "parallel": True}


def njit(fn):
    """``numba.njit`` with the project's flags (works under ``NUMBA_DISABLE_JIT=1``)."""
    return numba.njit(**JIT_FLAGS)(fn)


def njit_fast(fn):
    """``numba.njit`` for the fast kernels: reassociating float math, NaN/inf kept."""
    return numba.njit(**FAST_FLAGS)(fn)


def njit_parallel(fn):
    """``njit_fast`` plus ``parallel=True`` (for ``numba.prange`` loops)."""
    return numba.njit(**PARALLEL_FLAGS)(fn)


def prefetch(a, offset) -> None:
    """Hint the CPU to load element ``offset`` of C-contiguous ``a`` into cache.

    A no-op in pure Python (``NUMBA_DISABLE_JIT=1``); compiled, it is ``llvm.prefetch``
    (read, high locality), which never faults and never changes a result.
    """


@intrinsic
def _llvm_prefetch(typingctx, a, offset):
    sig = types.void(a, offset)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(arr.data, [args[1]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
        return context.get_dummy_value()

    return sig, codegen


@overload(prefetch)
def _prefetch_overload(a, offset):
    def impl(a, offset):
        _llvm_prefetch(a, offset)

    return impl


def cuda_jit(fn):
    """``numba.cuda.jit`` with the project's flags (exact float math, as in ``njit``)."""
    from numba import cuda

    return cuda.jit(fastmath=False)(fn)


def cuda_device(fn):
    """``numba.cuda.jit(device=True)`` with the same flags: a function called from kernels."""
    from numba import cuda

    return cuda.jit(device=True, fastmath=False)(fn)
