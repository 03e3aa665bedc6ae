"""The accuracy table's peer adapters predict what scikit-surprise and cmfrec themselves predict."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.accuracy import CmfrecALS, SurpriseSVD, table


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


def test_cmfrec_adapter_matches_cmfrec_predict():
    cmfrec = pytest.importorskip("cmfrec", reason="cmfrec (extra 'peers') not installed")
    from scipy.sparse import coo_matrix

    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 12, 80), rng.integers(0, 9, 80)
    keep = np.unique(users * 9 + items, return_index=True)[1]  # cmfrec sums repeated pairs
    users, items = users[keep], items[keep]
    ratings = rng.integers(1, 6, users.shape[0]).astype(np.float64)
    model = CmfrecALS(seed=4, nthreads=1).fit(users, items, ratings, 12, 9)
    algo = cmfrec.CMF(method="als", random_state=4, nthreads=1)
    algo.fit(coo_matrix((ratings, (users, items)), (12, 9)))
    q_u, q_i = np.meshgrid(np.arange(12), np.arange(9))
    q_u, q_i = q_u.ravel(), q_i.ravel()
    expected = np.clip(algo.predict(q_u, q_i), 1.0, 5.0)  # mfrec clips to the training scale
    # cmfrec computes in float32; the adapter sums the same float32 arrays in float64.
    np.testing.assert_allclose(model.predict(q_u, q_i), expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 0.5  # a fitted model, not a constant


def test_table_has_one_row_per_model():
    fold = {"rmse": 0.9, "mae": 0.7, "ndcg@10": 0.1, "fit_s": 2.0}
    row = {"model": "m", "desc": "d", "folds": [fold], "mean": fold, "std": dict.fromkeys(fold, 0)}
    pub = {"model": "surprise-svd", "rmse": 0.934, "published": True, "desc": "published"}
    text = table([row, pub], 10, 5)
    assert "| m | 0.9000 ± 0.0000 | 0.7000 | 0.1000 | 2.0 | d |" in text
    assert "0.934 (published)" in text


def test_draw_stays_in_its_space():
    from benchmarks.dot_vs_mlp import NET_SPACE, draw

    rng = np.random.default_rng(3)
    for cfg in (draw(NET_SPACE, rng) for _ in range(50)):
        assert cfg["n_factors"] in NET_SPACE["n_factors"]
        assert cfg["hidden"] in NET_SPACE["hidden"]
        assert 3e-4 <= cfg["lr"] <= 1e-2 and 1e-3 <= cfg["reg"] <= 0.5


def test_dot_vs_mlp_pipeline_end_to_end(ml100k, tmp_path):
    """The whole pipeline on a slice (splits u1 and fold1, 2 epochs, 2 configurations, one
    model of each kind): every model has its tuning trials, both split families and a row."""
    import json
    from pathlib import Path

    from benchmarks.dot_vs_mlp import main

    models = ["biased-mf", "embedding-mlp", "logistic-mf", "two-towers (binary)"]
    argv = ["--quick", "--budget", "2", "--models", ",".join(models), "--out", str(tmp_path),
            "--data-dir", str(Path(ml100k.source).parent)]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "dot_vs_mlp.json").read_text())
    assert [r["model"] for r in results] == models
    for r in results:
        keys = ("rmse", "mae") if r["task"] == "rating" else ("auc", "log_loss")
        assert len(r["tuning"]["trials"]) == 2
        assert 1 <= r["tuning"]["epochs"] <= 2
        assert [s["split"] for s in r["splits"]] == ["u1", "fold1"]
        for family in ("canonical", "random"):
            assert all(np.isfinite(r["summary"][family][k]) for k in keys)
    text = (tmp_path / "dot_vs_mlp.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(models)  # a header per task, a row per model
    for name in models:
        assert sum(line.startswith(f"| {name} |") for line in rows) == 1
