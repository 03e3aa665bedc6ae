"""Biased MF (r̂ = μ + bᵤ + bᵢ + Pᵤ·Qᵢ): reference vs torch, vs scikit-surprise's SVD, gradient."""

from __future__ import annotations

import numpy as np
import pytest
from problems import assert_same_states, fit_step_for_step, random_ratings

from mfrec.reference import MatrixFactorization
from mfrec.reference.kernels import _sgd_epoch
from mfrec.torch_impl import TorchMatrixFactorization


def synthetic(rng: np.random.Generator, n_users=12, n_items=9, n=60):
    return *random_ratings(rng, n, n_users, n_items), n_users, n_items


def test_biased_reference_equals_torch_exact_step_for_step():
    rng = np.random.default_rng(31)
    users, items, ratings, n_users, n_items = synthetic(rng)
    kw = dict(n_factors=4, n_epochs=4, lr=0.02, reg=0.05, seed=5, biased=True)
    data = (users, items, ratings, n_users, n_items)
    ref, tm, ref_states, torch_states = fit_step_for_step(
        MatrixFactorization, TorchMatrixFactorization, data, **kw
    )
    assert ref.mu == tm.mu == pytest.approx(ratings.mean())
    # float64; the only difference is the summation order of the dot product (autograd vs loop),
    # a few ulps per step over 240 coupled steps.
    assert_same_states(torch_states, ref_states, atol=1e-12)
    assert np.abs(ref_states[-1][2]).max() > 1e-3, "biases must have moved"
    np.testing.assert_allclose(tm.history_, ref.history_, rtol=1e-12)


def surprise_rule(users, items, ratings, P, Q, lr, reg, epochs):
    """scikit-surprise SVD.sgd's loop, transcribed in plain Python (biased, no shuffling)."""
    P, Q = P.copy(), Q.copy()
    bu, bi = np.zeros(P.shape[0]), np.zeros(Q.shape[0])
    mu = ratings.mean()
    for _ in range(epochs):
        for u, i, r in zip(users, items, ratings, strict=True):
            dot = 0.0
            for f in range(P.shape[1]):
                dot += Q[i, f] * P[u, f]
            err = r - (mu + bu[u] + bi[i] + dot)
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
            for f in range(P.shape[1]):
                puf, qif = P[u, f], Q[i, f]
                P[u, f] += lr * (err * qif - reg * puf)
                Q[i, f] += lr * (err * puf - reg * qif)
    return P, Q, bu, bi


def test_biased_matches_surprise_rule_transcribed():
    rng = np.random.default_rng(7)
    users, items, ratings, n_users, n_items = synthetic(rng)
    P0 = rng.normal(0, 0.1, (n_users, 3))
    Q0 = rng.normal(0, 0.1, (n_items, 3))
    ref = MatrixFactorization(
        n_factors=3, n_epochs=3, lr=0.01, reg=0.02, shuffle=False, biased=True
    )
    ref.fit(users, items, ratings, n_users, n_items, init=(P0, Q0))
    s_P, s_Q, s_bu, s_bi = surprise_rule(users, items, ratings, P0, Q0, 0.01, 0.02, 3)
    # Same operations in the same order: equal up to rounding of identical float64 arithmetic.
    np.testing.assert_allclose(ref.P, s_P, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ref.Q, s_Q, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ref.bu, s_bu, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ref.bi, s_bi, rtol=0, atol=1e-14)


def test_biased_matches_scikit_surprise_svd():
    surprise = pytest.importorskip(
        "surprise", reason="scikit-surprise (extra 'peers') not installed"
    )
    rng = np.random.default_rng(3)
    users, items, ratings, _, _ = synthetic(rng)
    dataset = surprise.Dataset(surprise.Reader(rating_scale=(1, 5)))
    trainset = dataset.construct_trainset(
        [(int(u), int(i), float(r), None) for u, i, r in zip(users, items, ratings, strict=True)]
    )
    algo = surprise.SVD(n_factors=3, n_epochs=3, lr_all=0.01, reg_all=0.02, random_state=9)
    algo.fit(trainset)
    # Surprise's own init (RandomState(seed): pu, then qi) and visiting order (all_ratings()).
    state = np.random.RandomState(9)
    P0 = state.normal(0, 0.1, (trainset.n_users, 3))
    Q0 = state.normal(0, 0.1, (trainset.n_items, 3))
    s_u, s_i, s_r = (np.array(c) for c in zip(*trainset.all_ratings(), strict=True))
    ref = MatrixFactorization(
        n_factors=3, n_epochs=3, lr=0.01, reg=0.02, shuffle=False, biased=True
    )
    ref.fit(s_u, s_i, s_r, trainset.n_users, trainset.n_items, init=(P0, Q0))
    # Identical float64 operations in identical order (Cython vs Numba, no fastmath).
    np.testing.assert_allclose(ref.P, algo.pu, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ref.Q, algo.qi, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ref.bu, algo.bu, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ref.bi, algo.bi, rtol=0, atol=1e-14)


def test_biased_step_is_gradient_of_regularised_loss():
    rng = np.random.default_rng(11)
    k, lr, reg = 3, 0.1, 0.07
    P = rng.normal(0, 0.5, (1, k))
    Q = rng.normal(0, 0.5, (1, k))
    bu, bi = rng.normal(0, 0.3, 1), rng.normal(0, 0.3, 1)
    mu, r = 3.2, 4.0

    def loss(theta):
        p, q, b_u, b_i = theta[:k], theta[k : 2 * k], theta[2 * k], theta[2 * k + 1]
        e = r - (mu + b_u + b_i + p @ q)
        return 0.5 * e * e + 0.5 * reg * (p @ p + q @ q + b_u**2 + b_i**2)

    theta = np.concatenate([P[0], Q[0], bu, bi])
    h = 1e-6
    eye = np.eye(theta.size)
    grad = np.array([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in eye])
    one = np.zeros(1, dtype=np.int64)
    _sgd_epoch(one, one, np.array([r]), one, P, Q, bu, bi, mu, lr, reg, True)
    step = (np.concatenate([P[0], Q[0], bu, bi]) - theta) / -lr
    # Central differences of a smooth quartic: truncation ~h² and rounding ~eps/h, both < 1e-8.
    np.testing.assert_allclose(step, grad, rtol=0, atol=1e-8)
