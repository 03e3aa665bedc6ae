"""Top-K recommendation, metrics, the MovieLens loader and the CLI's main job."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfrec.cli import main
from mfrec.data import Ratings, align, read_ratings, train_test_split
from mfrec.data.ids import UNKNOWN
from mfrec.reference import MatrixFactorization, mse, rmse, top_k


def test_loader_counts_and_titles(ml100k):
    assert len(ml100k) == 100_000
    assert ml100k.n_users == 943
    assert ml100k.n_items == 1_682
    assert ml100k.titles[1] == "Toy Story (1995)"
    # latin-1 titles decode (e.g. "Misérables, Les (1995)" has an é).
    assert any("é" in t for t in ml100k.titles.values())
    raw_user = int(ml100k.user_ids[ml100k.users[0]])
    assert ml100k.user_index(raw_user) == ml100k.users[0]
    assert set(np.unique(ml100k.ratings)) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_recommend_excludes_training_items_and_is_sorted(ml100k_split):
    train, _ = ml100k_split
    model = MatrixFactorization(n_factors=8, n_epochs=3, lr=0.01, seed=1).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items
    )
    for u in (0, 5, 100, train.n_users - 1):
        rated = set(train.items[train.users == u].tolist())
        top, _ = model.recommend(u, k=20)
        assert len(top) == 20
        assert not rated & set(top.tolist())
        # recommend ranks by the unclipped score (predict() clips to [1, 5], where this
        # 3-epoch unbiased model's scores would all tie at 1 and the sort check be empty).
        all_scores = model.score_all(u)
        scores = all_scores[top]
        assert np.all(np.diff(scores) <= 0) and scores[0] > scores[-1]
        np.testing.assert_allclose(model.predict(np.full(20, u), top), model.clip(scores.copy()))
        # Nothing better was left out: every unrated item scores at most the 20th.
        unrated = np.setdiff1d(np.arange(train.n_items), list(rated))
        assert np.sort(all_scores[unrated])[-20] == scores[-1]


def test_top_k_handles_ties_and_short_lists():
    scores = np.array([1.0, 3.0, 3.0, 2.0])
    assert top_k(scores, np.array([3]), 10).tolist() == [1, 2, 0]
    assert top_k(scores, np.array([], dtype=np.int64), 2).tolist() == [1, 2]


def test_mse_and_rmse_definitions():
    r, p = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0])
    assert mse(r, p) == pytest.approx((1 + 0 + 9) / 3)
    assert rmse(r, p) == pytest.approx(np.sqrt(10 / 3))
    with pytest.raises(ValueError, match="shape"):
        mse(r, p[:2])


def test_tol_stops_early():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 10, 200), rng.integers(0, 10, 200)
    ratings = rng.uniform(1, 5, 200)
    full = MatrixFactorization(n_factors=5, n_epochs=50, lr=0.05).fit(users, items, ratings)
    tol = full.history_[9] * 1.0000001
    first_below = next(e for e, m in enumerate(full.history_) if m < tol)
    stopped = MatrixFactorization(n_factors=5, n_epochs=50, lr=0.05, tol=tol)
    stopped.fit(users, items, ratings)
    assert len(stopped.history_) == first_below + 1 < 50
    assert stopped.history_ == full.history_[: first_below + 1]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": 0}, "lr"),
        ({"n_factors": 0}, "n_factors"),
        ({"n_epochs": -1}, "n_epochs"),
        ({"reg": -0.1}, "reg"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_bad_hyper_parameters_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MatrixFactorization(**kwargs)


def test_read_ratings_formats(tmp_path):
    rows = [(10, 7, 4.0), (10, 9, 3.5), (2_000_000, 7, 1.0)]
    for delim, header in (("\t", ""), (",", "userId,movieId,rating,timestamp\n"), ("::", "")):
        path = tmp_path / f"r{len(delim)}{bool(header)}.txt"
        lines = [delim.join([str(u), str(i), str(r), "123"]) for u, i, r in rows]
        path.write_text(header + "\n".join(lines) + "\n")
        data = read_ratings(path)
        assert len(data) == 3
        assert data.user_ids.tolist() == [10, 2_000_000]
        assert data.item_ids[data.items].tolist() == [7, 9, 7]
        assert data.ratings.tolist() == [4.0, 3.5, 1.0]


def test_align_keeps_unknown_ids_as_unknown_and_counts_them():
    train = Ratings.from_raw([1, 2], [5, 6], [3.0, 4.0])
    test = Ratings.from_raw([2, 3], [5, 5], [1.0, 2.0])
    aligned, n_unknown = align(train, test)
    assert n_unknown == 1
    assert aligned.users.tolist() == [1, UNKNOWN] and aligned.items.tolist() == [0, 0]
    assert aligned.ratings.tolist() == [1.0, 2.0]


def test_cli_train_explicit_files_json(tmp_path, ml100k, capsys):
    tr, te = train_test_split(len(ml100k), 0.2, seed=3)
    for name, idx in (("train.tsv", tr[:20_000]), ("test.tsv", te[:2_000])):
        sub = ml100k.subset(idx)
        raw = np.column_stack([sub.user_ids[sub.users], sub.item_ids[sub.items], sub.ratings])
        np.savetxt(tmp_path / name, raw, fmt="%d\t%d\t%g")
    code = main(
        [
            "train",
            "--train",
            str(tmp_path / "train.tsv"),
            "--test",
            str(tmp_path / "test.tsv"),
            "--factors",
            "5",
            "--epochs",
            "3",
            "--json",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert {"rmse", "mse", "n_train", "n_test", "seconds"} <= set(result)
    assert result["n_train"] == 20_000
    assert 0 < result["n_test"] <= 2_000
    assert result["mse"] == pytest.approx(result["rmse"] ** 2)
    assert 0.8 < result["rmse"] < 1.5


def test_cli_main_job_on_ml100k(ml100k, capsys, monkeypatch):
    monkeypatch.setenv("MFREC_DATA", str(ml100k.source).rsplit("/ml-100k", 1)[0])
    assert main(["train", "--epochs", "2", "--factors", "8"]) == 0
    out = capsys.readouterr().out
    assert "epoch   2/2" in out and "test RMSE" in out
    assert "top 10 unseen movies for user 1:" in out
    assert "n_train" not in out
