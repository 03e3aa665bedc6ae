"""SVD++ in Numba: the kernel against its rule written in Python, its one-sample step against
autograd and central differences, the Y deferral against Koren's per-sample rule, the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from naive_svdpp import sample_gradients, sample_loss, svdpp_epoch
from scipy.differentiate import jacobian

from mfrec.data.features import Features, implicit_feedback, release_features
from mfrec.reference import rmse
from mfrec.reference.svdpp import SVDpp, _svdpp_epoch, svdpp_bags, user_block_order

NAMES = ("P", "Q", "bu", "bi", "Y", "Z")


def random_features(rng, n: int, n_features: int) -> Features:
    """Each entity gets 0..3 distinct features out of ``n_features``."""
    rows = [np.sort(rng.choice(n_features, rng.integers(0, 4), replace=False)) for _ in range(n)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int64)
    return Features(indptr, indices, [f"f{j}" for j in range(n_features)])


def small_case(seed: int, n_users=7, n_items=6, n=30, k=3):
    """Ratings (distinct pairs), features on both sides, the bags and random parameters."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n, replace=False)
    users, items = pairs // n_items, pairs % n_items
    ratings = rng.integers(1, 6, n).astype(np.float64)
    uf, itf = random_features(rng, n_users, 4), random_features(rng, n_items, 5)
    A, n_Y, G, n_Z = svdpp_bags(users, items, n_users, n_items, True, uf, itf, np.float64)
    params = {
        "P": rng.normal(0, 0.3, (n_users, k)), "Q": rng.normal(0, 0.3, (n_items, k)),
        "bu": rng.normal(0, 0.1, n_users), "bi": rng.normal(0, 0.1, n_items),
        "Y": rng.normal(0, 0.3, (n_Y, k)), "Z": rng.normal(0, 0.3, (n_Z, k)),
    }  # fmt: skip
    return users, items, ratings, A, G, params


def as_lists(bag) -> list:
    indptr, indices, weights = bag
    return [
        list(zip(indices[a:b].tolist(), weights[a:b].tolist(), strict=True))
        for a, b in zip(indptr[:-1], indptr[1:], strict=True)
    ]


def kernel_epoch(params, users, items, ratings, order, A, G, mu, lr, reg) -> float:
    p = params
    return _svdpp_epoch(
        users, items, ratings, order, p["P"], p["Q"], p["bu"], p["bi"], p["Y"], p["Z"],
        *A, *G, mu, lr, reg,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_kernel_equals_its_rule_written_in_python(seed):
    users, items, ratings, A, G, params = small_case(seed)
    ref = {n: a.copy() for n, a in params.items()}
    rng = np.random.default_rng(seed)
    mu, lr, reg = 3.4, 0.05, 0.03
    for _ in range(3):
        order = user_block_order(rng, users, 7, shuffle=True)
        ref_sse = svdpp_epoch(
            ref, as_lists(A), as_lists(G), users, items, ratings, order, mu, lr, reg
        )
        numba_sse = kernel_epoch(params, users, items, ratings, order, A, G, mu, lr, reg)
        # float64, the same operations in a different grouping: rounding only (1e-12).
        assert abs(numba_sse - ref_sse) <= 1e-12 * ref_sse
    for name in NAMES:
        np.testing.assert_allclose(params[name], ref[name], rtol=0, atol=1e-12)


def test_block_order_keeps_each_user_together_and_is_a_permutation():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 2_000)
    order = user_block_order(np.random.default_rng(1), users, 50, shuffle=True)
    np.testing.assert_array_equal(np.sort(order), np.arange(2_000))
    runs = users[order][1:] != users[order][:-1]
    assert runs.sum() == np.unique(users).shape[0] - 1  # one run per user
    again = user_block_order(np.random.default_rng(1), users, 50, shuffle=True)
    np.testing.assert_array_equal(order, again)
    fixed = user_block_order(rng, users, 50, shuffle=False)
    np.testing.assert_array_equal(fixed, np.argsort(users, kind="stable"))


def _one_sample(seed: int):
    users, items, ratings, A, G, params = small_case(seed)
    G_lists = as_lists(G)
    j = next(n for n in range(items.shape[0]) if G_lists[items[n]])  # an item with features
    return users[j], items[j], ratings[j], as_lists(A), as_lists(G), params, A, G


@pytest.mark.parametrize("seed", range(3))
def test_one_sample_kernel_step_is_minus_lr_times_the_gradient(seed):
    u, i, r, A, G, params, A_bag, G_bag = _one_sample(seed)
    mu, lr, reg = 3.0, 0.01, 0.05
    grad = sample_gradients(params, A, G, u, i, r, mu, reg)
    after = {n: a.copy() for n, a in params.items()}
    one = (np.array([u]), np.array([i]), np.array([r]), np.array([0]))
    kernel_epoch(after, *one, A_bag, G_bag, mu, lr, reg)  # a block of one rating: |B| = 1
    step = {n: (params[n] - after[n]) / lr for n in NAMES}
    # (θ − θ') / lr recovers the gradient up to float64 cancellation in θ − θ' (1e-12).
    assert abs(step["bu"][u] - grad["bu"]) <= 1e-12 and abs(step["bi"][i] - grad["bi"]) <= 1e-12
    np.testing.assert_allclose(step["P"][u], grad["P"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(step["Q"][i], grad["Q"], rtol=0, atol=1e-12)
    for table in ("Y", "Z"):
        for row, g in grad[table].items():
            np.testing.assert_allclose(step[table][row], g, rtol=0, atol=1e-12)
        untouched = np.setdiff1d(np.arange(params[table].shape[0]), list(grad[table]))
        assert not np.abs(step[table][untouched]).max(initial=0.0)


def _flat(params, A, G, u, i):
    """The touched parameters as one vector, and a function rebuilding params from one."""
    keys = [("bu", u), ("bi", i), ("P", u), ("Q", i)]
    keys += [("Z", g) for g, _ in G[i]] + [("Y", a) for a, _ in A[u]]
    x = np.concatenate([np.atleast_1d(params[n][row]) for n, row in keys])

    def rebuild(vec):
        out = {n: a.copy() for n, a in params.items()}
        pos = 0
        for n, row in keys:
            size = np.size(out[n][row])
            out[n][row] = vec[pos : pos + size] if size > 1 else vec[pos]
            pos += size
        return out

    return keys, x, rebuild


def _analytic_flat(grad, keys) -> np.ndarray:
    parts = []
    for n, row in keys:
        g = grad[n] if n in ("bu", "bi", "P", "Q") else grad[n][row]
        parts.append(np.atleast_1d(g))
    return np.concatenate(parts)


@pytest.fixture(params=range(3))
def gradient_case(request):
    """One sample of ``small_case(seed)`` with its features (μ = 3, reg = 0.05), its touched
    parameters as one vector and their analytic gradient: (sample, mu, reg, keys, x, rebuild,
    analytic), ``sample`` = (u, i, r, A, G, params)."""
    u, i, r, A, G, params, _, _ = _one_sample(request.param)
    mu, reg = 3.0, 0.05
    keys, x, rebuild = _flat(params, A, G, u, i)
    analytic = _analytic_flat(sample_gradients(params, A, G, u, i, r, mu, reg), keys)
    return (u, i, r, A, G, params), mu, reg, keys, x, rebuild, analytic


def test_sample_gradients_equal_autograd(gradient_case):
    (u, i, r, A, G, params), mu, reg, keys, _, _, analytic = gradient_case
    t = {n: torch.tensor(a, requires_grad=True) for n, a in params.items()}
    loss = sample_loss(t, A, G, u, i, r, mu, reg)
    loss.backward()
    auto = np.concatenate([np.atleast_1d(t[n].grad[row].numpy()) for n, row in keys])
    # float64, a handful of k=3 dot products: rounding only (1e-12 relative).
    assert np.abs(auto - analytic).max() <= 1e-12 * np.abs(analytic).max()
    assert abs(loss.item() - sample_loss(params, A, G, u, i, r, mu, reg)) <= 1e-12


def test_sample_gradients_equal_central_differences(gradient_case):
    (u, i, r, A, G, _), mu, reg, _, x, rebuild, analytic = gradient_case

    def loss_of(xs):  # xs: (d, m), scipy's vectorised columns
        cols = xs.reshape(xs.shape[0], -1)
        out = [sample_loss(rebuild(c), A, G, u, i, r, mu, reg) for c in cols.T]
        return np.array(out).reshape(xs.shape[1:])

    fd = jacobian(loss_of, x).df
    # Central differences with step refinement on a polynomial of degree 4: far below 1e-6.
    assert np.abs(fd - analytic).max() <= 1e-6


def test_deferring_y_to_the_block_end_differs_from_per_sample_by_order_lr_squared():
    """Koren's per-sample rule steps Y with every rating; the package sums a block's Y steps.
    Both agree to first order in lr: halving lr quarters the one-epoch difference."""
    users, items, ratings, A, G, params = small_case(11, n=40)
    order = user_block_order(np.random.default_rng(0), users, 7, shuffle=True)
    gaps = []
    for lr in (0.02, 0.01, 0.005):
        deferred = {n: a.copy() for n, a in params.items()}
        immediate = {n: a.copy() for n, a in params.items()}
        args = (users, items, ratings, order, 3.0, lr, 0.02)
        svdpp_epoch(deferred, as_lists(A), as_lists(G), *args, defer=True)
        svdpp_epoch(immediate, as_lists(A), as_lists(G), *args, defer=False)
        gaps.append(max(np.abs(deferred[n] - immediate[n]).max() for n in NAMES))
    assert gaps[0] > 0
    ratios = [gaps[0] / gaps[1], gaps[1] / gaps[2]]
    assert all(3.5 < q < 4.5 for q in ratios), ratios


def test_predict_is_mu_plus_biases_plus_w_dot_z(ml100k_split):
    train, test = ml100k_split
    users, items = release_features("ml-100k", train.source, train)
    m = SVDpp(n_factors=4, n_epochs=2, seed=1).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items,
        user_features=users, item_features=items,
    )  # fmt: skip
    N, _ = implicit_feedback(train)
    u, i = test.users[:500], test.items[:500]
    z = m.P_free[u].copy()
    w = m.Q_free[i].copy()
    for row, uu in enumerate(u):
        n_u = N.indices[N.indptr[uu] : N.indptr[uu + 1]]
        f_u = users.indices[users.indptr[uu] : users.indptr[uu + 1]]
        z[row] += m.Y[n_u].sum(0) / np.sqrt(len(n_u)) + m.Y[train.n_items + f_u].sum(0) / 2.0
    for row, ii in enumerate(i):
        g = items.indices[items.indptr[ii] : items.indptr[ii + 1]]
        w[row] += m.Z[g].sum(0) / np.sqrt(len(g))
    want = np.clip(m.mu + m.bu[u] + m.bi[i] + (z * w).sum(1), 1, 5)
    np.testing.assert_allclose(m.predict(u, i), want, rtol=0, atol=1e-12)
    assert m.recommend(0, 5)[0].shape == (5,)
    assert "47 user features, 24 item features" in m.describe()


def test_svdpp_learns_ml100k(ml100k_split):
    """A sanity floor, not a benchmark: 10 epochs beat the biases-only baseline clearly."""
    train, test = ml100k_split
    m = SVDpp(n_factors=10, n_epochs=10).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items
    )
    baseline = SVDpp(n_factors=1, n_epochs=10, init_std=0.0, implicit=False).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items
    )
    got = rmse(test.ratings, m.predict(test.users, test.items))
    floor = rmse(test.ratings, baseline.predict(test.users, test.items))
    assert got < floor - 0.01 and np.all(np.diff(m.history_) < 0)


def test_features_must_align_and_constructor_is_keyword_only():
    users, items, ratings = np.array([0, 1]), np.array([0, 1]), np.array([3.0, 4.0])
    wrong = Features(np.array([0, 1, 1, 1], dtype=np.int64), np.array([0]), ["a"])
    with pytest.raises(ValueError, match="user_features has 3 rows but the ratings have 2"):
        SVDpp().fit(users, items, ratings, user_features=wrong)
    with pytest.raises(TypeError):
        SVDpp(10)  # keyword-only
