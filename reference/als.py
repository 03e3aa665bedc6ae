"""True alternating least squares: closed-form ridge solves, all user rows then all item rows.

The slides call their SGD loop "ALS"; real ALS never takes a gradient step. With Q fixed the
objective is a sum of independent ridge regressions, one per user row, each solved exactly;
then the same with P fixed. Every half-step is an exact block minimisation, so the objective
can never increase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mfrec._internal import check_positive
from mfrec.reference.als_kernels import _als_half_step, _csr_sse
from mfrec.reference.mf import SeededFactorModel, extends

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


def csr_by_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int):
    """CSR (indptr, cols, vals) of the triples grouped by ``rows`` (stable within a row)."""
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return (
        indptr,
        np.ascontiguousarray(cols[order], dtype=np.int64),
        np.ascontiguousarray(vals[order]),
    )


def als_penalty_weights(n_ratings: np.ndarray, reg: float, weighted: bool) -> np.ndarray:
    """λ per row: ``reg·n`` (Spark's weighted-λ ALS) or ``reg`` for every row."""
    n = np.asarray(n_ratings, dtype=np.float64)
    return reg * n if weighted else np.full(n.shape, float(reg))


def als_objective(model: ALS, users, items, ratings) -> float:
    """Σ (r − r̂)² + Σᵤ λᵤ(‖Pᵤ‖² + bᵤ²) + Σᵢ λᵢ(‖Qᵢ‖² + bᵢ²), the loss :class:`ALS` minimises."""
    u = np.asarray(users, dtype=np.int64)
    i = np.asarray(items, dtype=np.int64)
    r = np.asarray(ratings, dtype=np.float64)
    err = r - model.raw_predict(u, i)
    lam_u = als_penalty_weights(np.bincount(u, minlength=model.n_users), model.reg, model.weighted)
    lam_i = als_penalty_weights(np.bincount(i, minlength=model.n_items), model.reg, model.weighted)
    pen_u = (model.P.astype(np.float64) ** 2).sum(1) + model.bu.astype(np.float64) ** 2
    pen_i = (model.Q.astype(np.float64) ** 2).sum(1) + model.bi.astype(np.float64) ** 2
    return float(err @ err + lam_u @ pen_u + lam_i @ pen_i)


class ALS(SeededFactorModel):
    """Alternating least squares on r̂ = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ when ``biased``).

    ``weighted=True`` scales each row's penalty by its number of ratings (λ·nᵤ, λ·nᵢ), as
    Spark's ALS does. ``reg`` must be > 0 so that every row's system is positive definite.
    """

    @extends(SeededFactorModel)
    def __init__(
        self, *, n_iters: int = 10, reg: float = 0.1, weighted: bool = True, **params
    ) -> None:
        super().__init__(**params)
        self.n_iters = check_positive("n_iters", n_iters, integer=True, allow_zero=True)
        self.reg = check_positive("reg", reg)
        self.weighted = bool(weighted)

    def _fit(self, start: tuple, callback) -> Self:
        """Alternate user and item solves ``n_iters`` times from ``start`` (see
        :meth:`SeededFactorModel._fit`).

        Users are solved first, from Q0 and zero item biases, so P0 does not affect the result
        (it is drawn anyway, to share the SGD models' random stream). ``callback(iteration,
        self)`` runs after each full iteration; ``history_`` holds the training MSE after each
        one.
        """
        u, i, r, P, Q, mu, _ = start
        bu = np.zeros(P.shape[0], dtype=self.dtype)
        bi = np.zeros(Q.shape[0], dtype=self.dtype)
        self.P, self.Q, self.bu, self.bi, self.mu = P, Q, bu, bi, mu
        self._remember_seen(u, i)
        self._remember_scale(r)
        iterate = self._iteration(u, i, r)
        self.history_: list[float] = []
        for it in range(self.n_iters):
            self.history_.append(iterate())
            if callback is not None:
                callback(it, self)
        return self

    def _iteration(self, u, i, r) -> Callable[[], float]:
        """The function that runs one full iteration on the model's arrays (users, then
        items) and returns the training MSE after it."""
        by_user = csr_by_row(u, i, r, self.n_users)
        by_item = csr_by_row(i, u, r, self.n_items)

        def iterate() -> float:
            self.solve_users(by_user)
            self.solve_items(by_item)
            sse = csr_sse(by_item, self.Q, self.bi, self.P, self.bu, self.mu, self.biased)
            return sse / r.shape[0]

        return iterate

    def solve_users(self, by_user) -> None:
        """Half-step: every user row (Pᵤ, bᵤ) solved exactly with Q, bᵢ fixed."""
        solve_rows(by_user, self.P, self.bu, self.Q, self.bi, self.mu, self.reg, self.weighted,
                   self.biased)  # fmt: skip

    def solve_items(self, by_item) -> None:
        """Half-step: every item row (Qᵢ, bᵢ) solved exactly with P, bᵤ fixed."""
        solve_rows(by_item, self.Q, self.bi, self.P, self.bu, self.mu, self.reg, self.weighted,
                   self.biased)  # fmt: skip


def csr_sse(csr, X, bx, Y, by, mu: float, biased: bool) -> float:
    """Σ (r − r̂)² over the ratings in ``csr`` (rows of X), computed in parallel without copies."""
    indptr, cols, vals = csr
    return float(_csr_sse(indptr, cols, vals, X, bx, Y, by, mu, biased))


def solve_rows(csr, X, bx, Y, by, mu, reg, weighted, biased, noise=None) -> None:
    """Solve (or, given ``noise`` of shape (n, d), sample) every row of X, bx in place.

    ``reg`` is one penalty for every column of [bx, X] or an array of d per-column penalties.
    """
    indptr, cols, vals = csr
    d = X.shape[1] + int(biased)
    reg = np.ascontiguousarray(np.broadcast_to(np.asarray(reg, dtype=np.float64), (d,)))
    if noise is None:
        noise = np.zeros((0, d))
    noise = np.ascontiguousarray(noise, dtype=np.float64)
    _als_half_step(indptr, cols, vals, X, bx, Y, by, mu, reg, weighted, biased, noise)
