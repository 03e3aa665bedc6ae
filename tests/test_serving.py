"""Fold-in of a new user (ridge solve against fixed Q) and cosine neighbours on Q."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.reference import MatrixFactorization
from mfrec.reference.serving import fold_in, fold_in_scores, similar_items


def test_fold_in_recovers_an_exact_user_without_penalty():
    rng = np.random.default_rng(1)
    Q = rng.normal(size=(40, 4))
    bi = rng.normal(size=40)
    p_true, bu_true, mu = rng.normal(size=4), 0.3, 3.5
    items = rng.choice(40, size=12, replace=False)
    r = mu + bu_true + bi[items] + Q[items] @ p_true
    p, bu = fold_in(Q, bi, mu, True, items, r, reg=0.0)
    # 12 equations, 5 unknowns, noiseless: least squares is exact up to rounding (float64).
    np.testing.assert_allclose(p, p_true, atol=1e-10)
    assert bu == pytest.approx(bu_true, abs=1e-10)
    scores = fold_in_scores(Q, bi, mu, True, p, bu)
    np.testing.assert_allclose(scores[items], r, atol=1e-10)


@pytest.mark.parametrize("biased", [True, False])
def test_fold_in_solves_the_ridge_normal_equations(biased):
    rng = np.random.default_rng(2)
    Q, bi = rng.normal(size=(30, 5)), rng.normal(size=30)
    items = np.array([3, 7, 11])
    r = np.array([5.0, 1.0, 4.0])
    reg, mu = 0.1, 3.0
    p, bu = fold_in(Q, bi, mu, biased, items, r, reg)
    # Gradient of Σ e² + λ(‖p‖² + bu²), λ = reg·n, must vanish at the solution.
    lam = reg * len(items)
    err = r - (Q[items] @ p + ((mu + bu + bi[items]) if biased else 0.0))
    np.testing.assert_allclose(-Q[items].T @ err + lam * p, 0.0, atol=1e-12)
    if biased:
        assert -err.sum() + lam * bu == pytest.approx(0.0, abs=1e-12)
    else:
        assert bu == 0.0


def test_fold_in_rejects_bad_input():
    Q, bi = np.ones((5, 2)), np.zeros(5)
    with pytest.raises(ValueError, match="items must be < 5"):
        fold_in(Q, bi, 0.0, False, [9], [3.0], 0.1)
    with pytest.raises(ValueError, match="finite"):
        fold_in(Q, bi, 0.0, False, [1], [np.nan], 0.1)


def test_similar_items_match_brute_force_cosine():
    rng = np.random.default_rng(3)
    Q = rng.normal(size=(25, 6))
    Q[4] = 0.0  # a zero row has cosine 0 with everything
    top, cos = similar_items(Q, 2, k=24)
    brute = [
        (Q[j] @ Q[2]) / (np.linalg.norm(Q[j]) * np.linalg.norm(Q[2])) if j != 4 else 0.0
        for j in range(25)
    ]
    order = sorted((j for j in range(25) if j != 2), key=lambda j: (-brute[j], j))
    assert top.tolist() == order
    np.testing.assert_allclose(cos, [brute[j] for j in order], rtol=1e-12, atol=1e-15)


def test_serial_numba_fit_is_bit_identical_for_a_seed():
    rng = np.random.default_rng(4)
    u, i = rng.integers(0, 50, 2000), rng.integers(0, 40, 2000)
    r = rng.integers(1, 6, 2000).astype(float)
    fits = [
        MatrixFactorization(n_factors=5, n_epochs=4, lr=0.01, reg=0.02, seed=9, biased=True).fit(
            u, i, r
        )
        for _ in "ab"
    ]
    for name in ("P", "Q", "bu", "bi"):
        assert getattr(fits[0], name).tobytes() == getattr(fits[1], name).tobytes()
    assert fits[0].history_ == fits[1].history_
