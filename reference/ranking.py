"""Top-K ranking metrics over held-out ratings: precision@K, recall@K and NDCG@K."""

from __future__ import annotations

import numpy as np

from mfrec.data.ids import UNKNOWN


def user_ranking_metrics(
    top: np.ndarray, relevant: np.ndarray, k: int
) -> tuple[float, float, float]:
    """(precision@k, recall@k, NDCG@k) of one ranked list ``top`` against the ``relevant`` set.

    precision = hits/k, recall = hits/|relevant|, NDCG = DCG/IDCG with binary gains,
    DCG = Σ_{hit at rank j} 1/log₂(j + 1) and IDCG the DCG of min(k, |relevant|) hits first.
    """
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    if relevant.size == 0:
        raise ValueError("no relevant items: precision, recall and NDCG are undefined")
    top = np.asarray(top)[:k]
    hit = np.isin(top, relevant)  # (≤k,)
    discount = 1.0 / np.log2(np.arange(2, k + 2))  # (k,)
    dcg = float(discount[: top.shape[0]][hit].sum())
    idcg = float(discount[: min(k, relevant.size)].sum())
    n_hits = int(hit.sum())
    return n_hits / k, n_hits / relevant.size, dcg / idcg


def ranking_metrics(model, users, items, ratings, k: int = 10, threshold: float = 4.0) -> dict:
    """Mean precision@k, recall@k, NDCG@k over test users with a held-out rating >= threshold.

    Each user's list is the model's top k (one batched pass over the test users): items seen
    in training are excluded; a user index outside the model is unknown (ranked by μ̄ + bᵢ).
    Relevant items are the user's test items rated at or above ``threshold``.
    """
    u = np.asarray(users, dtype=np.int64)
    i = np.asarray(items, dtype=np.int64)
    r = np.asarray(ratings, dtype=np.float64)
    if not (u.shape == i.shape == r.shape):
        raise ValueError(f"users, items, ratings differ in shape: {u.shape}, {i.shape}, {r.shape}")
    keep = r >= threshold
    u, i = u[keep], i[keep]
    order = np.argsort(u, kind="stable")
    u, i = u[order], i[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if u.size else np.empty(0, np.int64)
    ends = np.r_[starts[1:], u.size]
    who = u[starts]
    who = np.where((who >= 0) & (who < model.n_users), who, UNKNOWN)
    top, scores = model._recommend_indices(who, k)
    per_user = [
        user_ranking_metrics(top[row][np.isfinite(scores[row])], i[s:e], k)
        for row, (s, e) in enumerate(zip(starts, ends, strict=True))
    ]
    if not per_user:
        raise ValueError(f"no test rating is >= threshold {threshold}: ranking metrics undefined")
    p, rec, ndcg = np.mean(per_user, axis=0)
    return {
        f"precision@{k}": float(p),
        f"recall@{k}": float(rec),
        f"ndcg@{k}": float(ndcg),
        "n_users": len(per_user),
    }
