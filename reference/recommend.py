"""Top-K recommendation: score every item the user has not rated, sort, take k."""

from __future__ import annotations

import numpy as np
from numba import prange

from mfrec._internal import njit, njit_parallel


def seen_items(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) of the items each user rated in training, ascending per user."""
    n_items = int(items.max()) + 1 if items.size else 1
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    indices = np.empty(items.shape[0], dtype=np.int64)
    _csr_by_user(users, items, n_items, indptr, indices)
    return indptr, indices


@njit
def _csr_by_user(users, items, n_items, indptr, indices):
    """Fills CSR ``indptr`` (zeros, n_users + 1) and ``indices``: two stable counting sorts,
    by item and then by user, so each user's items come out ascending (duplicates kept)."""
    item_ptr = np.zeros(n_items + 1, dtype=np.int64)
    for j in range(items.shape[0]):
        item_ptr[items[j] + 1] += 1
        indptr[users[j] + 1] += 1
    for i in range(n_items):
        item_ptr[i + 1] += item_ptr[i]
    for u in range(indptr.shape[0] - 1):
        indptr[u + 1] += indptr[u]
    by_item = np.empty(items.shape[0], dtype=np.int64)  # rating indices, ascending item
    for j in range(items.shape[0]):
        by_item[item_ptr[items[j]]] = j
        item_ptr[items[j]] += 1
    fill = indptr[:-1].copy()
    for j in by_item:
        indices[fill[users[j]]] = items[j]
        fill[users[j]] += 1


def top_k(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best ``scores`` not in ``exclude``, best first (ties: lower index)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    s = np.asarray(scores, dtype=np.float64).copy()
    s[exclude] = -np.inf
    n_candidates = s.shape[0] - np.unique(exclude).shape[0]
    k = min(k, n_candidates)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    # Stable sort on −score keeps equal scores in index order, so results are deterministic.
    return np.argsort(-s, kind="stable")[:k].astype(np.int64)


def top_k_rows(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of the ``k`` largest entries of every row of ``S``, best first.

    Ties keep the lower column first, as :func:`top_k` does; ``k`` is cut to the row length.
    """
    k = min(int(k), S.shape[1])
    top = np.empty((S.shape[0], k), dtype=np.int64)
    val = np.empty((S.shape[0], k), dtype=S.dtype)
    if k:
        _top_k_rows(np.ascontiguousarray(S), top, val)
    return top, val


@njit_parallel
def _top_k_rows(S, top, val):
    """Per row (in parallel): a heap of the k best (score, column) seen so far, whose root is
    the worst kept one — lowest score, and of equal scores the highest column. Columns come in
    ascending order, so a later column that ties the root never displaces it. The heap is then
    emptied worst first into positions k−1 … 0."""
    k = top.shape[1]
    for row in prange(S.shape[0]):
        s = S[row]
        h = top[row]  # heap of columns, root at 0
        for j in range(k):
            h[j] = j
        for start in range(k // 2 - 1, -1, -1):
            _sift_down(s, h, start, k)
        for j in range(k, s.shape[0]):
            if s[j] > s[h[0]]:
                h[0] = j
                _sift_down(s, h, 0, k)
        for size in range(k, 0, -1):
            worst = h[0]
            h[0] = h[size - 1]
            _sift_down(s, h, 0, size - 1)
            h[size - 1] = worst
        for j in range(k):
            val[row, j] = s[h[j]]


@njit
def _sift_down(s, h, pos, size):
    """Restore the heap below ``pos``: a parent is worse than (or as bad as) its children."""
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and _worse(s, h[child + 1], h[child]):
            child += 1
        if not _worse(s, h[child], h[pos]):
            return
        h[pos], h[child] = h[child], h[pos]
        pos = child


@njit
def _worse(s, a, b):
    """Whether column ``a`` ranks below column ``b``: lower score, or equal and higher column."""
    return s[a] < s[b] or (s[a] == s[b] and a > b)
