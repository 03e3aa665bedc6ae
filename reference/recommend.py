"""Top-K recommendation: score every item the user has not rated, sort, take k."""

from __future__ import annotations

import numpy as np


def seen_items(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) of the items each user rated in training."""
    n_items = int(items.max()) + 1 if items.size else 1
    key = users.astype(np.int64) * n_items + items  # sorts by user, then item
    indices = np.sort(key) % n_items  # (n,) items, grouped by user
    counts = np.bincount(users, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, indices


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
