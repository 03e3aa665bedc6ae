"""Input checks shared by every model: clear errors that name the offending value."""

from __future__ import annotations

import numbers

import numpy as np

DTYPES = {"float64": np.float64, "float32": np.float32}


def check_dtype(dtype) -> type:
    """Map ``"float64"``/``"float32"`` (or the numpy types) to a numpy float type."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return DTYPES[name]


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False):
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0 (or >= 0)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
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
