"""BayesianFM's ordered probit: truncated draws, the cutpoints' likelihood and sampler, the
expected rating as the average over samples, recovery on generated ordinal data, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import truncnorm
from test_bfm import dense_blocks, fm_predict, random_features, small_problem

from mfrec.data.features import Features
from mfrec.reference.bfm import (
    BayesianFM,
    draw_cutpoints,
    draw_latent,
    fm_blocks,
    ordinal_classes,
    ordinal_loglik,
)


def test_truncated_draws_stay_in_their_intervals_and_follow_the_truncated_normal():
    # intervals (d_{y−1} − η, d_y − η) near the mean, in both tails, and far out (> 37 sd)
    d = np.array([-1.0, 0.0, 1.5])
    cases = [(0, 0.0), (1, 0.3), (2, -0.2), (3, 0.0), (3, -12.0), (0, 9.0), (1, 20.0),
             (2, -30.0), (3, -60.0)]  # fmt: skip
    m = 4000
    y = np.repeat([c for c, _ in cases], m)
    eta = np.repeat([e for _, e in cases], m)
    z = draw_latent(np.random.default_rng(0), d, y, eta)
    ext = np.concatenate([[-np.inf], d, [np.inf]])
    lo, hi = ext[y], ext[y + 1]
    assert np.all((z >= lo) & (z <= hi))
    for n, (c, e) in enumerate(cases):
        a, b = ext[c] - e, ext[c + 1] - e
        x = z[n * m : (n + 1) * m] - e
        if max(a, -b) > 37:  # Φ underflows: the end nearest the mean, to within its sd
            end = a if a > 0 else b
            assert np.all(np.abs(x - end) <= 1.0 / abs(end)), (c, e)
            continue
        mean, var = truncnorm.stats(a, b, moments="mv")
        assert abs(x.mean() - mean) < 5 * np.sqrt(var / m), (c, e, x.mean(), mean)
        assert abs(x.var() / var - 1) < 0.15, (c, e, x.var(), var)


def test_the_cutpoint_likelihood_has_the_gradient_and_hessian_of_its_differences():
    rng = np.random.default_rng(1)
    d = np.array([-0.8, 0.1, 0.9, 2.0])
    y = rng.integers(0, 5, 300)
    eta = rng.normal(0, 1.5, 300)
    L, g, H = ordinal_loglik(d, y, eta)
    h = 1e-5
    for j in range(d.shape[0]):
        step = np.zeros_like(d)
        step[j] = h
        Lp, gp, _ = ordinal_loglik(d + step, y, eta)
        Lm, gm, _ = ordinal_loglik(d - step, y, eta)
        np.testing.assert_allclose((Lp - Lm) / (2 * h), g[j], rtol=1e-6)
        np.testing.assert_allclose((gp - gm) / (2 * h), H[:, j], rtol=1e-5, atol=1e-6)
    assert np.all(np.linalg.eigvalsh(H) < 0)  # concave
    assert ordinal_loglik(d[[0, 2, 1, 3]], y, eta)[0] == -np.inf  # out of order


def test_the_cutpoint_sampler_recovers_known_cutpoints_given_the_latent_mean():
    rng = np.random.default_rng(2)
    truth = np.array([-1.7, -0.9, 0.2, 1.1])
    eta = rng.normal(0, 1.0, 20000)
    y = np.searchsorted(truth, eta + rng.standard_normal(eta.shape[0]))
    d, draws, accepted = np.array([-2.0, -1.0, 0.0, 1.0]), [], 0
    for sweep in range(300):
        d, took = draw_cutpoints(rng, d, y, eta)
        accepted += took
        if sweep >= 20:
            draws.append(d)
    draws = np.array(draws)
    sd = draws.std(0)
    assert np.all(sd > 0) and np.all(sd < 0.05)
    assert np.all(np.abs(draws.mean(0) - truth) < 4 * sd + 0.01), (draws.mean(0), truth)
    assert accepted / 300 > 0.8  # the Laplace proposal is close to the conditional
    # consecutive draws nearly independent (an independence sampler that accepts)
    x = draws[:, 2] - draws[:, 2].mean()
    assert abs(x[1:] @ x[:-1] / (x @ x)) < 0.3


def expected(latent, cuts, values):
    """Σ_k v_k P(y = v_k) of one sample, from the class probabilities."""
    ext = np.concatenate([[-np.inf], cuts, [np.inf]])
    P = ndtr(ext[None, 1:] - latent[:, None]) - ndtr(ext[None, :-1] - latent[:, None])
    return P @ values


@pytest.mark.parametrize("per_rating", [False, True], ids=["two blocks", "with a rating block"])
def test_predict_is_the_average_over_samples_of_the_expected_rating(per_rating, tmp_path):
    u, i, r, n_users, n_items, uf, itf = small_problem(3)
    rng = np.random.default_rng(8)
    r = np.clip(np.round(r), 1, 5)
    values = np.unique(r)
    qu, qi = np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users)
    rf = random_features(rng, u.shape[0], 4) if per_rating else None
    query = random_features(rng, qu.shape[0], 4) if per_rating else None
    blocks, grp, _ = fm_blocks(u, i, n_users, n_items, uf, itf, True, False, rf)
    D = grp.shape[0]
    dense = dense_blocks(blocks, D)
    Xq = dense[0][qu] + dense[1][qi]  # (n_users·n_items, D) every pair
    X_item = np.zeros_like(Xq)  # an unknown user: the user block left out
    X_item[:] = dense[1][qi]
    if per_rating:
        Xr = dense_blocks(
            [(query.indptr, query.indices, np.ones(query.indices.shape[0]), qu.shape[0], None)], 4
        )[0]
        Xq[:, D - 4 :] = Xr
        X_item[:, D - 4 :] = Xr
    burn_in, preds, unknown = 2, [], []

    def keep(sweep, model):
        if sweep >= burn_in:
            preds.append(expected(fm_predict(Xq, model.w0_, model.w_, model.V_), model.c_, values))
            latent = fm_predict(X_item, model.w0_, model.w_, model.V_)
            unknown.append(expected(latent, model.c_, values))

    model = BayesianFM(n_factors=2, n_samples=5, burn_in=burn_in, seed=0, likelihood="ordered")
    model.fit(
        u, i, r, n_users, n_items, keep, user_features=uf, item_features=itf, rating_features=rf
    )
    assert len(preds) == 5 and model.cutpoints_.shape == (5, values.shape[0] - 1)
    np.testing.assert_array_equal(model.values_, values)
    np.testing.assert_array_equal(model.cutpoints_[:, 0], 0.0)  # c₁ pinned
    np.testing.assert_allclose(
        model.predict(qu, qi, rating_features=query), np.mean(preds, axis=0), rtol=0, atol=1e-10
    )
    # an unknown user (id UNKNOWN): the expected rating without the user block
    minus = np.full(qu.shape[0], -1)
    np.testing.assert_allclose(
        model.predict(minus, qi, rating_features=query), np.mean(unknown, axis=0), atol=1e-10
    )
    assert model.n_unknown_ == qu.shape[0]
    # score_all and recommend: expected ratings, dated as of the training rows' latest feature
    rows = None
    if per_rating:
        top = np.full(n_items, rf.indices.max(), dtype=np.int64)
        rows = Features(np.arange(n_items + 1, dtype=np.int64), top, rf.names)
    users = np.zeros(n_items, dtype=np.int64)
    scores = model.score_all(0)
    np.testing.assert_allclose(
        scores, model.predict(users, np.arange(n_items), rating_features=rows), atol=1e-12
    )
    items, top_scores = model.recommend(0, k=n_items, filter_seen=False)
    np.testing.assert_allclose(top_scores, np.sort(scores)[::-1], atol=1e-12)
    np.testing.assert_array_equal(items, np.argsort(-scores, kind="stable"))
    # no factor model holds it: saving and the fold-in are refused
    from mfrec.modelio import ModelFileError, save_model

    with pytest.raises(ModelFileError, match="cannot save a BayesianFM"):
        save_model(tmp_path / "o.npz", model, np.arange(n_users), np.arange(n_items))
    with pytest.raises(ValueError, match="cannot fold a user in"):
        model.recommend_new_user([0, 1], [4.0, 5.0])


def ordinal_problem(seed: int, cuts: np.ndarray, n: int = 6000):
    """Ratings 1..K of 60 users × 50 items from an ordered probit on a rank-3 latent ŷ with
    biases of sd 1 (so that many ratings sit at the ends of the scale)."""
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 60, 50, 3
    P, Q = rng.normal(0, 0.7, (n_users, k)), rng.normal(0, 0.7, (n_items, k))
    bu, bi = rng.normal(0, 1.0, n_users), rng.normal(0, 1.0, n_items)
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    latent = bu[u] + bi[i] + (P[u] * Q[i]).sum(1)
    y = 1.0 + np.searchsorted(cuts, latent + rng.standard_normal(n))
    return u, i, y, latent, n_users, n_items


def test_on_ordinal_data_it_recovers_the_cutpoints_and_beats_the_regression():
    # unevenly spaced cutpoints: the steps between ratings are not equal on the latent scale
    truth = np.array([-1.6, -1.2, 0.3, 0.8])
    u, i, y, latent, n_users, n_items = ordinal_problem(0, truth)
    fit, test = slice(0, 5000), slice(5000, None)
    kw: dict = dict(n_factors=3, n_samples=60, burn_in=20, seed=0)
    rmse = {}
    for likelihood in ("gaussian", "ordered"):
        model = BayesianFM(**kw, likelihood=likelihood)
        model.fit(u[fit], i[fit], y[fit], n_users, n_items, implicit=False)
        rmse[likelihood] = np.sqrt(np.mean((model.predict(u[test], i[test]) - y[test]) ** 2))
    # the gaps c_k − c₁ (the location is w₀'s): their shape closely, their scale to 10 %
    # (the sampled ŷ's own error widens the latent noise a little)
    gaps = model.cutpoints_.mean(0)
    true_gaps = truth - truth[0]
    np.testing.assert_allclose(gaps / gaps[-1], true_gaps / true_gaps[-1], atol=0.03)
    assert abs(gaps[-1] / true_gaps[-1] - 1) < 0.1, gaps
    assert model.accept_rate_ > 0.6
    best = np.sqrt(np.mean((expected(latent[test], truth, np.arange(1.0, 6.0)) - y[test]) ** 2))
    assert rmse["ordered"] < rmse["gaussian"] - 0.008, rmse
    assert best < rmse["ordered"], (best, rmse)


def test_bad_input_is_refused_naming_the_value():
    u, i, r, n_users, n_items, _, _ = small_problem(0)
    with pytest.raises(ValueError, match="likelihood must be one of .* got 'probit'"):
        BayesianFM(likelihood="probit")
    with pytest.raises(ValueError, match="fixes the latent noise precision at 1"):
        BayesianFM(likelihood="ordered", alpha=2.0)
    model = BayesianFM(likelihood="ordered", n_samples=2, burn_in=0)
    with pytest.raises(ValueError, match=r"needs integer ratings: rating 3\.5 \(row 7\)"):
        model.fit(u, i, np.where(np.arange(u.shape[0]) == 7, 3.5, 4.0), n_users, n_items)
    with pytest.raises(ValueError, match="the ratings have 1, from 4 to 4"):
        model.fit(u, i, np.full(u.shape[0], 4.0), n_users, n_items)
    with pytest.raises(ValueError, match="the ratings have 101, from 0 to 100"):
        ordinal_classes(np.arange(101.0))
    y, values = ordinal_classes(np.array([2.0, 5.0, 3.0, 5.0]))  # 4 unrated: no class
    assert y.tolist() == [0, 2, 1, 2] and values.tolist() == [2.0, 3.0, 5.0]
