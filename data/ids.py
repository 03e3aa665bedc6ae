"""Raw ids (integers of any size, or text) and the contiguous 0-based indices the kernels use.

:func:`as_ids` turns a column a user has (a NumPy array, a list, a pandas or polars column)
into an integer or text array; :func:`index_ids` maps it to indices in sorted raw-id order;
:func:`lookup` finds the index of each raw id in such a map, ``UNKNOWN`` where it is absent.
"""

from __future__ import annotations

import numpy as np

UNKNOWN = -1
"""Index that marks a user or item the model was not trained on (predict falls back to biases)."""


def as_ids(values, name: str) -> np.ndarray:
    """A 1-D int64 or str array of raw ids from any sequence or column (pandas, polars, lists).

    Whole-number floats become integers (a pandas column that once held a NaN); text of any
    kind becomes ``str``; a column mixing integers and text is read as text. Anything else
    (fractions, NaN, booleans, nested values) is a ``ValueError`` naming ``name``.
    """
    a = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of ids, got shape {a.shape}")
    kind = a.dtype.kind
    if kind in "iu":
        return a.astype(np.int64, copy=False) if a.dtype != np.uint64 else a
    if kind in "US":
        return a.astype(str)
    if kind == "f":
        if a.size and not (np.all(np.isfinite(a)) and np.all(a == np.floor(a))):
            bad = a[~(np.isfinite(a) & (a == np.floor(a)))][0].item()
            raise ValueError(f"{name} must hold integer or text ids, found {bad!r}")
        return a.astype(np.int64)
    if kind == "O":
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in a):
            return a.astype(np.int64)
        bad = next((v for v in a if not isinstance(v, (str, int, np.integer, bytes))), None)
        if bad is not None or any(isinstance(v, bool) for v in a):
            bad = bad if bad is not None else next(v for v in a if isinstance(v, bool))
            raise ValueError(f"{name} must hold integer or text ids, found {bad!r}")
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in a])
    raise ValueError(f"{name} must hold integer or text ids, got dtype {a.dtype}")


def index_ids(raw) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, int64 index of each entry): ``ids[index] == raw``.

    Non-negative ids below 4·len + 2²⁰ use an O(n) presence table (MovieLens ids); any other
    integers, and text, fall back to a sort.
    """
    raw = np.asarray(raw)
    if raw.size and np.issubdtype(raw.dtype, np.integer):
        lo, hi = int(raw.min()), int(raw.max())
        if lo >= 0 and hi < 4 * raw.size + (1 << 20):
            from mfrec.data._kernels import _dense_index

            index = np.empty(raw.size, dtype=np.int64)
            ids = _dense_index(np.ascontiguousarray(raw, dtype=np.int64).reshape(-1), hi, index)
            return ids.astype(raw.dtype), index.reshape(raw.shape)
    ids, index = np.unique(raw, return_inverse=True)
    return ids, index.astype(np.int64).reshape(-1)


def lookup(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """int64 index of each raw id in the map ``ids``; ``UNKNOWN`` where it is absent.

    Integer ids in one and text in the other are compared as text (``"7"`` finds 7). A map
    that is not sorted (a model file of an older mfrec) is searched through its sort order.
    """
    if ids.shape[0] == 0:
        return np.full(raw.shape, UNKNOWN, dtype=np.int64)
    mixed = (ids.dtype.kind in "iu") != (raw.dtype.kind in "iu")
    if mixed:
        ids, raw = ids.astype(str), raw.astype(str)
    if mixed or np.any(ids[1:] <= ids[:-1]):
        order = np.argsort(ids, kind="stable")
        pos = lookup(ids[order], raw)
        return np.where(pos == UNKNOWN, UNKNOWN, order[np.maximum(pos, 0)])
    pos = np.minimum(np.searchsorted(ids, raw), ids.shape[0] - 1)
    return np.where(ids[pos] == raw, pos, UNKNOWN).astype(np.int64)
