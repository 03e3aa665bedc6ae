"""Serving a fitted model without retraining: fold in a new user, find similar items."""

from __future__ import annotations

import numpy as np

from mfrec._internal import check_index, check_positive


def fold_in(
    Q: np.ndarray,
    bi: np.ndarray,
    mu: float,
    biased: bool,
    items,
    ratings,
    reg: float,
    offset: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """(pᵤ, bᵤ) of a new user who rated ``items``, by a ridge solve against the fixed Q.

    Minimises Σᵢ (rᵢ − oᵢ − μ − bᵢ − bᵤ − pᵤ·Qᵢ)² + λ(‖pᵤ‖² + bᵤ²) with λ = reg·n, the
    penalty the per-sample SGD objective puts on a user with n ratings (μ, bᵢ, bᵤ only when
    ``biased``; bᵤ is 0 otherwise). λ = 0 gives the minimum-norm least-squares solution.
    ``offset`` oᵢ is a known part of each rated item's prediction (SVD++: Qᵢ·|N(u)|^−½ΣⱼYⱼ,
    from the items the user rated); 0 when not given.
    """
    i = check_index("items", items, Q.shape[0])
    r = np.asarray(ratings, dtype=np.float64)
    if r.shape != i.shape or r.size == 0:
        raise ValueError(f"need one rating per item and at least one, got {r.size} for {i.size}")
    if not np.all(np.isfinite(r)):
        raise ValueError("ratings must be finite")
    check_positive("reg", reg, allow_zero=True)
    X = Q[i].astype(np.float64)  # (n, k)
    y = r.copy() if offset is None else r - np.asarray(offset, dtype=np.float64)  # (n,)
    if biased:
        X = np.hstack([X, np.ones((X.shape[0], 1))])  # (n, k + 1)
        y = y - mu - bi[i]
    lam = reg * r.size
    A = np.vstack([X, np.sqrt(lam) * np.eye(X.shape[1])])  # (n + k [+1], k [+1])
    b = np.concatenate([y, np.zeros(X.shape[1])])
    w = np.linalg.lstsq(A, b, rcond=None)[0]
    if biased:
        return w[:-1].astype(Q.dtype), float(w[-1])
    return w.astype(Q.dtype), 0.0


def fold_in_scores(
    Q: np.ndarray, bi: np.ndarray, mu: float, biased: bool, p: np.ndarray, bu: float
) -> np.ndarray:
    """Predicted rating of every item for a folded-in user: Q·pᵤ (+ μ + bᵤ + bᵢ)."""
    scores = Q.astype(np.float64) @ p  # (n_items,)
    if biased:
        scores = scores + mu + bu + bi
    return scores


def similar_items(Q: np.ndarray, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items whose rows of Q have the highest cosine with ``Q[item]`` (itself excluded).

    Returns (indices, cosines), best first; ties keep the lower index. A zero row has cosine 0.
    """
    i = int(check_index("item", [item], Q.shape[0])[0])
    check_positive("k", k, integer=True, allow_zero=True)
    Q64 = Q.astype(np.float64)
    norms = np.linalg.norm(Q64, axis=1)  # (n_items,)
    safe = np.where(norms > 0, norms, 1.0)
    cos = (Q64 @ Q64[i]) / (safe * (norms[i] if norms[i] > 0 else 1.0))  # (n_items,)
    cos[i] = -np.inf
    k = min(k, Q.shape[0] - 1)
    top = np.argsort(-cos, kind="stable")[:k]
    return top.astype(np.int64), cos[top]
