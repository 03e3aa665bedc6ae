"""A weighted average of fitted factor models is itself one factor model.

Σₘ wₘ·(μₘ + bᵤᵐ + bᵢᵐ + Pᵤᵐ·Qᵢᵐ) = Σ wₘμₘ + Σ wₘbᵤᵐ + Σ wₘbᵢᵐ + [√w₁Pᵤ¹ …]·[√w₁Qᵢ¹ …], so the
ensemble stores concatenated, √w-scaled factors and summed biases; predict, recommend, clipping
and the unknown fallback then work unchanged.

:class:`BlendedEnsemble` chooses the weights as the Netflix Prize blends did: least squares on
predictions for a validation split carved from the training ratings (never the test split),
here constrained to w ≥ 0, Σw = 1 so that the blend stays one factor model.
"""

from __future__ import annotations

from functools import partial
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from mfrec._internal import check_dtype, check_positive, check_ratings
from mfrec.data.splits import carve_validation
from mfrec.reference.metrics import rmse
from mfrec.reference.mf import FactorModel, MatrixFactorization

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


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

    def _fit_indices(self, u, i, r, n_users: int, n_items: int, callback=None) -> Self:
        """Fit every member, then combine them (members must predict μ + bᵤ + bᵢ + Pᵤ·Qᵢ).

        ``callback(j, step, member)`` relays member j's own per-epoch (or per-sweep) callback.
        """
        u, i, r = check_ratings(u, i, r, np.float64)
        for j, m in enumerate(self.members):
            relay = None if callback is None else partial(callback, j)
            m.fit(u, i, r, n_users, n_items, callback=relay)
        return self._combine(u, i, r)

    def _combine(self, u: np.ndarray, i: np.ndarray, r: np.ndarray, dtype=np.float64):
        """Stack the fitted members' √w-scaled factors and sum their weighted biases."""
        pairs = list(zip(self.weights, self.members, strict=True))
        self.P = np.hstack([(np.sqrt(w) * m.P.astype(np.float64)).astype(dtype) for w, m in pairs])
        self.Q = np.hstack([(np.sqrt(w) * m.Q.astype(np.float64)).astype(dtype) for w, m in pairs])
        self.bu = sum(w * m.bu.astype(np.float64) for w, m in pairs).astype(dtype)  # pyright: ignore[reportAttributeAccessIssue]  (a sum of arrays)
        self.bi = sum(w * m.bi.astype(np.float64) for w, m in pairs).astype(dtype)  # pyright: ignore[reportAttributeAccessIssue]
        self.mu = float(sum(w * m.mu for w, m in pairs))
        self._remember_seen(u, i)
        self._remember_scale(r)
        probe = slice(0, min(100, r.shape[0]))
        mixed = sum(w * m.raw_predict(u[probe], i[probe]) for w, m in pairs)
        tol = 1e-5 if dtype == np.float64 else 1e-3
        if not np.allclose(self.raw_predict(u[probe], i[probe]), mixed, rtol=tol, atol=tol):
            raise ValueError("every ensemble member must be a factor model (μ + bᵤ + bᵢ + Pᵤ·Qᵢ)")
        return self


MIN_WEIGHT = 0.01
"""A member whose validation weight is below this is dropped (it would cost storage, not RMSE)."""


def simplex_weights(preds: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """The w ≥ 0 with Σw = 1 that minimises ‖ratings − preds·w‖² (preds: (n, M) columns).

    Exact for the few members an ensemble has: for every non-empty support S the
    equality-constrained least squares [2XᵀX 1; 1ᵀ 0]·[w; ν] = [2Xᵀr; 1] (X = preds[:, S]) is
    solved, and the best feasible (all w ≥ 0) solution wins. A single column always is feasible.
    """
    X = np.asarray(preds, dtype=np.float64)
    r = np.asarray(ratings, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != r.shape[0] or X.shape[0] == 0:
        raise ValueError(f"preds must be (n, M) with n = len(ratings) > 0, got {X.shape}")
    G, b = X.T @ X, X.T @ r
    n_members = X.shape[1]
    best_w, best_sse = None, np.inf
    for size in range(1, n_members + 1):
        for support in combinations(range(n_members), size):
            S = list(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = 2 * G[np.ix_(S, S)]
            kkt[:size, size] = kkt[size, :size] = 1.0
            rhs = np.append(2 * b[S], 1.0)
            w_S = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if np.any(w_S < -1e-12):
                continue
            w = np.zeros(n_members)
            w[S] = np.clip(w_S, 0.0, None) / np.clip(w_S, 0.0, None).sum()
            err = r - X @ w
            sse = float(err @ err)
            if best_w is None or sse < best_sse * (1 - 1e-12):
                best_w, best_sse = w, sse
    return best_w  # pyright: ignore[reportReturnType]  (n_members >= 1: a support was tried)


class BlendedEnsemble(Ensemble):
    """An :class:`Ensemble` whose weights, and whose SGD members' epochs, come from validation.

    ``fit`` holds out a seeded ``val_fraction`` of the training ratings
    (:func:`mfrec.data.splits.carve_validation`: held-out users and items absent from the rest
    are scored by the fallback; ``n_val_unknown_`` counts those ratings), fits every member on
    the rest (an SGD member early-stops on the held-out part with ``patience`` and keeps its
    best epoch), and sets the weights by :func:`simplex_weights` on the members' held-out
    predictions. Members weighing under :data:`MIN_WEIGHT` are dropped. With ``refit`` the
    kept members are then fitted again on all training ratings (SGD for its best epoch count);
    without it they stay as fitted on the rest (cheaper; costs little once the held-out part
    is a small share).
    The combined factors are stored in ``dtype``. ``val_rmse_`` maps each member's label to
    its held-out RMSE, with ``"blend"`` for the weighted average.

    ``min_gain_se`` (None: off) keeps the blend only where it earns its extra members: its
    held-out mean squared error must be below the best member's by more than that many
    standard errors of the per-rating difference (``val_gain_``: that difference's mean and
    standard error); else the best member alone is kept (weight 1), the others dropped.
    """

    def __init__(
        self,
        members: list,
        val_fraction: float = 0.1,
        refit: bool = True,
        patience: int = 5,
        seed: int = 0,
        dtype: str = "float32",
        min_gain_se: float | None = None,
    ) -> None:
        super().__init__(members)
        self.min_gain_se = None if min_gain_se is None else check_positive(
            "min_gain_se", min_gain_se, allow_zero=True
        )  # fmt: skip
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        self.val_fraction = float(val_fraction)
        self.refit = bool(refit)
        self.patience = check_positive("patience", patience, integer=True)
        self.seed = check_positive("seed", seed, integer=True, allow_zero=True)
        self.dtype = check_dtype(dtype)
        self.stage_ = ("validate", 0)

    def _fit_indices(self, u, i, r, n_users: int, n_items: int, callback=None) -> Self:
        """Validate, weigh, drop, optionally refit, combine; see the class doc.

        ``callback(j, step, member)`` relays member j's per-epoch (per-sweep) callback;
        ``stage_`` is ``("validate" | "refit", j)`` meanwhile.
        """
        u, i, r = check_ratings(u, i, r, np.float64)
        carved = carve_validation(u, i, r, self.val_fraction, (self.seed, 7))
        self.n_val_unknown_ = carved.n_unknown
        fu, fi, fr = u[carved.fit_rows], i[carved.fit_rows], r[carved.fit_rows]
        vu, vi, vr = carved.val
        n_val = vr.shape[0]
        preds = np.empty((n_val, len(self.members)))
        for j, m in enumerate(self.members):
            self.stage_ = ("validate", j)
            relay = None if callback is None else partial(callback, j)
            if isinstance(m, MatrixFactorization):
                m.fit(fu, fi, fr, n_users, n_items, callback=relay,
                      eval_set=(vu, vi, vr), patience=self.patience)  # fmt: skip
                m.n_epochs = m.best_epoch_ + 1  # what a refit runs
            else:
                m.fit(fu, fi, fr, n_users, n_items, callback=relay)
            preds[:, j] = m.predict(vu, vi)
        w = simplex_weights(preds, vr)
        e2 = (preds - vr[:, None]) ** 2  # (n_val, M) squared errors
        best = int(np.argmin(e2.mean(axis=0)))
        d = e2[:, best] - (preds @ w - vr) ** 2
        self.val_gain_ = (float(d.mean()), float(d.std() / np.sqrt(n_val)))
        if self.min_gain_se is not None and d.mean() <= self.min_gain_se * self.val_gain_[1]:
            w = np.eye(len(self.members))[best]
        self.val_rmse_ = {member_label(m): rmse(vr, preds[:, j]) for j, m in
                          enumerate(self.members)}  # fmt: skip
        self.val_rmse_["blend"] = rmse(vr, np.clip(preds @ w, vr.min(), vr.max()))
        keep = w >= MIN_WEIGHT
        self.all_weights_ = w
        self.members = [m for m, k in zip(self.members, keep, strict=True) if k]
        self.weights = w[keep] / w[keep].sum()
        if self.refit:
            for j, m in enumerate(self.members):
                self.stage_ = ("refit", j)
                m.fit(u, i, r, n_users, n_items,
                      callback=None if callback is None else partial(callback, j))  # fmt: skip
        return self._combine(u, i, r, self.dtype)


def member_label(m: FactorModel) -> str:
    """A short unique-enough label: class, k, and the L2 penalty when it has one."""
    reg = getattr(m, "reg", None)
    k = m.n_factors  # pyright: ignore[reportAttributeAccessIssue]  (every member class sets it)
    return f"{type(m).__name__} k={k}" + ("" if reg is None else f" reg={reg}")
