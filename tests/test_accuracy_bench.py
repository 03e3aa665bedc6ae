"""The accuracy table's scikit-surprise adapter predicts what surprise itself predicts."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.accuracy import SurpriseSVD, table


def test_surprise_adapter_matches_surprise_predict():
    surprise = pytest.importorskip(
        "surprise", reason="scikit-surprise (extra 'peers') not installed"
    )
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 12, 80), rng.integers(0, 9, 80)
    ratings = rng.integers(1, 6, 80).astype(np.float64)
    model = SurpriseSVD(seed=4).fit(users, items, ratings, 13, 10)  # user 12, item 9: unseen
    reader = surprise.Reader(rating_scale=(1.0, 5.0))
    rows = zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True)
    trainset = surprise.Dataset(reader).construct_trainset([(u, i, r, None) for u, i, r in rows])
    algo = surprise.SVD(random_state=4).fit(trainset)
    q_u = np.array([0, 3, 12, 5, 12])
    q_i = np.array([1, 9, 2, 9, 9])
    expected = [algo.predict(int(u), int(i)).est for u, i in zip(q_u, q_i, strict=True)]
    # Same arrays, same formula, same fallback and clipping; float64 sums in another order.
    np.testing.assert_allclose(model.predict(q_u, q_i), expected, rtol=0, atol=1e-12)


def test_table_has_one_row_per_model():
    fold = {"rmse": 0.9, "mae": 0.7, "ndcg@10": 0.1, "fit_s": 2.0}
    row = {"model": "m", "desc": "d", "folds": [fold], "mean": fold, "std": dict.fromkeys(fold, 0)}
    pub = {"model": "surprise-svd", "rmse": 0.934, "published": True, "desc": "published"}
    text = table([row, pub], 10, 5)
    assert "| m | 0.9000 ± 0.0000 | 0.7000 | 0.1000 | 2.0 | d |" in text
    assert "0.934 (published)" in text
