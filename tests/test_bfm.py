"""Bayesian FM with relation blocks: cached sums, equality with a naive per-rating FM sampler."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mfrec.data.features import Features
from mfrec.reference.bfm import (
    ALPHA_LAMBDA,
    BETA_LAMBDA,
    CACHE_COLUMNS,
    CNT,
    EB,
    ERB,
    GAMMA0,
    MU0,
    QF,
    R1,
    R2,
    SF,
    BayesianFM,
    _block_state,
    _draw_v_coord,
    _draw_w_coord,
    _propagate_v,
    _residuals,
    _v_caches,
    _w_caches,
    fm_blocks,
)


def random_features(rng, n_rows: int, n_features: int) -> Features:
    """Each row a random set of 0..3 distinct features (ascending)."""
    rows = [
        np.sort(rng.choice(n_features, rng.integers(0, 4), replace=False)) for _ in range(n_rows)
    ]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int64)
    return Features(indptr, indices, [f"f{j}" for j in range(n_features)])


def small_problem(seed: int):
    """Ratings of 12 users × 9 items (every user and item rated), user and item features."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 12, 9
    pairs = rng.choice(n_users * n_items, 60, replace=False)
    u, i = np.divmod(pairs, n_items)
    u[:n_users], i[:n_items] = np.arange(n_users), np.arange(n_items)
    keep = np.unique(u * n_items + i, return_index=True)[1]
    u, i = u[keep], i[keep]
    r = rng.normal(3.5, 1.0, u.shape[0])
    return (
        u,
        i,
        r,
        n_users,
        n_items,
        random_features(rng, n_users, 4),
        random_features(rng, n_items, 3),
    )


def dense_blocks(blocks, D):
    """Each block's rows as a dense (rows, D) matrix over the global features."""
    out = []
    for ptr, idx, val, n_rows, _ in blocks:
        M = np.zeros((n_rows, D))
        for b in range(n_rows):
            M[b, idx[ptr[b] : ptr[b + 1]]] = val[ptr[b] : ptr[b + 1]]
        out.append(M)
    return out


def fm_predict(X, w0, w, V):
    """ŷ = w₀ + Xw + ½Σ_f[(XV)² − X²V²], the FM's definition on per-rating rows."""
    return w0 + X @ w + 0.5 * ((X @ V) ** 2 - (X**2) @ (V**2)).sum(1)


def test_blocks_expand_to_ids_features_and_normalised_implicit_sets():
    u, i, r, n_users, n_items, uf, itf = small_problem(0)
    blocks, grp, groups = fm_blocks(u, i, n_users, n_items, uf, itf, True, True)
    assert groups == [
        "user",
        "user features",
        "implicit N(u)",
        "item",
        "item features",
        "raters R(i)",
    ]
    U, I = dense_blocks(blocks, grp.shape[0])
    DU = n_users + 4 + n_items
    for n in range(u.shape[0]):
        x = U[u[n]] + I[i[n]]
        rated = i[u == u[n]]
        raters = u[i == i[n]]
        want = np.zeros(grp.shape[0])
        want[u[n]] = 1.0
        want[n_users + uf.indices[uf.indptr[u[n]] : uf.indptr[u[n] + 1]]] = 1.0
        want[n_users + 4 + rated] = 1.0 / np.sqrt(rated.size)
        want[DU + i[n]] = 1.0
        want[DU + n_items + itf.indices[itf.indptr[i[n]] : itf.indptr[i[n] + 1]]] = 1.0
        want[DU + n_items + 3 + raters] = 1.0 / np.sqrt(raters.size)
        np.testing.assert_array_equal(x, want)


def test_cached_block_sums_equal_a_recomputation_after_every_coordinate_update():
    rng = np.random.default_rng(1)
    u, i, r, n_users, n_items, uf, itf = small_problem(1)
    rf = random_features(rng, u.shape[0], 5)  # a block whose rows are the ratings
    blocks, grp, groups = fm_blocks(u, i, n_users, n_items, uf, itf, True, True, rf)
    D, k, G = grp.shape[0], 3, len(groups)
    dense = dense_blocks(blocks, D)
    row_of = (u, i, np.arange(u.shape[0]))
    X = sum(M[rows] for M, rows in zip(dense, row_of, strict=True))  # (n, D)
    w, V, w0 = rng.normal(0, 0.3, D), rng.normal(0, 0.3, (D, k)), 3.0
    mu_w, lam_w = rng.normal(0, 0.1, G), rng.gamma(2.0, 1.0, G)
    mu_v, lam_v = rng.normal(0, 0.1, (G, k)), rng.gamma(2.0, 1.0, (G, k))
    alpha = 2.0
    states = []
    for ptr, idx, val, n_rows, _ in blocks:
        q, s, lin = np.empty((n_rows, k)), np.empty((n_rows, k)), np.empty(n_rows)
        _block_state(ptr, idx, val, w, V, q, s, lin)
        states.append((q, s, lin))
    e = _residuals(r, w0, tuple(b[4] for b in blocks), tuple(states), np.empty(r.shape[0]))

    def close(actual, desired):  # sums of ~60 terms of order 1: float64 rounding only
        np.testing.assert_allclose(actual, desired, rtol=0, atol=1e-12)

    close(e, r - fm_predict(X, w0, w, V))

    def per_row(b, values):
        return np.bincount(row_of[b], weights=values, minlength=states[b][2].shape[0])

    for b, (block, (_, _, lin)) in enumerate(zip((bl[4] for bl in blocks), states, strict=True)):
        rows = lin.shape[0]
        cnt, E = np.empty(rows), np.empty(rows)
        _w_caches(e, block[0], block[1], cnt, E)
        for j in range(block[2].shape[0] - 1):
            _draw_w_coord(j, block, cnt, E, w, lin, grp, mu_w, lam_w, alpha, rng.standard_normal())
            close(lin, dense[b] @ w)
            close(E, per_row(b, r - fm_predict(X, w0, w, V)))
        e[:] = r - fm_predict(X, w0, w, V)  # the kernel's propagation of lin is tested below
    kernel_blocks, states_t = tuple(bl[4] for bl in blocks), tuple(states)
    caches = tuple(np.empty((lin.shape[0], CACHE_COLUMNS)) for _, _, lin in states)
    qn = np.empty(u.shape[0])
    _v_caches(0, e, qn, kernel_blocks, states_t, caches[0])
    for f in range(k):
        close(qn, X @ V[:, f])
        for b, (block, (q, s, _)) in enumerate(zip(kernel_blocks, states, strict=True)):
            C, M = caches[b], dense[b]
            other = X @ V[:, f] - M[row_of[b]] @ V[:, f]  # rₙ: the other blocks' q of n
            e_true = r - fm_predict(X, w0, w, V)
            close(C[:, QF], M @ V[:, f])
            close(C[:, SF], (M**2) @ (V[:, f] ** 2))
            close(C[:, CNT], per_row(b, np.ones(u.shape[0])))
            close(C[:, R1], per_row(b, other))
            close(C[:, R2], per_row(b, other**2))
            close(C[:, EB], per_row(b, e_true))
            close(C[:, ERB], per_row(b, e_true * other))
            for j in range(block[2].shape[0] - 1):
                z = rng.standard_normal()
                _draw_v_coord(j, f, block, C, V, grp, mu_v, lam_v, alpha, z)
                close(C[:, QF], M @ V[:, f])
                close(C[:, SF], (M**2) @ (V[:, f] ** 2))
                e_true = r - fm_predict(X, w0, w, V)
                close(C[:, EB], per_row(b, e_true))
                close(C[:, ERB], per_row(b, e_true * other))
            _propagate_v(f, b, e, qn, kernel_blocks, states_t, caches)
            close(e, r - fm_predict(X, w0, w, V))
            close(q[:, f], M @ V[:, f])
            close(s[:, f], (M**2) @ (V[:, f] ** 2))
            if b + 1 < len(blocks):
                close(qn, X @ V[:, f])
    close(qn, X @ V[:, k - 1])  # after the last factor, qn is not rebuilt


def naive_gibbs(X, y, grp, n_groups, k, seed, n_sweeps, init_std, a0=1.0, b0=1.0):
    """libFM's MCMC on per-rating rows X, every hₙ and eₙ recomputed from scratch; the same
    random stream as :class:`BayesianFM` (V₀, then per sweep α, the hyper-parameters' normals
    and gammas, then one normal per coordinate: w₀, w, V factor-major). Returns (w₀, w, V, the
    training MSE of each sweep)."""
    rng = np.random.default_rng(seed)
    n, D = X.shape
    V = rng.normal(0.0, init_std, (D, k))
    w, w0 = np.zeros(D), 0.0
    lam = np.ones((n_groups, 1 + k))
    mse = []

    def draw(theta, h, lam_, mu_, alpha, z):
        e = y - fm_predict(X, w0, w, V)
        prec = alpha * h @ h + lam_
        mean = (alpha * (e + theta * h) @ h + lam_ * mu_) / prec
        return mean + z / np.sqrt(prec)

    for _ in range(n_sweeps):
        e = y - fm_predict(X, w0, w, V)
        alpha = rng.gamma((a0 + n) / 2, 2 / (b0 + e @ e))
        P = np.column_stack([w, V])
        normals = rng.standard_normal((n_groups, 1 + k))
        mu = np.zeros((n_groups, 1 + k))
        shape, rate = np.zeros((n_groups, 1 + k)), np.zeros((n_groups, 1 + k))
        for g in range(n_groups):
            m = grp == g
            for c in range(1 + k):
                ng = m.sum()
                mu[g, c] = (P[m, c].sum() + GAMMA0 * MU0) / (ng + GAMMA0) + normals[g, c] / np.sqrt(
                    (ng + GAMMA0) * lam[g, c]
                )
                shape[g, c] = (ALPHA_LAMBDA + ng + 1) / 2
                rate[g, c] = (
                    BETA_LAMBDA + ((P[m, c] - mu[g, c]) ** 2).sum() + GAMMA0 * (mu[g, c] - MU0) ** 2
                ) / 2
        lam = rng.gamma(shape, 1 / rate)
        z = rng.standard_normal(1 + D + D * k)
        w0 = draw(w0, np.ones(n), 0.0, 0.0, alpha, z[0])
        for j in range(D):
            w[j] = draw(w[j], X[:, j], lam[grp[j], 0], mu[grp[j], 0], alpha, z[1 + j])
        for f in range(k):
            for j in range(D):
                h = X[:, j] * (X @ V[:, f] - V[j, f] * X[:, j])
                g = grp[j]
                V[j, f] = draw(V[j, f], h, lam[g, 1 + f], mu[g, 1 + f], alpha, z[1 + D + f * D + j])
        mse.append(float(np.mean((y - fm_predict(X, w0, w, V)) ** 2)))
    return w0, w, V, mse


@pytest.mark.parametrize("per_rating", [False, True], ids=["two blocks", "with a rating block"])
def test_relation_blocks_draw_the_samples_of_a_naive_per_rating_fm_sampler(per_rating):
    u, i, r, n_users, n_items, uf, itf = small_problem(2)
    rf = random_features(np.random.default_rng(7), u.shape[0], 4) if per_rating else None
    k, seed, sweeps = 3, 5, 4
    model = BayesianFM(n_factors=k, n_samples=sweeps, burn_in=0, seed=seed, init_std=0.2)
    model.fit(
        u, i, r, n_users, n_items, user_features=uf, item_features=itf, item_implicit=True,
        rating_features=rf,
    )  # fmt: skip
    blocks, grp, groups = fm_blocks(u, i, n_users, n_items, uf, itf, True, True, rf)
    dense = dense_blocks(blocks, grp.shape[0])
    X = sum(M[rows] for M, rows in zip(dense, (u, i, np.arange(u.shape[0])), strict=False))
    w0, w, V, mse = naive_gibbs(X, r, grp, len(groups), k, seed, sweeps, 0.2)
    # The same draws in another order of summation: rounding only, compounded over 4 sweeps.
    np.testing.assert_allclose(model.w0_, w0, rtol=1e-9)
    np.testing.assert_allclose(model.w_, w, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.V_, V, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.history_, mse, rtol=1e-8)


@pytest.mark.parametrize("per_rating", [False, True], ids=["factor form", "with a rating block"])
def test_the_average_predicts_the_mean_of_the_samples_fm_predictions(per_rating):
    u, i, r, n_users, n_items, uf, itf = small_problem(3)
    rng = np.random.default_rng(8)
    qu, qi = np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users)
    rf = random_features(rng, u.shape[0], 4) if per_rating else None
    query = random_features(rng, qu.shape[0], 4) if per_rating else None
    blocks, grp, _ = fm_blocks(u, i, n_users, n_items, uf, itf, True, False, rf)
    dense = dense_blocks(blocks, grp.shape[0])
    Xq = dense[0][qu] + dense[1][qi]  # (n_users·n_items, D) every pair
    if per_rating:
        Xq[:, grp.shape[0] - 4 :] = dense_blocks(
            [(query.indptr, query.indices, np.ones(query.indices.shape[0]), qu.shape[0], None)], 4
        )[0]
    burn_in, preds = 2, []

    def keep(sweep, model):
        if sweep >= burn_in:
            preds.append(fm_predict(Xq, model.w0_, model.w_, model.V_))

    model = BayesianFM(n_factors=2, n_samples=5, burn_in=burn_in, seed=0)
    model.fit(
        u, i, r, n_users, n_items, keep, user_features=uf, item_features=itf, rating_features=rf
    )
    assert len(preds) == 5
    # predict clips to the training scale; a wide scale keeps the check on the raw average
    model.r_min, model.r_max = -np.inf, np.inf
    np.testing.assert_allclose(
        model.predict(qu, qi, rating_features=query), np.mean(preds, axis=0), rtol=0, atol=1e-10
    )
    assert model.factor_form is not per_rating
    # score_all: every item for one user, as of the training rows' highest rating feature
    rows = None
    if per_rating:
        top = np.full(n_items, rf.indices.max(), dtype=np.int64)
        rows = Features(np.arange(n_items + 1, dtype=np.int64), top, rf.names)
    users = np.zeros(n_items, dtype=np.int64)
    np.testing.assert_allclose(
        model.score_all(0), model.predict(users, np.arange(n_items), rating_features=rows),
        rtol=0, atol=1e-12,
    )  # fmt: skip
    # recommend ranks by the same scores (clipped), the rating block's part included
    items, scores = model.recommend(0, k=n_items, filter_seen=False)
    np.testing.assert_allclose(scores, np.sort(model.score_all(0))[::-1], rtol=0, atol=1e-12)
    if per_rating:
        with pytest.raises(ValueError, match="pass rating_features="):
            model.predict(qu, qi)


def test_a_factor_form_model_saves_and_a_rating_block_model_refuses(tmp_path):
    from mfrec.modelio import ModelFileError, load_model, save_model

    u, i, r, n_users, n_items, uf, itf = small_problem(4)
    model = BayesianFM(n_factors=2, n_samples=4, burn_in=1, seed=0)
    model.fit(u, i, r, n_users, n_items, user_features=uf, item_features=itf)
    path = save_model(tmp_path / "fm.npz", model, np.arange(n_users), np.arange(n_items))
    loaded = load_model(path)
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))
    rf = random_features(np.random.default_rng(0), u.shape[0], 3)
    model.fit(u, i, r, n_users, n_items, rating_features=rf)
    with pytest.raises(ModelFileError, match="cannot save a BayesianFM"):
        save_model(tmp_path / "dated.npz", model, np.arange(n_users), np.arange(n_items))


def test_feature_rows_must_match_the_ratings():
    u, i, r, n_users, n_items, uf, itf = small_problem(0)
    with pytest.raises(ValueError, match="user_features has 12 rows but the ratings have 13"):
        BayesianFM(n_samples=1, burn_in=0).fit(u, i, r, n_users + 1, n_items, user_features=uf)


ML100K = Path(os.environ.get("MFREC_DATA", "/nonexistent")) / "ml-100k" / "u.data"


@pytest.mark.skipif(not ML100K.is_file(), reason="needs ML-100k under $MFREC_DATA")
def test_features_beat_bayesian_mf_on_ml100k_u1():
    from mfrec.data import load_ml100k
    from mfrec.data.features import release_features
    from mfrec.data.movielens import find_release
    from mfrec.data.splits import canonical_split
    from mfrec.reference.bayes import BayesianMF

    ratings = load_ml100k(download=False)
    uf, itf = release_features("ml-100k", find_release("ml-100k", download=False), ratings)
    train, test = canonical_split(ratings, "u1")
    u, i, r = ratings.users[train], ratings.items[train], ratings.ratings[train]
    kw: dict = dict(n_factors=10, n_samples=60, burn_in=20, seed=0)
    n = (ratings.n_users, ratings.n_items)
    mf = BayesianMF(**kw).fit(u, i, r, *n)
    fm = BayesianFM(**kw).fit(u, i, r, *n, user_features=uf, item_features=itf, item_implicit=True)
    tu, ti, tr = ratings.users[test], ratings.items[test], ratings.ratings[test]
    rmse_mf = np.sqrt(np.mean((mf.predict(tu, ti) - tr) ** 2))
    rmse_fm = np.sqrt(np.mean((fm.predict(tu, ti) - tr) ** 2))
    assert rmse_fm < rmse_mf - 0.01, (rmse_fm, rmse_mf)
