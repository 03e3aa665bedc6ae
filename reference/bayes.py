"""Bayesian matrix factorisation by Gibbs sampling, averaged into one factor model.

Model: r = μ + bᵤ + bᵢ + Pᵤ·Qᵢ + ε with ε ~ N(0, 1/α), each row [bᵤ, Pᵤ] ~ N(0, I/λ_P) and
[bᵢ, Qᵢ] ~ N(0, I/λ_Q), and Gamma(a₀, b₀) priors on α, λ_P, λ_Q. One sweep draws every user
row from its exact Gaussian conditional (the ALS system with reg = λ_P/α, plus noise), then
every item row, then α, λ_P, λ_Q from their Gamma conditionals.

The prediction is the posterior mean of r̂ over the kept samples s = 1..S. Since
(1/S)·Σₛ Pᵤˢ·Qᵢˢ = [Pᵤ¹ … Pᵤˢ]·[Qᵢ¹ … Qᵢˢ] / S, the average *is* a factor model with k·S
columns (P and Q scaled by 1/√S), so predict and recommend work unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mfrec._internal import check_positive, check_ratings
from mfrec.reference.als import csr_by_row, csr_sse, solve_rows
from mfrec.reference.mf import SeededFactorModel, extends
from mfrec.reference.recommend import seen_items
from mfrec.reference.sampling import init_factors

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


class BayesianMF(SeededFactorModel):
    """Gibbs-sampled biased MF (a simplified BPMF with isotropic priors); see the module doc.

    ``n_samples`` sweeps after ``burn_in`` discarded ones; ``thin`` keeps every thin-th sample.
    """

    @extends(SeededFactorModel, fixed=("biased",))
    def __init__(
        self,
        *,
        n_samples: int = 100,
        burn_in: int = 20,
        thin: int = 1,
        a0: float = 1.0,
        b0: float = 1.0,
        alpha: float | None = None,
        ard: bool = False,
        **params,
    ) -> None:
        super().__init__(**params, biased=True)
        self.n_samples = check_positive("n_samples", n_samples, integer=True)
        self.burn_in = check_positive("burn_in", burn_in, integer=True, allow_zero=True)
        self.thin = check_positive("thin", thin, integer=True)
        self.a0 = check_positive("a0", a0)
        self.b0 = check_positive("b0", b0)
        self.alpha = None if alpha is None else check_positive("alpha", alpha)
        self.ard = bool(ard)

    def _fit_indices(self, u, i, r, n_users: int, n_items: int, callback=None) -> Self:
        """Run burn_in + n_samples sweeps; ``callback(sweep, self)`` after each one sees the
        running average (in burn-in, the current sample); a callback returning True ends the
        chain there, once a sample is kept.

        ``history_`` holds the training MSE of each sweep's single sample; ``alpha_`` the
        last drawn noise precision.
        """
        u, i, r = check_ratings(u, i, r, np.float64)
        rng = np.random.default_rng(self.seed)
        P, Q = init_factors(rng, n_users, n_items, self.n_factors, self.init_std, np.float64)
        bu, bi = np.zeros(n_users), np.zeros(n_items)
        mu = self._start_samples(u, i, r, n_users, n_items)
        self._current = (P, Q, bu, bi)
        by_user = csr_by_row(u, i, r, n_users)
        by_item = csr_by_row(i, u, r, n_items)
        d = self.n_factors + 1
        alpha = 1.0 if self.alpha is None else self.alpha
        lam_P, lam_Q = np.ones(d), np.ones(d)
        for sweep in range(self.burn_in + self.n_samples):
            sd = 1.0 / np.sqrt(alpha)
            noise = rng.standard_normal((n_users, d)) * sd
            solve_rows(by_user, P, bu, Q, bi, mu, lam_P / alpha, False, True, noise)
            noise = rng.standard_normal((n_items, d)) * sd
            solve_rows(by_item, Q, bi, P, bu, mu, lam_Q / alpha, False, True, noise)
            sse = csr_sse(by_item, Q, bi, P, bu, mu, True)
            self.history_.append(sse / r.shape[0])
            if self.alpha is None:
                alpha = rng.gamma(self.a0 + r.shape[0] / 2, 1.0 / (self.b0 + sse / 2))
            lam_P = self._draw_precision(rng, np.column_stack([bu, P]))
            lam_Q = self._draw_precision(rng, np.column_stack([bi, Q]))
            self._keep(sweep, P, Q, bu, bi)
            if callback is not None and callback(sweep, self) and self._kept:
                break  # the callback ends the chain (once a sample is kept)
        return self._finish(alpha)

    def _start_samples(self, u, i, r, n_users: int, n_items: int) -> float:
        """Forget the last fit's average, keep μ (returned), the seen items and the scale, and
        allocate the kept samples' store; ``history_`` starts empty."""
        for name in ("P", "Q", "bu", "bi"):  # a refit must not read the last fit's average
            self.__dict__.pop(name, None)
        self.mu = float(r.mean())
        self._seen_indptr, self._seen_indices = seen_items(u, i, n_users)
        self._remember_scale(r)
        k, n_keep = self.n_factors, -(-self.n_samples // self.thin)
        # Kept samples go side by side into preallocated (n, k·S) arrays: appending by hstack
        # would copy every earlier sample again (O(S²) traffic, gigabytes at ML-25M size).
        self._samples = [
            np.empty((n_users, k * n_keep), dtype=self.dtype),
            np.empty((n_items, k * n_keep), dtype=self.dtype),
            np.zeros(n_users),
            np.zeros(n_items),
        ]
        self._kept, self._average = 0, None
        self.history_: list[float] = []
        return self.mu

    def _keep(self, sweep: int, P, Q, bu, bi) -> slice | None:
        """Add sweep ``sweep``'s (P, Q, bu, bi) to the kept samples when it is one (past
        burn-in, every ``thin``-th); returns its columns in the store, else None."""
        if sweep < self.burn_in or (sweep - self.burn_in) % self.thin:
            return None
        k = self.n_factors
        cols = slice(k * self._kept, k * (self._kept + 1))
        self._samples[0][:, cols] = P
        self._samples[1][:, cols] = Q
        self._samples[2] += bu
        self._samples[3] += bi
        self._kept += 1
        self._average = None
        return cols

    def _finish(self, alpha: float) -> Self:
        """The fitted model: the last α and the kept samples' average as P, Q, bu, bi."""
        self.alpha_ = float(alpha)
        self.P, self.Q, self.bu, self.bi = self._averaged()
        del self._samples, self._current
        return self

    def __getattr__(self, name: str):
        """During fit, P, Q, bu, bi are the running posterior mean, built when first read (in
        burn-in, the current sample)."""
        if name in ("P", "Q", "bu", "bi") and "_samples" in self.__dict__:
            arrays = self._averaged() if self._kept else self._current
            return arrays[("P", "Q", "bu", "bi").index(name)]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _averaged(self) -> tuple[np.ndarray, ...]:
        """(P, Q, bu, bi) of the kept samples' average: factors side by side, scaled by 1/√S."""
        if self._average is None:
            n, scale = self._kept, 1.0 / np.sqrt(self._kept)
            width = self.n_factors * n
            P_all, Q_all, bu_sum, bi_sum = self._samples
            self._average = (
                np.ascontiguousarray(P_all[:, :width] * self.dtype(scale)),
                np.ascontiguousarray(Q_all[:, :width] * self.dtype(scale)),
                (bu_sum / n).astype(self.dtype),
                (bi_sum / n).astype(self.dtype),
            )
        return self._average

    def _draw_precision(self, rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
        """Prior precisions of X's columns from their Gamma conditional (shared, or per column)."""
        if self.ard:
            return rng.gamma(self.a0 + X.shape[0] / 2, 1.0 / (self.b0 + (X**2).sum(0) / 2))
        lam = rng.gamma(self.a0 + X.size / 2, 1.0 / (self.b0 + float((X**2).sum()) / 2))
        return np.full(X.shape[1], lam)
