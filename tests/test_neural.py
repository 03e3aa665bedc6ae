"""The neural extension: trains, shares the factor-model API, early-stops on validation."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.reference import rmse
from mfrec.reference.mf import UNKNOWN
from mfrec.torch_impl.neural import NeuralMF


def test_neural_learns_and_shares_the_api():
    rng = np.random.default_rng(0)
    P_true, Q_true = rng.normal(0, 1, (30, 2)), rng.normal(0, 1, (25, 2))
    u, i = np.divmod(np.arange(750), 25)
    r = np.clip(np.round(3 + (P_true @ Q_true.T)[u, i]), 1, 5)
    perm = rng.permutation(750)
    fit, val = perm[:600], perm[600:]
    model = NeuralMF(n_factors=8, n_epochs=30, lr=1e-2, reg=0.0, batch_size=64, dtype="float64")
    model.fit(u[fit], i[fit], r[fit], 30, 25, eval_set=(u[val], i[val], r[val]), patience=5)
    assert model.history_[-1] < 0.5 * model.history_[0]
    val_rmse = rmse(r[val], model.predict(u[val], i[val]))
    assert val_rmse == pytest.approx(min(model.val_history_), abs=1e-12)  # best epoch restored
    assert val_rmse < np.std(r[val]), "must beat predicting the mean"
    pred = model.predict(u, i)
    assert pred.min() >= 1 and pred.max() <= 5
    top, _ = model.recommend(0, 5)
    assert top.shape == (5,) and not np.isin(top, i[fit][u[fit] == 0]).any()
    mine = u == 0
    np.testing.assert_allclose(model.score_all(0)[i[mine]], model.raw_predict(u[mine], i[mine]))
    fallback = model.predict([UNKNOWN], [3])[0]
    assert fallback == pytest.approx(np.clip(model.mu + model.bi[3], 1, 5))


def test_neural_carves_its_own_validation_split():
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 15, 300), rng.integers(0, 12, 300)
    ratings = rng.integers(1, 6, 300).astype(np.float64)  # noise: validation RMSE turns up soon
    model = NeuralMF(n_factors=4, n_epochs=60, lr=2e-2, reg=0.0, batch_size=32, val_fraction=0.2)
    model.fit(users, items, ratings, 15, 12)
    assert len(model.val_history_) == model.best_epoch_ + 1 + model.patience < 60
    # Ratings carved out for validation are still training ratings: never recommended back.
    rated = np.unique(items[users == 0])
    top, _ = model.recommend(0, 12)
    assert not np.isin(top, rated).any()
    assert top.shape[0] == 12 - rated.shape[0]
