"""mfrec's one internal module: helpers that every subpackage shares. Nothing here is public.

**Numba compile flags** live here and nowhere else. ``njit``: ``fastmath`` stays off: it would
let LLVM assume no NaN/inf (breaking divergence checks) and reorder the dot product (breaking
bit-for-bit equality with the readable reference). ``njit_fast`` / ``njit_parallel``: the fast
kernels (:mod:`mfrec.reference.fast`, :mod:`mfrec.reference.blocked`) set the LLVM fast-math
flags ``reassoc`` (reassociate sums: a vectorised dot product), ``contract`` (fuse a multiply and
an add into one FMA), ``nsz`` (ignore the sign of zero) and ``arcp`` (a division may become a
multiplication by a reciprocal). Results differ from the reference in the last bits; ``nnan`` and
``ninf`` stay off, so a diverging run is still caught. ``njit_parallel`` adds ``prange`` threads.
``njit_inline``: a piece the kernels share, inlined into each caller before typing, so it takes
the caller's flags and dtypes (and costs no call).

**Input checks** (``check_*``): clear errors that name the offending value.

**Atomic writes** (``atomic_write``): a temp file in the target's folder, then a rename, with the
mode a plain ``open()`` would give under the user's umask. The temp name carries the writer's
pid; a writer killed before its rename (``kill -9``) leaves its temp file, and the next write of
the same target removes it (its pid is no longer alive, or it is older than a day).

**Resource checks**: ``check_memory`` refuses an allocation larger than the memory available,
naming both numbers; ``check_npz`` reads an ``.npz``'s zip directory and every member's ``.npy``
header (a few hundred bytes each) and refuses members whose sizes exceed a cap before anything
is inflated.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import tempfile
import time
import zipfile
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


def njit_inline(fn):
    """``numba.njit`` inlined into each jitted caller before typing (Numba IR), so it compiles
    as part of the caller, with the caller's math flags and argument types."""
    return numba.njit(inline="always", **JIT_FLAGS)(fn)


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


# A temp file whose writer cannot be told alive (another host's pid, a reused pid, an older
# mfrec's name without a pid) is removed once it is this old.
ORPHAN_AGE_S = 24 * 3600


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # PermissionError: someone else's live process
    return True


def remove_orphans(path: str | os.PathLike) -> list[Path]:
    """Delete temp files that killed writers of ``path`` left beside it; returns those removed.

    A temp file of ``path`` is ``.<name>.<pid>.<random>.tmp<suffix>`` (older mfrec versions:
    ``.<name>.<random>.tmp<suffix>``). It is an orphan when its pid is not a live process, or
    when it is older than :data:`ORPHAN_AGE_S` (a reused pid, a writer on another host).
    """
    path = Path(path)
    name = re.escape(path.name)
    pattern = re.compile(rf"\.{name}\.(?:(\d+)\.)?[^/]+\.tmp{re.escape(path.suffix)}\Z")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(m.group(1)) if m.group(1) else None
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > ORPHAN_AGE_S
        except OSError:
            continue
        if pid == os.getpid() and not old:
            continue  # this process's own write in progress (another thread)
        if old or (pid is not None and not _pid_alive(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, parents: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on a clean exit move it over ``path``, else delete it.

    The temp name ends in ``path``'s own suffix (so writers that pick a format by suffix, such as
    matplotlib, pick the right one) and holds this process's pid, so that the next write of
    ``path`` can remove what a killed writer left (:func:`remove_orphans`). The file gets mode
    ``0o666 & ~umask``, as ``open()`` gives. A missing parent folder is an error
    (``FileNotFoundError`` naming it) unless ``parents``.
    """
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder (create it first)")
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResourceError(ValueError):
    """An input would need more memory (or expand to more bytes) than mfrec allows."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: ``MemAvailable`` from /proc/meminfo, else
    free pages from ``os.sysconf``; None when neither is known."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_memory(what: str, n_bytes: int) -> None:
    """Raise :class:`ResourceError` when ``n_bytes`` exceed the memory available now.

    Called before a large allocation (the factor matrices), so that a model that cannot fit is
    refused at once, with both numbers, instead of after minutes of swapping or training.
    """
    have = available_memory()
    if have is not None and n_bytes > have:
        raise ResourceError(
            f"{what} would need {_gib(n_bytes)} of memory but {_gib(have)} is available; "
            "use fewer factors or a smaller data set"
        )


def check_npz(path: str | os.PathLike, cap: int) -> str | None:
    """Why the ``.npz`` at ``path`` must not be loaded, or None; nothing is inflated.

    Reads the zip directory and each member's ``.npy`` header. Refused: a member whose stated
    uncompressed size, or the members' total, exceeds ``cap`` bytes; a header whose shape and
    dtype need more bytes than the member holds (numpy would allocate them first); object
    dtypes. ``zipfile`` never inflates a member past its stated size.
    """
    import numpy.lib.format as npy

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(info.file_size for info in infos)
            if total > cap:
                return f"its members would expand to {total} bytes, more than the cap of {cap}"
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = npy.read_magic(f)
                    read_header = {
                        (1, 0): npy.read_array_header_1_0,
                        (2, 0): npy.read_array_header_2_0,
                    }.get(version)
                    if read_header is None:
                        return f"member {info.filename}: unknown .npy version {version}"
                    shape, _, dtype = read_header(f, max_header_size=10_000)
                    header_end = f.tell()
                if dtype.hasobject:
                    return f"member {info.filename} holds Python objects"
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if need > info.file_size - header_end:
                    return (
                        f"member {info.filename} announces shape {shape} ({need} bytes) "
                        f"but holds {info.file_size - header_end}"
                    )
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        return str(e) or type(e).__name__
    return None
