"""SVD++ (Koren 2008) with feature embeddings, trained user by user with the slides' SGD rule.

    r̂ᵤᵢ = μ + bᵤ + bᵢ + wᵢ·zᵤ
    zᵤ = Pᵤ + Σ_{a ∈ A(u)} cₐ·Yₐ        A(u): N(u), then u's features;
                                        cₐ = |N(u)|^−½ on N(u), |F(u)|^−½ on the features
    wᵢ = Qᵢ + Σ_{g ∈ G(i)} c_g·Z_g      G(i): i's features, c_g = |G(i)|^−½

N(u) is the implicit feedback of SVD++ (the items u rated in training); with no features,
zᵤ = Pᵤ + |N(u)|^−½ Σⱼ Yⱼ and wᵢ = Qᵢ, Koren's model. Y holds one row per item (N) then one per
user feature, Z one per item feature. The rule is in :func:`_svdpp_epoch`'s docstring and
docs/derivation.md section 13.
"""

from __future__ import annotations

import numpy as np

from mfrec._internal import njit
from mfrec.data.features import Features, sets_by_row
from mfrec.modelstate import ctor_params
from mfrec.reference.mf import EpochFunction, FactorModel, SGDModel, extends
from mfrec.reference.serving import fold_in

Bag = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A weighted CSR (indptr, indices, weights): entity e's bag is indices[indptr[e]:indptr[e+1]]."""


@njit
def _svdpp_epoch(
    users, items, ratings, order, P, Q, bu, bi, Y, Z, A_ptr, A_idx, A_w, G_ptr, G_idx, G_w,
    mu, lr, reg,
):  # fmt: skip
    """One epoch of per-user SGD for SVD++, in place; returns Σ e² (pre-update errors).

    ``order`` visits the ratings in user blocks (each user's ratings consecutive, see
    :func:`user_block_order`). For the block B of user u::

        s = Σ_{a ∈ A(u)} cₐ·Yₐ                       (Y held fixed during the block)
        g = 0
        for each (u, i, r) of B, in order:
            w = Qᵢ + Σ_{g ∈ G(i)} c_g·Z_g,  z = Pᵤ + s
            e = r − (μ + bᵤ + bᵢ + w·z)
            bᵤ ← bᵤ + lr·(e − reg·bᵤ),  bᵢ ← bᵢ + lr·(e − reg·bᵢ)
            Pᵤ ← Pᵤ + lr·(e·w − reg·Pᵤ)
            Qᵢ ← Qᵢ + lr·(e·z − reg·Qᵢ)
            Z_g ← Z_g + lr·(e·c_g·z − reg·Z_g)         for g ∈ G(i)
            g ← g + e·w
        Yₐ ← Yₐ + lr·(cₐ·g − |B|·reg·Yₐ)              for a ∈ A(u), once per block

    Each sample's step is the gradient step on ½e² + ½·reg·(bᵤ² + bᵢ² + ‖Pᵤ‖² + ‖Qᵢ‖² +
    Σ_g ‖Z_g‖²) at the old point (w, z from before the step); Y's step is the sum over the block
    of each sample's gradient of ½e² + ½·reg·Σₐ‖Yₐ‖², taken with Y at its block-start value.
    """
    k = P.shape[1]
    s = np.empty(k, dtype=P.dtype)
    g = np.empty(k, dtype=P.dtype)
    w = np.empty(k, dtype=P.dtype)
    z = np.empty(k, dtype=P.dtype)
    sse = 0.0
    n_total = order.shape[0]
    start = 0
    while start < n_total:
        u = users[order[start]]
        end = start + 1
        while end < n_total and users[order[end]] == u:
            end += 1
        for f in range(k):
            s[f] = 0.0
            g[f] = 0.0
        for a in range(A_ptr[u], A_ptr[u + 1]):
            for f in range(k):
                s[f] += A_w[a] * Y[A_idx[a], f]
        for n in range(start, end):
            j = order[n]
            i = items[j]
            dot = 0.0
            for f in range(k):
                w[f] = Q[i, f]
            for c in range(G_ptr[i], G_ptr[i + 1]):
                for f in range(k):
                    w[f] += G_w[c] * Z[G_idx[c], f]
            for f in range(k):
                z[f] = P[u, f] + s[f]
                dot += w[f] * z[f]
            err = ratings[j] - (mu + bu[u] + bi[i] + dot)
            sse += err * err
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
            for f in range(k):
                P[u, f] += lr * (err * w[f] - reg * P[u, f])
                Q[i, f] += lr * (err * z[f] - reg * Q[i, f])
                g[f] += err * w[f]
            for c in range(G_ptr[i], G_ptr[i + 1]):
                for f in range(k):
                    Z[G_idx[c], f] += lr * (err * G_w[c] * z[f] - reg * Z[G_idx[c], f])
        n_block = end - start
        for a in range(A_ptr[u], A_ptr[u + 1]):
            for f in range(k):
                Y[A_idx[a], f] += lr * (A_w[a] * g[f] - n_block * reg * Y[A_idx[a], f])
        start = end
    return sse


@njit
def _bag_sums(P, Y, ptr, idx, wt, out):
    """out[e] = P[e] + Σ_{a in bag e} wt[a]·Y[idx[a]] for every entity e (zᵤ, or wᵢ with Q, Z)."""
    k = P.shape[1]
    for e in range(P.shape[0]):
        for f in range(k):
            out[e, f] = P[e, f]
        for a in range(ptr[e], ptr[e + 1]):
            for f in range(k):
                out[e, f] += wt[a] * Y[idx[a], f]
    return out


def user_block_order(
    rng: np.random.Generator, users: np.ndarray, n_users: int, shuffle: bool
) -> np.ndarray:
    """An epoch's visiting order in user blocks: a permutation of the ratings, then a
    permutation of the users, and the ratings stably sorted by their user's place in it (so each
    user's ratings stay in the first permutation's order). Without ``shuffle``: users ascending,
    each user's ratings in the given order."""
    if not shuffle:
        return np.argsort(users, kind="stable").astype(np.int64)
    perm = rng.permutation(users.shape[0])
    rank = rng.permutation(n_users)
    return perm[np.argsort(rank[users[perm]], kind="stable")].astype(np.int64)


def normalised_bag(parts: list[tuple[np.ndarray, np.ndarray]], n: int, dtype) -> Bag:
    """One weighted CSR of ``n`` entities from CSR parts (indptr, indices), side by side: part
    p's indices are shifted past the earlier parts' widths by the caller; each entity's entries
    of part p weigh |its part-p set|^−½."""
    counts = np.zeros(n, dtype=np.int64)
    for indptr, _ in parts:
        counts += np.diff(indptr)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rows, idx, wt = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, dtype)]
    for part_ptr, part_idx in parts:
        c = np.diff(part_ptr)
        rows.append(np.repeat(np.arange(n), c))
        idx.append(part_idx)
        wt.append(np.repeat(1.0 / np.sqrt(np.maximum(c, 1)), c))
    order = np.argsort(np.concatenate(rows), kind="stable")  # part by part within each entity
    idx_all = np.concatenate(idx).astype(np.int64)[order]
    return indptr, idx_all, np.concatenate(wt).astype(dtype)[order]


def svdpp_bags(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    implicit: bool,
    user_features: Features | None,
    item_features: Features | None,
    dtype,
) -> tuple[Bag, int, Bag, int]:
    """(A, rows of Y, G, rows of Z): the user bags (N(u) from these training ratings when
    ``implicit``, then the user features, shifted by n_items) and the item bags (features)."""
    parts = []
    n_Y = 0
    if implicit:
        parts.append(sets_by_row(users, items, n_users, n_items))
        n_Y = n_items
    if user_features is not None:
        _check_rows("user_features", user_features, n_users)
        parts.append((user_features.indptr, user_features.indices + n_Y))
        n_Y += user_features.n_features
    A = normalised_bag(parts, n_users, dtype)
    n_Z = 0
    item_parts = []
    if item_features is not None:
        _check_rows("item_features", item_features, n_items)
        item_parts.append((item_features.indptr, item_features.indices))
        n_Z = item_features.n_features
    return A, n_Y, normalised_bag(item_parts, n_items, dtype), n_Z


def _check_rows(name: str, features: Features, n: int) -> None:
    if features.n_entities != n:
        raise ValueError(
            f"{name} has {features.n_entities} rows but the ratings have {n} (read it for the "
            "same Ratings id map)"
        )


class SVDpp(SGDModel):
    """SVD++ with optional user and item feature embeddings, per-user SGD in Numba.

    ``fit`` is :class:`~mfrec.reference.mf.SGDModel`'s loop (``tol``, ``lr_decay``,
    ``callback``, ``eval_set``/``patience`` as there), plus the features. It draws P, Q as
    :class:`~mfrec.reference.MatrixFactorization` does, then Y and Z from N(0, init_std²), from
    the same ``default_rng(seed)``; biases start at 0 and μ is the training mean. After each
    epoch ``P`` and ``Q`` hold the effective vectors zᵤ and wᵢ, so :class:`FactorModel`'s
    predict, score_all and recommend apply unchanged (and early stopping's restore of P, Q,
    bu, bi restores the best epoch's predictions); ``P_free``, ``Q_free``, ``Y``, ``Z`` are the
    learned parameters of the last epoch. ``implicit=False`` drops N(u) (features only).
    """

    @extends(SGDModel, fixed=("biased",), lr=0.007, reg=0.02)
    def __init__(self, *, implicit: bool = True, **params) -> None:
        super().__init__(**params, biased=True)
        self.implicit = bool(implicit)
        self._features: tuple[Features | None, Features | None] = (None, None)

    def describe(self) -> str:
        """The model in words: which bags it sums, k, lr, reg, and where it runs."""
        return (
            f"SVD++ ({self._bags_in_words()}): k={self.n_factors}, lr {self.lr}, "
            f"reg {self.reg}; {self._runs_on()}"
        )

    def _runs_on(self) -> str:
        return "numba kernel, per-user blocks"

    def _bags_in_words(self) -> str:
        parts = ["implicit N(u)"] if self.implicit else []
        for side, features in zip(("user", "item"), self._features, strict=True):
            if features is not None and features.n_features:
                parts.append(f"{features.n_features} {side} features")
        return ", ".join(parts) or "no bags"

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        **kw,
    ) -> SVDpp:
        """Train on 0-based (users, items, ratings), with features aligned to those indices
        (``Features`` read for the same :class:`Ratings` id maps); ``kw`` as in
        :meth:`SGDModel.fit`. N(u) comes from these ratings only: pass the training part."""
        self._features = (user_features, item_features)
        return super().fit(users, items, ratings, n_users, n_items, **kw)

    def _start(self, u, i, r, P, Q, mu, rng):
        """The bags and Y, Z (drawn after P, Q); each epoch visits the ratings in user blocks."""
        self._take_parameters(u, i, P, Q, mu, rng)
        mu_t, reg = self.dtype(mu), self.dtype(self.reg)

        def run_epoch(lr: float) -> float:
            order = user_block_order(rng, u, P.shape[0], self.shuffle)
            return _svdpp_epoch(
                u, i, r, order, self.P_free, self.Q_free, self.bu, self.bi, self.Y, self.Z,
                *self.A, *self.G, mu_t, self.dtype(lr), reg,
            )  # fmt: skip

        return EpochFunction(run_epoch), 0

    def _take_parameters(self, u, i, P, Q, mu, rng) -> None:
        """Bags A, G; parameters P_free = P, Q_free = Q, Y, Z ~ N(0, init_std²), zero biases."""
        n_users, n_items = P.shape[0], Q.shape[0]
        self.A, n_Y, self.G, n_Z = svdpp_bags(
            u, i, n_users, n_items, self.implicit, *self._features, self.dtype
        )
        k = self.n_factors
        self.P_free, self.Q_free, self.mu = P, Q, mu
        self.Y = rng.normal(0.0, self.init_std, (n_Y, k)).astype(self.dtype)
        self.Z = rng.normal(0.0, self.init_std, (n_Z, k)).astype(self.dtype)
        self.bu = np.zeros(n_users, dtype=self.dtype)
        self.bi = np.zeros(n_items, dtype=self.dtype)
        self.feature_names_ = tuple([] if f is None else list(f.names) for f in self._features)
        self._epoch_done(-1)

    def _epoch_done(self, epoch: int) -> None:
        """P ← zᵤ = P_free + Σ cₐ·Yₐ and Q ← wᵢ = Q_free + Σ c_g·Z_g (what predict uses)."""
        self.P = _bag_sums(self.P_free, self.Y, *self.A, np.empty_like(self.P_free))
        self.Q = _bag_sums(self.Q_free, self.Z, *self.G, np.empty_like(self.Q_free))

    def _fold_in(
        self, i: np.ndarray, ratings, reg: float, user_features=None
    ) -> tuple[np.ndarray, float]:
        """SVD++'s fold-in: zᵤ = pᵤ + s with s = |N(u)|^−½ Σⱼ Yⱼ over the rated items (the new
        user's N(u)) plus |F(u)|^−½ Σ_f Y_f over ``user_features`` (names in the model's
        vocabulary, :attr:`feature_names_`); pᵤ, bᵤ by the ridge solve against the fixed Q
        (item features already summed in) with Qᵢ·s a known part of each rating."""
        s = np.zeros(self.Q.shape[1])  # (k,)
        if self.implicit:
            s += self.Y[i].sum(0) / np.sqrt(max(i.shape[0], 1))
        if user_features:
            f = self._user_feature_rows(user_features)
            s += self.Y[f].sum(0) / np.sqrt(f.shape[0])
        p, bu = fold_in(self.Q, self.bi, self.mu, self.biased, i, ratings, reg, self.Q[i] @ s)
        return (p + s).astype(self.Q.dtype), bu

    def _user_feature_rows(self, names) -> np.ndarray:
        """The rows of Y of the user features ``names`` (distinct); an unknown name is a
        ``ValueError`` naming it and a few known ones."""
        vocabulary = self.feature_names_[0]
        position = {name: f for f, name in enumerate(vocabulary)}
        for name in names:
            if name not in position:
                known = ", ".join(vocabulary[:6]) + (", ..." if len(vocabulary) > 6 else "")
                raise ValueError(
                    f"user feature {name!r} is not in this model's vocabulary "
                    f"({len(vocabulary)} names: {known or 'none'})"
                )
        first = self.n_items if self.implicit else 0  # Y: N(u)'s items, then the user features
        return first + np.array(sorted({position[n] for n in names}), dtype=np.int64)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """A model file's state (:mod:`mfrec.modelstate`): the constructor's arguments, the
        training mean, and the feature vocabularies with their embeddings: Y (N(u)'s items,
        then the user features), Z (the item features), the features' names. P and Q, which
        every model file holds, are the effective zᵤ and wᵢ, cold rows included."""
        users, items = self.feature_names_
        params = {"ctor": ctor_params(self, SVDpp), "r_mean_": self.r_mean}
        arrays = {"Y": self.Y, "Z": self.Z, "user_features": np.array(users, dtype=np.str_),
                  "item_features": np.array(items, dtype=np.str_)}  # fmt: skip
        return params, arrays

    @classmethod
    def from_state(cls, base: FactorModel, params: dict, arrays: dict) -> SVDpp:
        """The fitted model from a model file's validated factor part ``base`` and its state."""
        model = SVDpp(**params["ctor"])
        model.__dict__.update(vars(base))
        model.r_mean_ = float(params["r_mean_"])
        users, items = arrays["user_features"].tolist(), arrays["item_features"].tolist()
        n_Y = (model.n_items if model.implicit else 0) + len(users)
        k = model.Q.shape[1]
        for name, rows in (("Y", n_Y), ("Z", len(items))):
            if arrays[name].shape != (rows, k):
                raise ValueError(f"{name} has shape {arrays[name].shape}, expected {(rows, k)}")
        model.Y, model.Z = arrays["Y"], arrays["Z"]
        model.feature_names_ = (users, items)
        return model
