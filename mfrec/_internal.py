"""mfrec's one internal module: helpers that every subpackage shares. Nothing here is public.

**Numba compile flags** live here and nowhere else. ``njit``: ``fastmath`` stays off: it would
let LLVM assume no NaN/inf (breaking divergence checks) and reorder the dot product (breaking
bit-for-bit equality with the readable reference). ``njit_fast`` / ``njit_parallel``: the fast
kernels (:mod:`mfrec.reference.fast`, :mod:`mfrec.reference.blocked`) set the LLVM fast-math
flags ``reassoc`` (reassociate sums: a vectorised dot product), ``contract`` (fuse a multiply and
an add into one FMA), ``nsz`` (ignore the sign of zero) and ``arcp`` (a division may become a
multiplication by a reciprocal). Results differ from the reference in the last bits; ``nnan`` and
``ninf`` stay off, so a diverging run is still caught. ``njit_parallel`` adds ``prange`` threads.

**Input checks** (``check_*``): clear errors that name the offending value.

**Atomic writes** (``atomic_write``): a temp file in the target's folder, then a rename, with the
mode a plain ``open()`` would give under the user's umask.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import numba
import numpy as np
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
        _llvm_prefetch(a, offset)  # pyright: ignore[reportCallIssue]  (numba adds the context)

    return impl


def cuda_jit(fn):
    """``numba.cuda.jit`` with the project's flags (exact float math, as in ``njit``)."""
    from numba import cuda

    return cuda.jit(fastmath=False)(fn)


def cuda_device(fn):
    """``numba.cuda.jit(device=True)`` with the same flags: a function called from kernels."""
    from numba import cuda

    return cuda.jit(device=True, fastmath=False)(fn)


DTYPES = {"float64": np.float64, "float32": np.float32}


def check_dtype(dtype) -> type:
    """Map ``"float64"``/``"float32"`` (or the numpy types) to a numpy float type."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return DTYPES[name]


Number = TypeVar("Number")


def check_positive(
    name: str, value: Number, integer: bool = False, allow_zero: bool = False
) -> Number:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0 (or >= 0)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def check_index(name: str, values, n: int | None = None) -> np.ndarray:
    """Contiguous int64 copy of a 0-based index array; every value in [0, n) when ``n`` is given."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if (
            np.issubdtype(a.dtype, np.floating)
            and np.all(np.isfinite(a))
            and np.all(a == np.floor(a))
        ):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer indices, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if a.size:
        lo = int(a.min())
        if lo < 0:
            raise ValueError(f"{name} must be >= 0, found {lo} at position {int(np.argmin(a))}")
        if n is not None:
            hi = int(a.max())
            if hi >= n:
                raise ValueError(
                    f"{name} must be < {n}, found {hi} at position {int(np.argmax(a))}"
                )
    return a


def check_ratings(users, items, ratings, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (users, items, ratings): equal lengths, non-empty, finite ratings of ``dtype``."""
    u = check_index("users", users)
    i = check_index("items", items)
    r = np.ascontiguousarray(np.asarray(ratings, dtype=np.float64))
    if r.ndim != 1:
        raise ValueError(f"ratings must be 1-D, got shape {r.shape}")
    if not (u.shape[0] == i.shape[0] == r.shape[0]):
        raise ValueError(
            f"users, items and ratings differ in length: {u.shape[0]}, {i.shape[0]}, {r.shape[0]}"
        )
    if r.shape[0] == 0:
        raise ValueError("no ratings to train on")
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        raise ValueError(f"ratings must be finite, found {r[bad[0]]!r} at position {int(bad[0])}")
    return u, i, np.ascontiguousarray(r, dtype=dtype)


def check_size(name: str, given: int | None, index: np.ndarray) -> int:
    """``given`` if it covers every index, else the smallest size that does."""
    need = int(index.max()) + 1 if index.size else 0
    if given is None:
        return need
    check_positive(name, given, integer=True)
    if given < need:
        raise ValueError(f"{name}={given} but the data holds index {need - 1}")
    return int(given)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, parents: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on a clean exit move it over ``path``, else delete it.

    The temp name ends in ``path``'s own suffix (so writers that pick a format by suffix, such as
    matplotlib, pick the right one). The file gets mode ``0o666 & ~umask``, as ``open()`` gives.
    A missing parent folder is an error (``FileNotFoundError`` naming it) unless ``parents``.
    """
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder (create it first)")
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
