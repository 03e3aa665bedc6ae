"""Thin public wrappers: validate input, run the private kernels, keep the learned arrays."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, cast, overload

import numpy as np

from mfrec._internal import (
    check_dtype,
    check_index,
    check_positive,
    check_ratings,
)
from mfrec.data.dataset import Ratings, training_ratings
from mfrec.data.ids import UNKNOWN, as_ids, lookup
from mfrec.reference.blocked import BlockedEpochs
from mfrec.reference.early_stopping import EarlyStopping
from mfrec.reference.fast import OrderedEpochs
from mfrec.reference.kernels import _predict
from mfrec.reference.recommend import seen_items, top_k, top_k_rows
from mfrec.reference.sampling import init_factors
from mfrec.reference.serving import fold_in, fold_in_scores, similar_items

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


SCORE_CHUNK = 1 << 23
"""Scores held at once by a batched ``recommend`` (users per chunk × items; 64 MiB)."""


def _index_of(ids: np.ndarray | None, n: int, raw, name: str) -> np.ndarray:
    """Index of each raw id in the map ``ids`` (None: ids are the indices 0 … n−1), with
    ``UNKNOWN`` where the model does not know it."""
    a = as_ids(raw, name)
    if ids is None or (ids.dtype.kind in "iu" and ids.shape[0] == n and _is_arange(ids)):
        if a.dtype.kind not in "iu":
            return lookup(np.arange(n), a)
        return np.where((a >= 0) & (a < n), a, UNKNOWN).astype(np.int64)
    return lookup(ids, a)


def _is_arange(ids: np.ndarray) -> bool:
    return bool(np.array_equal(ids, np.arange(ids.shape[0])))


ENTRY_NOTE = """

        Takes raw ids (integers or text: arrays, lists, pandas or polars columns) or one
        :class:`mfrec.data.Ratings` as ``users``; with ``n_users``/``n_items``, 0-based
        indices. The id maps are kept in ``user_ids_`` and ``item_ids_``.
        """


def fit_entry(fit: Callable) -> Callable:
    """The public ``fit`` over an index-level ``fit`` body a subclass defines itself (see
    :class:`FactorModel`), as :meth:`FactorModel.fit` is over :meth:`FactorModel._fit_indices`.
    """

    @functools.wraps(fit)
    def entry(self, users, items=None, ratings=None, n_users=None, n_items=None, *args, **kw):
        body = functools.partial(fit, self)
        return fit_on_indices(self, body, (users, items, ratings, n_users, n_items), args, kw)

    entry.__doc__ = (fit.__doc__ or "").rstrip() + ENTRY_NOTE
    return entry


def fit_on_indices(model, body: Callable, given: tuple, args: tuple, kw: dict):
    """Run ``body(u, i, r, n_users, n_items, *args, **kw)`` on the 0-based indices of what
    ``fit(users, items, ratings, n_users, n_items)`` was ``given`` (a :class:`Ratings` as
    ``users``, raw ids, or with ``n_users``/``n_items`` indices), then keep the id maps.

    A tuple ``eval_set`` holds raw ids like the training data (a :class:`Ratings` aligned to the
    training one, its indices); ``init=(P0, Q0)`` has one row per distinct user and item.
    """
    data, raw = training_ratings(*given)
    eval_set = kw.get("eval_set")
    if isinstance(eval_set, Ratings):
        kw["eval_set"] = (eval_set.users, eval_set.items, eval_set.ratings)
    elif eval_set is not None and raw:
        vu, vi, vr = eval_set
        vu = lookup(data.user_ids, as_ids(vu, "eval_set users"))
        kw["eval_set"] = (vu, lookup(data.item_ids, as_ids(vi, "eval_set items")), vr)
    model.user_ids_ = model.item_ids_ = None  # index-level while the body runs
    out = body(data.users, data.items, data.ratings, data.n_users, data.n_items, *args, **kw)
    model.user_ids_, model.item_ids_ = data.user_ids, data.item_ids
    if data.titles:
        model.titles_ = data.titles
    return out


class DivergenceError(FloatingPointError, ValueError):
    """Training produced a NaN or infinite loss."""


class FactorModel:
    """What every fitted factor model shares: P, Q, biases, prediction and top-K.

    The public methods speak raw ids: ``fit`` takes (users, items, ratings) as integers of any
    size or text (NumPy arrays, lists, pandas or polars columns), or one
    :class:`mfrec.data.Ratings`, and keeps the id maps ``user_ids_`` and ``item_ids_`` (index →
    raw id). Given ``n_users``/``n_items``, ``fit`` takes 0-based indices instead (identity
    maps). ``predict``, ``recommend`` and ``similar_items`` take and return raw ids; an unknown
    id is scored by the fallback (training mean plus the known bias) and counted in
    ``n_unknown_``. Under that one entry a subclass trains in :meth:`_fit_indices` on 0-based
    indices; one that overrides ``fit`` itself gets its ``fit`` wrapped the same way
    (:func:`fit_entry`, when the class is defined).
    """

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
    user_ids_: np.ndarray | None = None
    item_ids_: np.ndarray | None = None
    titles_: dict
    """Raw item id → title, when the training data or the model file had titles."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__:
            cls.fit = fit_entry(cls.__dict__["fit"])

    def fit(
        self,
        users,
        items=None,
        ratings=None,
        n_users: int | None = None,
        n_items: int | None = None,
        *args,
        **kw,
    ) -> Self:
        """Train on (users, items, ratings); returns the model.

        Takes raw ids (integers or text: arrays, lists, pandas or polars columns) or one
        :class:`mfrec.data.Ratings` as ``users``; with ``n_users``/``n_items``, 0-based
        indices. The id maps are kept in ``user_ids_`` and ``item_ids_``.

        After the data come the model's own options (see its :meth:`_fit_indices`):
        ``callback(step, self)`` after every epoch, iteration or sweep (every model; SGD MF
        and the Gibbs chains end there when it returns True);
        ``init=(P0, Q0)`` (SGD, SVD++, ALS), one row per distinct user and item;
        ``eval_set=(users, items, ratings)`` in the ids of the training data, and ``patience``
        (SGD, SVD++, the neural models); feature blocks (SVD++, BayesianFM).
        """
        given = (users, items, ratings, n_users, n_items)
        return fit_on_indices(self, self._fit_indices, given, args, kw)

    def _fit_indices(self, u, i, r, n_users: int, n_items: int, *args, **kw) -> Self:
        """Train on 0-based (u, i, r) with ``n_users``, ``n_items`` rows (sizes checked);
        ``args``/``kw``: the options given to :meth:`fit`."""
        raise NotImplementedError

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

    @overload
    def predict(self, users: int | str | np.integer, items: int | str | np.integer) -> float: ...
    @overload
    def predict(self, users, items) -> np.ndarray: ...
    def predict(self, users, items) -> float | np.ndarray:
        """Predicted ratings of (user, item) pairs given by raw id, clipped to the training scale.

        ``users`` and ``items`` are two raw ids (returns a float) or two sequences of one length
        (returns an array). An id the model was not trained on is unknown: its pair falls back
        to the training mean plus the biases that are known (``n_unknown_`` counts them).
        """
        self._check_fitted()
        u = self._user_index(users, "users")
        i = self._item_index(items, "items")
        if u.shape != i.shape:
            raise ValueError(f"users and items differ in length: {u.shape[0]}, {i.shape[0]}")
        out = self._predict_indices(u, i)
        return float(out[0]) if np.ndim(users) == 0 and np.ndim(items) == 0 else out

    def _predict_indices(self, users, items) -> np.ndarray:
        """``predict`` on 0-based index arrays; ``UNKNOWN`` (-1) or >= n_users / n_items marks
        an unknown user or item (the index-level path for fit, ensembles and the CLI)."""
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
        return self._score_rows(np.where(known, u, UNKNOWN))[0]

    def _score_rows(self, u: np.ndarray) -> np.ndarray:
        """(len(u), n_items) unclipped scores for user indices ``u``, in P's dtype; an
        ``UNKNOWN`` row is μ̄ + bᵢ. Biases are added in place: one pass over the scores each."""
        known = np.flatnonzero(u != UNKNOWN)
        M = self.P[u[known]] @ self.Q.T  # (c_known, n_items)
        if self.biased:
            M += (self.mu + self.bu[u[known]])[:, None]
            M += self.bi
        if known.size == u.shape[0]:
            return M
        S = np.empty((u.shape[0], self.n_items), dtype=M.dtype)  # (c, n_items)
        S[known] = M
        S[u == UNKNOWN] = self.r_mean + self.bi
        return S

    def recommend(self, users, k: int = 10, filter_seen: bool = True):
        """(item ids, scores) of the ``k`` best-scored items for raw user id(s), best first.

        One user gives two 1-D arrays (shorter than ``k`` when fewer items are left unseen);
        a sequence of users gives two (n_users, k) arrays computed in one batched pass, a row
        with fewer than ``k`` candidates padded with score -inf. Scores are predicted ratings
        clipped to the training scale. ``filter_seen`` leaves out the items each user rated in
        training. An unknown user is ranked by the fallback μ̄ + bᵢ.
        """
        self._check_fitted()
        k = check_positive("k", k, integer=True, allow_zero=True)
        u = self._user_index(users, "users")
        top, scores = self._recommend_indices(u, k, filter_seen)
        items = self._item_ids()[top]
        if np.ndim(users) == 0:
            keep = np.isfinite(scores[0])
            return items[0][keep], scores[0][keep]
        return items, scores

    def _recommend_indices(self, u: np.ndarray, k: int, filter_seen: bool = True):
        """(item indices, clipped scores), both (len(u), min(k, n_items)), for user indices
        (``UNKNOWN``: the fallback): scores in chunks of users, seen items set to -inf, then
        each row's top k (ties: the lower index first, as :func:`top_k`)."""
        n_items = self.n_items
        k = min(k, n_items)
        top = np.empty((u.shape[0], k), dtype=np.int64)
        scores = np.empty((u.shape[0], k))
        chunk = max(1, SCORE_CHUNK // n_items)
        for start in range(0, u.shape[0], chunk):
            uc = u[start : start + chunk]
            S = self._score_rows(uc)  # (c, n_items)
            if filter_seen:
                rows, cols = self._seen_cells(uc)
                S[rows, cols] = -np.inf
            top[start : start + chunk], scores[start : start + chunk] = top_k_rows(S, k)
        finite = np.isfinite(scores)
        scores[finite] = self.clip(scores[finite])
        return top, scores

    def _seen_cells(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) of every training rating of the users ``u`` (none for ``UNKNOWN``)."""
        known = u != UNKNOWN
        starts = np.where(known, self._seen_indptr[np.maximum(u, 0)], 0)
        counts = np.where(known, self._seen_indptr[np.maximum(u, 0) + 1] - starts, 0)
        rows = np.repeat(np.arange(u.shape[0]), counts)
        first = np.cumsum(counts) - counts  # (c,) offset of each row's run in ``rows``
        pos = np.arange(rows.shape[0]) - first[rows] + starts[rows]
        return rows, self._seen_indices[pos]

    def similar_items(self, items, k: int = 10):
        """(item ids, cosines) of the ``k`` items nearest to raw item id(s) by cosine on Q.

        One item gives 1-D arrays; a sequence gives (n_items, k) arrays. An item the model
        does not know is a ``ValueError`` naming it.
        """
        self._check_fitted()
        k = check_positive("k", k, integer=True, allow_zero=True)
        i = self._item_index(items, "items")
        if np.any(i == UNKNOWN):
            bad = as_ids(items, "items")[np.flatnonzero(i == UNKNOWN)[0]].item()
            raise ValueError(f"items: {bad!r} is not an item id this model was trained on")
        pairs = [similar_items(self.Q, int(j), k) for j in i]
        ids = self._item_ids()
        top = np.stack([ids[p[0]] for p in pairs])
        cos = np.stack([p[1] for p in pairs])
        return (top[0], cos[0]) if np.ndim(items) == 0 else (top, cos)

    def recommend_new_user(self, items, ratings, k: int = 10, user_features=None):
        """(item ids, scores) of the ``k`` best items for a user the model never saw, who rated
        ``items`` (raw ids) with ``ratings``: their row of P is folded in by a ridge solve
        against the fixed Q (:func:`mfrec.reference.serving.fold_in`, with the model's L2
        penalty); the rated items are left out. An unknown item is a ``ValueError``.
        ``user_features``: the new user's feature names, for a model that sums user features
        (SVD++); any other model refuses them."""
        self._check_fitted()
        i = self._item_index(items, "items")
        if np.any(i == UNKNOWN):
            bad = as_ids(items, "items")[np.flatnonzero(i == UNKNOWN)[0]].item()
            raise ValueError(f"items: {bad!r} is not an item id this model was trained on")
        params = getattr(self, "params", None) or vars(self)
        reg = float(params.get("reg") or 0.0)
        p, bu = self._fold_in(i, ratings, reg, user_features)
        scores = fold_in_scores(self.Q, self.bi, self.mu, self.biased, p, bu)
        top = top_k(scores, i, check_positive("k", k, integer=True, allow_zero=True))
        return self._item_ids()[top], self.clip(scores[top])

    def _fold_in(
        self, i: np.ndarray, ratings, reg: float, user_features=None
    ) -> tuple[np.ndarray, float]:
        """(row of P, bᵤ) of a new user who rated the item indices ``i`` with ``ratings``."""
        if user_features:
            raise ValueError(
                f"a {type(self).__name__} sums no user features: its fold-in takes ratings only"
            )
        return fold_in(self.Q, self.bi, self.mu, self.biased, i, ratings, reg)

    def save(self, path, titles: dict | None = None):
        """Write the model file at ``path`` atomically (read back by :func:`mfrec.load`).

        ``titles`` (raw item id → title) defaults to those of the :class:`Ratings` it was fit
        on. Refused (``ModelFileError``) for a model whose predictions are not
        μ + bᵤ + bᵢ + Pᵤ·Qᵢ (``NeuralMF``) and for an unfitted one. Returns the path.
        """
        from mfrec.modelio import save_model

        fitted = hasattr(self, "P")  # else save_model refuses, naming the file
        ids = (self._user_ids(), self._item_ids()) if fitted else (None, None)
        titles = getattr(self, "titles_", None) if titles is None else titles
        return save_model(path, self, *ids, titles)

    def _user_ids(self) -> np.ndarray:
        return np.arange(self.n_users) if self.user_ids_ is None else self.user_ids_

    def _item_ids(self) -> np.ndarray:
        return np.arange(self.n_items) if self.item_ids_ is None else self.item_ids_

    def _user_index(self, users, name: str) -> np.ndarray:
        return _index_of(self.user_ids_, self.n_users, users, name)

    def _item_index(self, items, name: str) -> np.ndarray:
        return _index_of(self.item_ids_, self.n_items, items, name)

    def _remember_scale(self, ratings: np.ndarray) -> None:
        self.r_min = float(ratings.min())
        self.r_max = float(ratings.max())
        self.r_mean_ = float(ratings.mean())

    def _remember_seen(self, users: np.ndarray, items: np.ndarray) -> None:
        self._seen_indptr, self._seen_indices = seen_items(users, items, self.n_users)


class EpochRunner(Protocol):
    """What :meth:`SGDModel._fit` drives, one per fit: the kernel's epochs over its ratings.

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


Init = TypeVar("Init", bound=Callable[..., None])


def extends(
    parent: type, fixed: tuple[str, ...] = (), **defaults: object
) -> Callable[[Init], Init]:
    """Decorate the ``__init__(self, *, own…, **params)`` of a subclass of ``parent`` whose
    body passes ``params`` on to ``parent.__init__``: the parent's hyper-parameters are
    declared and checked once, there.

    ``defaults`` are the parent's parameters whose default this class changes (a call that
    leaves one out gets it); ``fixed`` names those the class sets itself and so no longer
    takes. The ``__signature__`` names the own parameters and the parent's others, with this
    class's defaults: ``inspect.signature``, ``help()``, the factory's
    :func:`~mfrec.factory.constructor_args` and model files' :func:`~mfrec.modelstate.ctor_params`
    see every one, and a call with a name it lacks is a ``TypeError``.
    """
    inherited = inspect.signature(parent.__init__).parameters
    unknown = sorted((set(defaults) | set(fixed)) - set(inherited))
    if unknown:
        raise TypeError(f"{parent.__name__}.__init__ takes no parameter {unknown[0]!r}")

    def decorate(init: Init) -> Init:
        sig = inspect.signature(init)
        own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = [
            p.replace(default=defaults.get(name, p.default))
            for name, p in inherited.items()
            if p.kind is p.KEYWORD_ONLY and name not in fixed and name not in sig.parameters
        ]
        first = [p for p in own if p.kind is not p.KEYWORD_ONLY]  # self (and any positional)
        full = sig.replace(parameters=[*first, *taken, *(p for p in own if p not in first)])

        @functools.wraps(init)
        def init_with_defaults(self, *args, **params) -> None:
            try:
                full.bind(self, *args, **params)
            except TypeError as e:  # a name the class does not take, as Python would say it
                raise TypeError(f"{type(self).__name__}.__init__() {e}") from None
            init(self, *args, **{**defaults, **params})

        init_with_defaults.__signature__ = full  # pyright: ignore[reportAttributeAccessIssue]
        return cast(Init, init_with_defaults)

    return decorate


class SeededFactorModel(FactorModel):
    """A factor model fitted from P0, Q0 drawn from ``seed`` (or copied from ``init``): the
    hyper-parameters every seeded model checks here once (SGD, ALS, Bayesian MF, the neural
    model), and the training SGD and ALS share (:meth:`_fit_indices`): validate, draw or
    copy P0, Q0, then run the subclass's :meth:`_fit`. A subclass declares what it adds or
    changes and passes the rest on (:func:`extends`)."""

    def __init__(
        self,
        *,
        n_factors: int = 10,
        init_std: float = 0.1,
        seed: int = 0,
        dtype: str = "float64",
        biased: bool = False,
    ) -> None:
        self.n_factors = check_positive("n_factors", n_factors, integer=True)
        self.init_std = check_positive("init_std", init_std, allow_zero=True)
        self.seed = check_positive("seed", seed, integer=True, allow_zero=True)
        self.dtype = check_dtype(dtype)
        self.biased = bool(biased)

    def _fit_indices(
        self, u, i, r, n_users: int, n_items: int, init: tuple | None = None, callback=None, **kw
    ) -> Self:
        """Train from P0, Q0 drawn from ``seed`` (or copies of ``init=(P0, Q0)``);
        ``callback(step, self)`` runs after every epoch (or iteration); ``kw``: the model's own
        options (SGD: ``eval_set``, ``patience``, see :meth:`SGDModel._fit`). ``history_``
        holds the training MSE after each step.
        """
        u, i, r = check_ratings(u, i, r, self.dtype)
        rng = np.random.default_rng(self.seed)
        if init is None:
            P, Q = init_factors(rng, n_users, n_items, self.n_factors, self.init_std, self.dtype)
        else:
            P, Q = initial_from(init, n_users, n_items, self.n_factors, self.dtype)
        mu = float(r.mean()) if self.biased else 0.0
        return self._fit((u, i, r, P, Q, mu, rng), callback, **kw)

    def _fit(self, start: tuple, callback) -> Self:
        """The fit from ``start`` = (u, i, r, P, Q, μ, rng): the validated ratings, the
        initial P and Q, μ, and the generator the epochs' orders are drawn from next."""
        raise NotImplementedError


class SGDModel(SeededFactorModel):
    """The per-sample SGD models' shared hyper-parameters and their one training loop.

    ``fit`` validates, draws P0, Q0 from ``seed`` (or copies ``init``), then drives the
    :class:`EpochRunner` the subclass's :meth:`_start` returns: the loop here checks each
    epoch's loss is finite, records ``history_``, calls ``callback``, and stops early
    (``eval_set``/``patience``, or the callback returning True) or on ``tol``. The
    hyper-parameters are keyword-only: those of :class:`SeededFactorModel` and the SGD ones
    here; a subclass declares only what it adds or changes (:func:`extends`), and
    ``inspect.signature`` still names every one.
    """

    @extends(SeededFactorModel)
    def __init__(
        self,
        *,
        n_epochs: int = 20,
        lr: float = 0.01,
        reg: float = 0.0,
        shuffle: bool = True,
        tol: float | None = None,
        lr_decay: float = 1.0,
        **params,
    ) -> None:
        super().__init__(**params)
        self.n_epochs = check_positive("n_epochs", n_epochs, integer=True, allow_zero=True)
        self.lr = check_positive("lr", lr)
        self.reg = check_positive("reg", reg, allow_zero=True)
        self.shuffle = bool(shuffle)
        self.tol = None if tol is None else check_positive("tol", tol, allow_zero=True)
        self.lr_decay = check_positive("lr_decay", lr_decay)

    def _fit(
        self, start: tuple, callback, eval_set: tuple | None = None, patience: int | None = None
    ) -> Self:
        """The epochs from ``start``; ``history_`` holds each epoch's training MSE (mean of
        the pre-update e² seen during the epoch); ``tol`` stops on it. Epoch e uses
        lr·lr_decayᵉ. ``eval_set=(users, items, ratings)`` records validation RMSE in
        ``val_history_``; with ``patience`` training stops after that many epochs without a new
        best and the best epoch's parameters are restored (``best_epoch_``).
        """
        stopper = None if eval_set is None else EarlyStopping(eval_set, patience)
        u, i, r = start[:3]
        self.history_: list[float] = []
        runner, first_epoch = self._start(*start)
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
            ended = callback is not None and bool(callback(epoch, self))
            if (stopper is not None and stopper.update(epoch, self)) or ended:
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

    @extends(SGDModel)
    def __init__(self, *, n_threads: int = 1, kernel: str = "exact", **params) -> None:
        super().__init__(**params)
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
