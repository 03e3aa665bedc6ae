"""Gibbs sampling: each row is drawn from its exact Gaussian conditional; the average predicts."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.reference.als import csr_by_row, solve_rows
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.bfm import BayesianFM


def test_row_draws_follow_the_gaussian_conditional():
    rng = np.random.default_rng(0)
    n_rows, n_other, k, sigma, reg = 20000, 6, 2, 0.5, 0.8
    Y = rng.normal(0, 1, (n_other, k))
    by = rng.normal(0, 0.2, n_other)
    r_row = rng.normal(3, 1, n_other)  # every row rates every other with the same ratings
    rows = np.repeat(np.arange(n_rows), n_other)
    cols = np.tile(np.arange(n_other), n_rows)
    csr = csr_by_row(rows, cols, np.tile(r_row, n_rows), n_rows)
    X, bx = np.zeros((n_rows, k)), np.zeros(n_rows)
    noise = rng.standard_normal((n_rows, k + 1)) * sigma
    solve_rows(csr, X, bx, Y, by, 3.0, reg, False, True, noise)
    draws = np.column_stack([bx, X])  # (n_rows, d)
    feats = np.column_stack([np.ones(n_other), Y])
    A = feats.T @ feats + reg * np.eye(k + 1)
    mean = np.linalg.solve(A, feats.T @ (r_row - 3.0 - by))
    cov = sigma**2 * np.linalg.inv(A)
    # Monte Carlo with 20000 draws: standard errors are ~1% of the scale; 5 of them is < 0.05.
    se = np.sqrt(np.diag(cov) / n_rows)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.05, atol=0.05 * np.abs(cov).max())


@pytest.mark.parametrize("model_class", [BayesianMF, BayesianFM])
def test_bayesian_mf_recovers_low_rank_and_is_seeded(model_class):
    rng = np.random.default_rng(1)
    P_true, Q_true = rng.normal(0, 1, (40, 2)), rng.normal(0, 1, (30, 2))
    u, i = np.divmod(np.arange(1200), 30)
    r = 3 + (P_true @ Q_true.T)[u, i] + rng.normal(0, 0.1, 1200)
    train = rng.random(1200) < 0.7
    kw = dict(n_factors=2, n_samples=30, burn_in=10, seed=3)
    model = model_class(**kw).fit(u[train], i[train], r[train], 40, 30)
    again = model_class(**kw).fit(u[train], i[train], r[train], 40, 30)
    np.testing.assert_array_equal(model.P, again.P)
    assert model.P.shape == (40, 2 * 30)  # 30 kept samples of 2 factors
    test = ~train
    err = r[test] - model.predict(u[test], i[test])
    baseline = r[test] - r[train].mean()
    # Signal std ~1.4, noise 0.1: the posterior mean must be far better than the mean rating.
    assert np.sqrt(np.mean(err**2)) < 0.3 * np.sqrt(np.mean(baseline**2))
    assert 1 / np.sqrt(model.alpha_) < 0.3, "the sampled noise level must be near the true 0.1"
