"""Top-K recommendation: score every item the user has not rated, sort, take k."""

from __future__ import annotations

import numpy as np

from mfrec._internal import njit


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
