"""A weighted average of fitted factor models is itself one factor model.

Σₘ wₘ·(μₘ + bᵤᵐ + bᵢᵐ + Pᵤᵐ·Qᵢᵐ) = Σ wₘμₘ + Σ wₘbᵤᵐ + Σ wₘbᵢᵐ + [√w₁Pᵤ¹ …]·[√w₁Qᵢ¹ …], so the
ensemble stores concatenated, √w-scaled factors and summed biases; predict, recommend, clipping
and the unknown fallback then work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from mfrec.reference.mf import FactorModel

from mfrec._internal import check_ratings, check_size


class Ensemble(FactorModel):
    """Fit each member on the same data, then average their predictions with ``weights``."""

    def __init__(self, members: list, weights: list[float] | None = None) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        w = np.full(len(members), 1.0 / len(members)) if weights is None else np.asarray(weights)
        if w.shape != (len(members),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(f"weights must be {len(members)} non-negative numbers summing to 1")
        self.members = list(members)
        self.weights = w.astype(np.float64)
        self.biased = True

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        callback: Callable[[int, int, FactorModel], None] | None = None,
    ) -> Ensemble:
        """Fit every member, then combine them (members must predict μ + bᵤ + bᵢ + Pᵤ·Qᵢ).

        ``callback(j, step, member)`` relays member j's own per-epoch (or per-sweep) callback.
        """
        u, i, r = check_ratings(users, items, ratings, np.float64)
        n_users = check_size("n_users", n_users, u)
        n_items = check_size("n_items", n_items, i)
        for j, m in enumerate(self.members):
            relay = None if callback is None else partial(callback, j)
            m.fit(u, i, r, n_users, n_items, callback=relay)
        pairs = list(zip(self.weights, self.members, strict=True))
        self.P = np.hstack([np.sqrt(w) * m.P.astype(np.float64) for w, m in pairs])
        self.Q = np.hstack([np.sqrt(w) * m.Q.astype(np.float64) for w, m in pairs])
        self.bu = sum(w * m.bu.astype(np.float64) for w, m in pairs)
        self.bi = sum(w * m.bi.astype(np.float64) for w, m in pairs)
        self.mu = float(sum(w * m.mu for w, m in pairs))
        self._remember_seen(u, i)
        self._remember_scale(r)
        probe = slice(0, min(100, r.shape[0]))
        mixed = sum(w * m.raw_predict(u[probe], i[probe]) for w, m in pairs)
        if not np.allclose(self.raw_predict(u[probe], i[probe]), mixed, rtol=1e-5, atol=1e-5):
            raise ValueError("every ensemble member must be a factor model (μ + bᵤ + bᵢ + Pᵤ·Qᵢ)")
        return self
