"""Metrics of the liked-or-not task: AUC, log loss, precision/recall/accuracy at a cut-off,
and the ranked lists' precision/recall/NDCG@K (:mod:`mfrec.reference.ranking`)."""

from __future__ import annotations

import numpy as np

EPS = 1e-15
"""Probabilities are clipped to [EPS, 1 − EPS] in the log loss (as scikit-learn does)."""


def _check_pair(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels has shape {y.shape} but probabilities has shape {p.shape}")
    if y.size == 0:
        raise ValueError("cannot score zero labels")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return y, p


def auc(labels, probs) -> float:
    """Area under the ROC curve: P(a random 1 scores above a random 0), ties counting ½.

    Computed as the Mann–Whitney U statistic over mid-ranks: (Σ ranks of the 1s − n₁(n₁+1)/2)
    / (n₁·n₀).
    """
    y, p = _check_pair(labels, probs)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("AUC needs both classes among the labels")
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    ends = np.r_[starts[1:], sorted_p.size]
    mid = (starts + ends + 1) / 2.0  # mean 1-based rank of each run of ties
    ranks = np.empty(p.size)
    ranks[order] = np.repeat(mid, ends - starts)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def log_loss(labels, probs) -> float:
    """Mean binary cross-entropy −[y·log p + (1 − y)·log(1 − p)], p clipped to [EPS, 1 − EPS]."""
    y, p = _check_pair(labels, probs)
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def cutoff_metrics(labels, probs, cutoff: float = 0.5) -> dict[str, float]:
    """Precision, recall and accuracy of the decision ŷ = 1[p >= cutoff].

    precision = TP/(TP + FP) (0 when nothing is predicted liked), recall = TP/(TP + FN),
    accuracy = (TP + TN)/n.
    """
    y, p = _check_pair(labels, probs)
    y_hat = p >= cutoff
    liked = y == 1
    tp = int(np.count_nonzero(y_hat & liked))
    n_pred, n_pos = int(np.count_nonzero(y_hat)), int(np.count_nonzero(liked))
    return {
        "precision": tp / n_pred if n_pred else 0.0,
        "recall": tp / n_pos if n_pos else 0.0,
        "accuracy": float(np.mean(y_hat == liked)),
    }


def binary_metrics(labels, probs, cutoff: float = 0.5) -> dict[str, float]:
    """Every pointwise binary-task metric: ``auc``, ``log_loss``, and ``precision``, ``recall``,
    ``accuracy`` at ``cutoff``. (The ranked lists' metrics are
    :func:`mfrec.reference.ranking.ranking_metrics` with ``threshold=1`` on the labels.)"""
    return {"auc": auc(labels, probs), "log_loss": log_loss(labels, probs)} | cutoff_metrics(
        labels, probs, cutoff
    )
