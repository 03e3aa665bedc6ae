"""Thin public wrappers: validate input, run the private kernels, keep the learned arrays."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reference._validate import (
    check_dtype,
    check_index,
    check_positive,
    check_ratings,
    check_size,
)
from reference.fast import KERNELS, epoch_kernel
from reference.kernels import _predict
from reference.recommend import seen_items, top_k
from reference.sampling import epoch_order, init_factors


class DivergenceError(FloatingPointError, ValueError):
    """Training produced a NaN or infinite loss."""


class FactorModel:
    """What every fitted factor model shares: P, Q, biases, prediction and top-K."""

    P: np.ndarray
    Q: np.ndarray
    bu: np.ndarray
    bi: np.ndarray
    mu: float
    biased: bool

    def _check_fitted(self) -> None:
        if not hasattr(self, "P"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit() first")

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return self.P.shape[0]

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return self.Q.shape[0]

    def predict(self, users, items) -> np.ndarray:
        """r̂ᵤᵢ = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ when biased) for each (user, item) pair."""
        self._check_fitted()
        u = check_index("users", users, self.n_users)
        i = check_index("items", items, self.n_items)
        if u.shape != i.shape:
            raise ValueError(f"users and items differ in length: {u.shape[0]}, {i.shape[0]}")
        out = np.empty(u.shape[0], dtype=self.P.dtype)
        return _predict(u, i, self.P, self.Q, self.bu, self.bi, self.mu, self.biased, out)

    def score_all(self, user: int) -> np.ndarray:
        """Predicted rating of every item for one user index."""
        self._check_fitted()
        u = int(check_index("user", [user], self.n_users)[0])
        scores = self.Q @ self.P[u]  # (n_items,)
        if self.biased:
            scores = scores + self.mu + self.bu[u] + self.bi
        return scores

    def recommend(self, user: int, k: int = 10) -> np.ndarray:
        """The ``k`` best-scored items the user did not rate in training, best first."""
        scores = self.score_all(user)
        u = int(user)
        exclude = self._seen_indices[self._seen_indptr[u] : self._seen_indptr[u + 1]]
        return top_k(scores, exclude, k)

    def _remember_seen(self, users: np.ndarray, items: np.ndarray) -> None:
        self._seen_indptr, self._seen_indices = seen_items(users, items, self.n_users)


class MatrixFactorization(FactorModel):
    """The slides' latent factor model trained by per-sample SGD (the Numba reference).

    ``biased=True`` adds μ + bᵤ + bᵢ (scikit-surprise's SVD rule); ``reg=0`` is the slides' model.
    ``kernel="fast"`` runs the vectorised kernel (equal to the reference to rounding) and
    ``n_threads > 1`` the Hogwild kernel over that many threads (see :mod:`reference.fast`).
    """

    def __init__(
        self,
        n_factors: int = 10,
        n_epochs: int = 20,
        lr: float = 0.01,
        reg: float = 0.0,
        init_std: float = 0.1,
        shuffle: bool = True,
        seed: int = 0,
        dtype: str = "float64",
        biased: bool = False,
        tol: float | None = None,
        n_threads: int = 1,
        kernel: str = "exact",
    ) -> None:
        self.n_factors = check_positive("n_factors", n_factors, integer=True)
        self.n_epochs = check_positive("n_epochs", n_epochs, integer=True, allow_zero=True)
        self.lr = check_positive("lr", lr)
        self.reg = check_positive("reg", reg, allow_zero=True)
        self.init_std = check_positive("init_std", init_std, allow_zero=True)
        self.shuffle = bool(shuffle)
        self.seed = check_positive("seed", seed, integer=True, allow_zero=True)
        self.dtype = check_dtype(dtype)
        self.biased = bool(biased)
        self.tol = None if tol is None else check_positive("tol", tol, allow_zero=True)
        self.n_threads = check_positive("n_threads", n_threads, integer=True)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        init: tuple[np.ndarray, np.ndarray] | None = None,
        callback: Callable[[int, MatrixFactorization], None] | None = None,
    ) -> MatrixFactorization:
        """Train on 0-based (users, items, ratings); ``init=(P0, Q0)`` starts from copies.

        ``callback(epoch, self)`` runs after every epoch. ``history_`` holds each epoch's
        training MSE (mean of the pre-update e² seen during the epoch); ``tol`` stops on it.
        """
        u, i, r = check_ratings(users, items, ratings, self.dtype)
        n_users = check_size("n_users", n_users, u)
        n_items = check_size("n_items", n_items, i)
        rng = np.random.default_rng(self.seed)
        P, Q = self._initial_factors(rng, n_users, n_items, init)
        mu = float(r.mean()) if self.biased else 0.0
        bu = np.zeros(n_users, dtype=self.dtype)
        bi = np.zeros(n_items, dtype=self.dtype)
        lr = self.dtype(self.lr)
        reg = self.dtype(self.reg)
        mu_t = self.dtype(mu)
        self.P, self.Q, self.bu, self.bi, self.mu = P, Q, bu, bi, mu
        self._remember_seen(u, i)
        self.history_: list[float] = []
        sgd_epoch = self._epoch_kernel(u, i, r, P, Q, bu, bi)
        for epoch in range(self.n_epochs):
            order = epoch_order(rng, r.shape[0], self.shuffle)
            sse = sgd_epoch(u, i, r, order, P, Q, bu, bi, mu_t, lr, reg, self.biased)
            train_mse = float(sse) / r.shape[0]
            check_finite(train_mse, epoch, self.lr)
            self.history_.append(train_mse)
            if callback is not None:
                callback(epoch, self)
            if self.tol is not None and train_mse < self.tol:
                break
        return self

    def _epoch_kernel(self, u, i, r, P, Q, bu, bi):
        """The function that runs one epoch over these arrays (see :func:`epoch_kernel`)."""
        return epoch_kernel(self.kernel, self.n_threads)

    def _initial_factors(self, rng, n_users, n_items, init):
        if init is None:
            return init_factors(rng, n_users, n_items, self.n_factors, self.init_std, self.dtype)
        return initial_from(init, n_users, n_items, self.n_factors, self.dtype)


def initial_from(init, n_users: int, n_items: int, k: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Validated contiguous copies of user-given ``init=(P0, Q0)``."""
    P0, Q0 = init
    P = np.array(P0, dtype=dtype, order="C", copy=True)
    Q = np.array(Q0, dtype=dtype, order="C", copy=True)
    if P.shape != (n_users, k) or Q.shape != (n_items, k):
        raise ValueError(
            f"init shapes {P.shape}, {Q.shape} do not match ({n_users}, {k}), ({n_items}, {k})"
        )
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(Q))):
        raise ValueError("init holds NaN or inf")
    return P, Q


def check_finite(train_mse: float, epoch: int, lr: float) -> None:
    """Stop with a clear error when the loss became NaN or infinite."""
    if not np.isfinite(train_mse):
        raise DivergenceError(
            f"training diverged at epoch {epoch + 1} (training MSE {train_mse}); "
            f"lower the learning rate lr={lr}"
        )
