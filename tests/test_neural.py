"""The neural extension: trains, shares the factor-model API, early-stops on validation."""

from __future__ import annotations

import numpy as np
import pytest

from reference import rmse
from reference.mf import UNKNOWN
from torch_impl.neural import NeuralMF


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
    top = model.recommend(0, 5)
    assert top.shape == (5,) and not np.isin(top, i[fit][u[fit] == 0]).any()
    mine = u == 0
    np.testing.assert_allclose(model.score_all(0)[i[mine]], model.raw_predict(u[mine], i[mine]))
    fallback = model.predict([UNKNOWN], [3])[0]
    assert fallback == pytest.approx(np.clip(model.mu + model.bi[3], 1, 5))
