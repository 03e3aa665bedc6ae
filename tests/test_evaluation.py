"""Honest evaluation: clipping, unknown fallback, lr decay, early stopping, ranking metrics, CV."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfrec.cli import build_parser, main, make_model
from mfrec.data import Ratings
from mfrec.evaluate import cross_validate
from mfrec.job import DefaultModel
from mfrec.modelio import save_model
from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.ensemble import Ensemble
from mfrec.reference.kernels import _sgd_epoch
from mfrec.reference.mf import UNKNOWN
from mfrec.reference.ranking import ranking_metrics, user_ranking_metrics
from mfrec.reference.sampling import epoch_order, init_factors


def synthetic(seed: int, n_users=20, n_items=15, n=150, scale=(1, 2, 3, 4, 5)):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n, replace=False)  # each (user, item) rated once
    users, items = pairs // n_items, pairs % n_items
    ratings = rng.choice(np.asarray(scale, dtype=np.float64), n)
    return users, items, ratings


def test_user_ranking_metrics_by_hand():
    p, r, ndcg = user_ranking_metrics(np.array([3, 1, 7]), np.array([1, 5]), 3)
    assert p == pytest.approx(1 / 3)
    assert r == pytest.approx(1 / 2)
    # One hit at rank 2: DCG = 1/log2(3); ideal: hits at ranks 1 and 2.
    assert ndcg == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert user_ranking_metrics(np.array([5, 1]), np.array([1, 5]), 2) == (1.0, 1.0, 1.0)


def test_ranking_excludes_training_items_and_uses_threshold():
    model = MatrixFactorization(n_factors=1, n_epochs=0, init_std=0.0, biased=True)
    model.fit([0, 0, 1], [0, 1, 2], [5.0, 1.0, 3.0], 2, 4)
    model.bi[:] = [9.0, 8.0, 7.0, 6.0]  # item 0 scores best but user 0 rated it in training
    assert model.recommend(0, 2)[0].tolist() == [2, 3]
    # Test ratings: user 0 liked item 3 (>= 4), disliked item 2; user 1 rated nothing >= 4.
    metrics = ranking_metrics(model, [0, 0, 1], [3, 2, 3], [4.0, 2.0, 3.5], k=2, threshold=4.0)
    assert metrics["n_users"] == 1
    assert metrics["precision@2"] == pytest.approx(0.5)
    assert metrics["recall@2"] == pytest.approx(1.0)
    assert metrics["ndcg@2"] == pytest.approx(1 / np.log2(3))


def test_predictions_clipped_to_training_scale_half_stars():
    users, items, ratings = synthetic(1, scale=(0.5, 1.5, 2.5, 3.5, 4.5))
    model = MatrixFactorization(n_factors=2, n_epochs=1, biased=True).fit(users, items, ratings)
    assert (model.r_min, model.r_max) == (0.5, 4.5)
    model.P[:] = 10.0
    model.Q[:] = 10.0  # every raw prediction far above the scale
    assert np.all(model.raw_predict(users, items) > 100)
    np.testing.assert_array_equal(model.predict(users, items), 4.5)
    model.Q[:] = -10.0
    np.testing.assert_array_equal(model.predict(users, items), 0.5)


def test_unknown_user_and_item_fall_back_to_biases_and_mean():
    users, items, ratings = synthetic(2)
    model = MatrixFactorization(n_factors=2, n_epochs=3, reg=0.05, biased=True, seed=1)
    model.fit(users, items, ratings, 20, 15)
    mu = ratings.mean()
    pred = model.predict([UNKNOWN, 3, UNKNOWN, 20], [4, UNKNOWN, UNKNOWN, 99])
    expected = [mu + model.bi[4], mu + model.bu[3], mu, mu]
    np.testing.assert_allclose(pred, np.clip(expected, 1, 5), rtol=0, atol=1e-12)
    assert model.n_unknown_ == 4
    np.testing.assert_allclose(model.score_all(UNKNOWN), mu + model.bi, rtol=0, atol=1e-12)
    # predict takes raw ids (here the indices themselves): -2 and "u3" are ids it never saw
    known = model.predict([0], [0])[0]
    assert model.predict([-2, 0], ["u3", 0]).tolist() == pytest.approx([mu, known])
    assert model.n_unknown_ == 1
    with pytest.raises(ValueError, match="items must hold integer or text ids, found 0.5"):
        model.predict([0], [0.5])
    plain = MatrixFactorization(n_factors=2, n_epochs=1).fit(users, items, ratings)
    assert plain.predict([UNKNOWN], [UNKNOWN])[0] == pytest.approx(mu)  # plain: training mean


def test_lr_decay_scales_each_epoch():
    users, items, ratings = synthetic(3)
    model = MatrixFactorization(n_factors=3, n_epochs=3, lr=0.05, reg=0.01, lr_decay=0.5, seed=4)
    model.fit(users, items, ratings, 20, 15)
    rng = np.random.default_rng(4)
    P, Q = init_factors(rng, 20, 15, 3, 0.1, np.float64)
    zeros_u, zeros_i = np.zeros(20), np.zeros(15)
    for epoch in range(3):
        order = epoch_order(rng, ratings.shape[0], True)
        lr = 0.05 * 0.5**epoch
        _sgd_epoch(users, items, ratings, order, P, Q, zeros_u, zeros_i, 0.0, lr, 0.01, False)
    # Same kernel, same arithmetic: identical.
    np.testing.assert_array_equal(model.P, P)
    np.testing.assert_array_equal(model.Q, Q)


def test_torch_lr_decay_follows_the_reference():
    from mfrec.torch_impl import TorchMatrixFactorization

    users, items, ratings = synthetic(3)
    hyper = dict(n_factors=3, n_epochs=3, lr=0.05, reg=0.01, lr_decay=0.5, seed=4, biased=True)
    ref = MatrixFactorization(**hyper).fit(users, items, ratings, 20, 15)
    torch_ = TorchMatrixFactorization(**hyper, mode="exact").fit(users, items, ratings, 20, 15)
    np.testing.assert_allclose(torch_.history_, ref.history_, rtol=1e-12)
    np.testing.assert_allclose(torch_.P, ref.P, rtol=0, atol=1e-12)
    undecayed = MatrixFactorization(**{**hyper, "lr_decay": 1.0}).fit(users, items, ratings)
    assert np.abs(undecayed.P - ref.P).max() > 1e-3  # the decay changed the trajectory


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_early_stopping_restores_best_validation_epoch(backend):
    from mfrec.torch_impl import TorchMatrixFactorization

    users, items, ratings = synthetic(5, n=300)
    fit, val = slice(0, 240), slice(240, 300)
    cls = MatrixFactorization if backend == "numba" else TorchMatrixFactorization
    model = cls(n_factors=8, n_epochs=60, lr=0.05, reg=0.0, seed=2)
    model.fit(
        users[fit], items[fit], ratings[fit], 20, 15,
        eval_set=(users[val], items[val], ratings[val]), patience=3,
    )  # fmt: skip
    val_rmse = rmse(ratings[val], model.predict(users[val], items[val]))
    assert len(model.val_history_) < 60, "random ratings overfit: it must stop early"
    assert len(model.val_history_) == model.best_epoch_ + 1 + 3
    assert val_rmse == pytest.approx(min(model.val_history_), abs=1e-12)


def test_ensemble_is_weighted_average_of_members():
    users, items, ratings = synthetic(6)

    def members():
        return [
            MatrixFactorization(n_factors=2, n_epochs=3, biased=True, reg=0.02, seed=1),
            MatrixFactorization(n_factors=3, n_epochs=4, reg=0.02, seed=2),
        ]

    ens = Ensemble(members(), [0.3, 0.7]).fit(users, items, ratings, 20, 15)
    a, b = (m.fit(users, items, ratings, 20, 15) for m in members())
    expected = 0.3 * a.raw_predict(users, items) + 0.7 * b.raw_predict(users, items)
    np.testing.assert_allclose(ens.raw_predict(users, items), expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="summing to 1"):
        Ensemble(members(), [0.5, 0.6])


def test_cross_validate_runs_every_fold():
    users, items, ratings = synthetic(7, n=200)
    data = Ratings.from_raw(users + 1, items + 1, ratings)
    result = cross_validate(data, "plain", folds=4, seed=3, k=5)
    assert len(result["folds"]) == 4
    assert all(np.isfinite(f["rmse"]) and f["mae"] <= f["rmse"] for f in result["folds"])
    assert result["mean"]["rmse"] == pytest.approx(np.mean([f["rmse"] for f in result["folds"]]))


def test_train_without_model_flags_uses_the_default_configuration():
    parser = build_parser()
    model = make_model(parser.parse_args(["train"]))
    assert isinstance(model, DefaultModel) and isinstance(model, Ensemble)
    assert type(make_model(parser.parse_args(["train", "--factors", "5"]))) is MatrixFactorization
    assert type(make_model(parser.parse_args(["train", "--model", "plain"]))) is MatrixFactorization


def test_recommend_for_unknown_user_says_so(tmp_path, capsys):
    users, items, ratings = synthetic(8)
    model = MatrixFactorization(n_factors=2, n_epochs=2, biased=True).fit(users, items, ratings)
    path = save_model(tmp_path / "m.npz", model, np.arange(1, 21), np.arange(1, 16))
    assert main(["recommend", "--model", str(path), "--user", "999", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "user 999 is not in" in out and "item bias" in out
    best = np.argsort(-model.bi, kind="stable")[:3] + 1
    assert all(f"item {b}" in out for b in best)


def test_cv_json_line_is_parseable(tmp_path, capsys):
    users, items, ratings = synthetic(9, n=120)
    path = tmp_path / "r.txt"
    rows = zip(users, items, ratings, strict=True)
    path.write_text("".join(f"{u} {i} {r}\n" for u, i, r in rows))
    assert main(["cv", "--ratings", str(path), "--folds", "2", "--model", "plain", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "plain" and len(result["folds"]) == 2
    assert main(["cv", "--ratings", str(path), "--folds", "1"]) == 2
    assert "mfrec: error: --folds must be >= 2" in capsys.readouterr().err


def test_saved_torch_model_records_only_its_own_parameters(tmp_path):
    from mfrec.modelio import load_model
    from mfrec.torch_impl import TorchMatrixFactorization

    users, items, ratings = synthetic(7)
    model = TorchMatrixFactorization(n_factors=2, n_epochs=1, mode="minibatch", lr_decay=0.9)
    model.fit(users, items, ratings, 20, 15)
    path = save_model(tmp_path / "m.npz", model, np.arange(20), np.arange(15))
    params = load_model(path)[0].params
    assert "kernel" not in params and "n_threads" not in params  # numba-only parameters
    assert params["mode"] == "minibatch" and params["lr_decay"] == 0.9
