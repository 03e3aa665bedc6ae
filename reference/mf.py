"""Thin public wrappers: validate input, run the private kernels, keep the learned arrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mfrec._internal import (
    check_dtype,
    check_index,
    check_positive,
    check_ratings,
    check_size,
)
from mfrec.data.splits import UNKNOWN
from mfrec.reference.blocked import BlockedEpochs
from mfrec.reference.early_stopping import EarlyStopping
from mfrec.reference.fast import OrderedEpochs
from mfrec.reference.kernels import _predict
from mfrec.reference.recommend import seen_items, top_k
from mfrec.reference.sampling import init_factors

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

KERNELS = ("exact", "fast", "hogwild", "blocked")
"""The SGD kernels ``MatrixFactorization(kernel=...)`` and ``mfrec train --kernel`` accept."""
SERIAL_KERNELS = ("exact", "fast")
"""Kernels that run on one thread (``n_threads > 1`` is an error for them)."""


def check_query_index(name: str, values, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, known): int64 indices with unknown ones (``UNKNOWN`` or >= n) mapped to 0."""
    a = np.asarray(values)
    a = check_index(name, np.where(a == UNKNOWN, n, a) if a.size else a)
    known = a < n
    return np.where(known, a, 0), known


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
    params: dict
    """The hyper-parameters a model file recorded (set by :func:`mfrec.modelio.load_model`)."""
    factor_form: bool = True
    """Whether predictions are μ + bᵤ + bᵢ + Pᵤ·Qᵢ of the arrays, so a model file holds them."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "P"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit() first")

    def describe(self) -> str:
        """What this model is, in words (its class; the SGD models say more)."""
        return type(self).__name__

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return self.P.shape[0]

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return self.Q.shape[0]

    def predict(self, users, items) -> np.ndarray:
        """r̂ᵤᵢ = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ when biased), clipped to the training rating scale.

        A user or item index equal to ``UNKNOWN`` (-1) or >= n_users / n_items is unknown: its
        pair falls back to the training mean plus the biases that are known (see ``n_unknown_``).
        """
        self._check_fitted()
        u, u_known = check_query_index("users", users, self.n_users)
        i, i_known = check_query_index("items", items, self.n_items)
        if u.shape != i.shape:
            raise ValueError(f"users and items differ in length: {u.shape[0]}, {i.shape[0]}")
        out = self.raw_predict(u, i)
        unknown = ~(u_known & i_known)
        self.n_unknown_ = int(unknown.sum())
        if self.n_unknown_:
            fallback = self.r_mean + np.where(u_known, self.bu[u], 0.0)
            fallback = fallback + np.where(i_known, self.bi[i], 0.0)
            out[unknown] = fallback[unknown]
        return self.clip(out)

    def raw_predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Unclipped r̂ for validated in-range int64 index arrays (the kernel's formula)."""
        out = np.empty(u.shape[0], dtype=self.P.dtype)
        return _predict(u, i, self.P, self.Q, self.bu, self.bi, self.mu, self.biased, out)

    def clip(self, r_hat: np.ndarray) -> np.ndarray:
        """``r_hat`` clipped in place to [r_min, r_max] seen in training (as is, if unknown)."""
        if getattr(self, "r_min", None) is not None:
            np.clip(r_hat, self.r_min, self.r_max, out=r_hat)
        return r_hat

    @property
    def r_mean(self) -> float:
        """The training mean (μ for biased models); the prediction for an unknown pair."""
        return float(getattr(self, "r_mean_", self.mu))

    def score_all(self, user: int) -> np.ndarray:
        """Unclipped predicted rating of every item for one user index (unknown: μ̄ + bᵢ)."""
        self._check_fitted()
        u, known = check_query_index("user", [user], self.n_users)
        if not known[0]:
            return self.r_mean + self.bi.astype(np.float64)
        scores = self.Q @ self.P[int(u[0])]  # (n_items,)
        if self.biased:
            scores = scores + self.mu + self.bu[int(u[0])] + self.bi
        return scores

    def recommend(self, user: int, k: int = 10) -> np.ndarray:
        """The ``k`` best-scored items the user did not rate in training, best first."""
        scores = self.score_all(user)
        u = int(user)
        if 0 <= u < self.n_users:
            exclude = self._seen_indices[self._seen_indptr[u] : self._seen_indptr[u + 1]]
        else:
            exclude = np.empty(0, dtype=np.int64)
        return top_k(scores, exclude, k)

    def _remember_scale(self, ratings: np.ndarray) -> None:
        self.r_min = float(ratings.min())
        self.r_max = float(ratings.max())
        self.r_mean_ = float(ratings.mean())

    def _remember_seen(self, users: np.ndarray, items: np.ndarray) -> None:
        self._seen_indptr, self._seen_indices = seen_items(users, items, self.n_users)


class EpochRunner(Protocol):
    """What :meth:`SGDModel.fit` drives, one per fit: the kernel's epochs over its ratings.

    The runner owns the visiting order (it draws each epoch's from the fit's generator, or walks
    its own layout) and the factors' working copy (the model's own arrays, or device ones).
    A runner may also have ``run_all(lrs) -> np.ndarray``: every epoch back to back where it
    runs, then :meth:`copy_out`, returning Σ e² per epoch; the fit uses it when nothing needs
    the model between epochs (no ``callback``, ``eval_set`` or ``tol``).
    """

    def run(self, lr: float) -> float:
        """One epoch at learning rate ``lr``; returns Σ e² of the pre-update errors."""
        ...

    def copy_out(self) -> None:
        """Make the model's host P, Q, bu, bi current (nothing to do where they are updated)."""
        ...


class SeededFactorModel(FactorModel):
    """A factor model fitted from P0, Q0 drawn from ``seed`` (or copied from ``init``): the
    hyper-parameters every seeded model checks here once (SGD, ALS, Bayesian MF, the neural
    model), and the fit set-up :meth:`_setup` that SGD and ALS share."""

    def __init__(
        self,
        *,
        n_factors: int,
        init_std: float,
        seed: int,
        dtype: str,
        biased: bool,
    ) -> None:
        self.n_factors = check_positive("n_factors", n_factors, integer=True)
        self.init_std = check_positive("init_std", init_std, allow_zero=True)
        self.seed = check_positive("seed", seed, integer=True, allow_zero=True)
        self.dtype = check_dtype(dtype)
        self.biased = bool(biased)

    def _setup(self, users, items, ratings, n_users, n_items, init) -> tuple:
        """Validated (u, i, r), the initial P and Q (drawn from ``seed`` or copied from
        ``init``), μ, and the generator the epochs' orders are drawn from next."""
        u, i, r = check_ratings(users, items, ratings, self.dtype)
        n_users = check_size("n_users", n_users, u)
        n_items = check_size("n_items", n_items, i)
        rng = np.random.default_rng(self.seed)
        if init is None:
            P, Q = init_factors(rng, n_users, n_items, self.n_factors, self.init_std, self.dtype)
        else:
            P, Q = initial_from(init, n_users, n_items, self.n_factors, self.dtype)
        mu = float(r.mean()) if self.biased else 0.0
        return u, i, r, P, Q, mu, rng


class SGDModel(SeededFactorModel):
    """The per-sample SGD models' shared hyper-parameters and their one training loop.

    ``fit`` validates, draws P0, Q0 from ``seed`` (or copies ``init``), then drives the
    :class:`EpochRunner` the subclass's :meth:`_start` returns: the loop here checks each
    epoch's loss is finite, records ``history_``, calls ``callback``, and stops early
    (``eval_set``/``patience``) or on ``tol``. Subclasses list the same hyper-parameters
    explicitly (keyword-only) so that ``inspect.signature`` names every one.
    """

    def __init__(
        self,
        *,
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
        lr_decay: float = 1.0,
    ) -> None:
        super().__init__(
            n_factors=n_factors, init_std=init_std, seed=seed, dtype=dtype, biased=biased
        )
        self.n_epochs = check_positive("n_epochs", n_epochs, integer=True, allow_zero=True)
        self.lr = check_positive("lr", lr)
        self.reg = check_positive("reg", reg, allow_zero=True)
        self.shuffle = bool(shuffle)
        self.tol = None if tol is None else check_positive("tol", tol, allow_zero=True)
        self.lr_decay = check_positive("lr_decay", lr_decay)

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        init: tuple[np.ndarray, np.ndarray] | None = None,
        callback: Callable[[int, SGDModel], None] | None = None,
        eval_set: tuple | None = None,
        patience: int | None = None,
    ) -> Self:
        """Train on 0-based (users, items, ratings); ``init=(P0, Q0)`` starts from copies.

        ``callback(epoch, self)`` runs after every epoch. ``history_`` holds each epoch's
        training MSE (mean of the pre-update e² seen during the epoch); ``tol`` stops on it.
        Epoch e uses lr·lr_decayᵉ. ``eval_set=(users, items, ratings)`` records validation RMSE
        in ``val_history_``; with ``patience`` training stops after that many epochs without a
        new best and the best epoch's parameters are restored (``best_epoch_``).
        """
        stopper = None if eval_set is None else EarlyStopping(eval_set, patience)
        u, i, r, P, Q, mu, rng = self._setup(users, items, ratings, n_users, n_items, init)
        self.history_: list[float] = []
        runner, first_epoch = self._start(u, i, r, P, Q, mu, rng)
        self._remember_seen(u, i)
        self._remember_scale(r)
        lrs = [self.lr * self.lr_decay**epoch for epoch in range(first_epoch, self.n_epochs)]
        run_all = getattr(runner, "run_all", None)
        if run_all is not None and callback is None and stopper is None and self.tol is None:
            for epoch, (lr, sse) in enumerate(zip(lrs, run_all(lrs), strict=True), first_epoch):
                self._record(float(sse) / r.shape[0], epoch, lr)
            return self
        for epoch, lr in enumerate(lrs, first_epoch):
            sse = runner.run(lr)
            runner.copy_out()
            train_mse = self._record(sse / r.shape[0], epoch, lr)
            self._epoch_done(epoch)
            if callback is not None:
                callback(epoch, self)
            if stopper is not None and stopper.update(epoch, self):
                break
            if self.tol is not None and train_mse < self.tol:
                break
        if stopper is not None:
            self.val_history_ = stopper.history
            self.best_epoch_ = stopper.best_epoch
            if patience is not None:
                stopper.restore(self)
        return self

    def _record(self, train_mse: float, epoch: int, lr: float) -> float:
        """Check epoch ``epoch``'s training MSE (run at ``lr``) is finite; append it."""
        check_finite(train_mse, epoch, lr, self.lr, self.lr_decay)
        self.history_.append(train_mse)
        return train_mse

    def describe(self) -> str:
        """What trains, in words: "biased" only when μ + bᵤ + bᵢ are learned, then what runs."""
        kind = "biased SGD MF" if self.biased else "SGD MF (no biases)"
        return f"{kind}: k={self.n_factors}, lr {self.lr}, reg {self.reg}; {self._runs_on()}"

    def _runs_on(self) -> str:
        raise NotImplementedError

    def _start(
        self, u, i, r, P: np.ndarray, Q: np.ndarray, mu: float, rng: np.random.Generator
    ) -> tuple[EpochRunner, int]:
        """Take the initial P, Q and μ as the model's parameters (so that ``n_users`` works)
        and return (runner, first_epoch): the :class:`EpochRunner` of this fit, drawing its
        orders from ``rng`` or walking its own layout, and the epoch to start from."""
        raise NotImplementedError

    def _epoch_done(self, epoch: int) -> None:
        """After an epoch's loss is recorded and the factors copied out, before the callback
        (e.g. write a checkpoint)."""


class HostEpochs:
    """The :class:`EpochRunner` of a CPU kernel: its epoch function updates the model's own
    P, Q, bu, bi in place (so :meth:`copy_out` has nothing to do).

    ``epochs(P, Q, bu, bi, mu, lr, reg, biased)`` is an :class:`~mfrec.reference.fast.
    OrderedEpochs` or :class:`~mfrec.reference.blocked.BlockedEpochs`; every scalar is passed in
    the factors' dtype.
    """

    def __init__(self, epochs: OrderedEpochs | BlockedEpochs, model: MatrixFactorization) -> None:
        self.epochs = epochs
        self.dtype = model.dtype
        self.factors = (model.P, model.Q, model.bu, model.bi)
        self.hyper = (self.dtype(model.mu), self.dtype(model.reg), model.biased)

    def run(self, lr: float) -> float:
        """One epoch of the kernel at ``lr``; returns Σ e²."""
        mu, reg, biased = self.hyper
        return self.epochs(*self.factors, mu, self.dtype(lr), reg, biased)

    def copy_out(self) -> None:
        """Nothing: the kernel updated the model's arrays."""


class EpochFunction:
    """The :class:`EpochRunner` of an epoch function ``run(lr) -> Σ loss`` that updates the
    model's own arrays (or its module) in place, so :meth:`copy_out` has nothing to do."""

    def __init__(self, run: Callable[[float], float]) -> None:
        self.run = run

    def copy_out(self) -> None:
        """Nothing: the epoch function updated the model's parameters."""


class MatrixFactorization(SGDModel):
    """The slides' latent factor model trained by per-sample SGD (the Numba reference).

    ``biased=True`` adds μ + bᵤ + bᵢ (scikit-surprise's SVD rule); ``reg=0`` is the slides' model.
    ``kernel`` names what runs (see :data:`KERNELS`): ``"exact"`` the reference kernel,
    ``"fast"`` the vectorised one (equal to the reference to rounding), both on one thread;
    ``"hogwild"`` the lock-free kernel over ``n_threads`` threads (races: not reproducible; see
    :mod:`mfrec.reference.fast`); ``"blocked"`` LibMF-style blocked SGD, race-free on any
    ``n_threads`` (see :mod:`mfrec.reference.blocked`), visiting ratings in its own order.
    """

    # The hyper-parameters of SGDModel, listed again so that inspect.signature (which the CLI
    # reads to match flags to models) names each one; validated once, in SGDModel.
    def __init__(
        self,
        *,
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
        lr_decay: float = 1.0,
        n_threads: int = 1,
        kernel: str = "exact",
    ) -> None:
        super().__init__(
            n_factors=n_factors, n_epochs=n_epochs, lr=lr, reg=reg, init_std=init_std,
            shuffle=shuffle, seed=seed, dtype=dtype, biased=biased, tol=tol, lr_decay=lr_decay,
        )  # fmt: skip
        self.n_threads = check_positive("n_threads", n_threads, integer=True)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if kernel in SERIAL_KERNELS and n_threads > 1:
            raise ValueError(
                f"kernel={kernel!r} runs on one thread, got n_threads={n_threads}: use "
                "kernel='blocked' (race-free, reproducible) or kernel='hogwild' (lock-free)"
            )
        self.kernel = kernel

    def _runs_on(self) -> str:
        threads = f" on {self.n_threads} threads" if self.n_threads > 1 else ""
        return f"numba kernel {self.kernel}{threads}"

    def _start(self, u, i, r, P, Q, mu, rng):
        bu = np.zeros(P.shape[0], dtype=self.dtype)
        bi = np.zeros(Q.shape[0], dtype=self.dtype)
        self.P, self.Q, self.bu, self.bi, self.mu = P, Q, bu, bi, mu
        return self._epoch_runner(u, i, r, rng), 0

    def _epoch_runner(self, u, i, r, rng) -> EpochRunner:
        """The kernel's :class:`EpochRunner` over these ratings; it owns the visiting order."""
        if self.kernel == "blocked":
            layout_rng = np.random.default_rng((self.seed, 1))  # layout and block order
            n_users, n_items = self.P.shape[0], self.Q.shape[0]
            epochs = BlockedEpochs(
                u, i, r, n_users, n_items, self.n_factors, layout_rng, self.shuffle, self.n_threads
            )
        else:
            epochs = OrderedEpochs(self.kernel, u, i, r, rng, self.shuffle, self.n_threads)
        return HostEpochs(epochs, self)


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


def check_finite(
    train_mse: float, epoch: int, lr: float, lr_start: float | None = None, lr_decay: float = 1.0
) -> None:
    """Stop with a clear error when the loss became NaN or infinite.

    ``lr`` is the learning rate epoch ``epoch`` ran at; ``lr_start`` and ``lr_decay`` (when
    given) the schedule it came from, lr = lr_start·lr_decayᵉᵖᵒᶜʰ, which the message names.
    """
    if np.isfinite(train_mse):
        return
    at = f"lr={lr:g}"
    if lr_start is not None and lr_decay != 1.0:
        at = f"learning rate {lr:g} (lr={lr_start:g} × lr_decay={lr_decay:g}^{epoch})"
    raise DivergenceError(
        f"training diverged at epoch {epoch + 1} (training MSE {train_mse}) at {at}; "
        "lower the learning rate"
    )
