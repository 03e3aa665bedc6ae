"""benchmarks.myfm_canonical: myFM's inputs are the recipe, and the table's code path runs."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from benchmarks import myfm_canonical as bench
from mfrec.data.features import date_periods, rating_dates, release_features
from mfrec.data.movielens import find_release
from mfrec.data.splits import canonical_split


def _myfm():
    myfm, why = bench.import_myfm()
    if myfm is None:
        pytest.skip(why)
    return myfm


def test_myfm_inputs_are_the_recipe_from_the_training_part(ml100k):
    myfm = _myfm()
    folder = find_release("ml-100k", download=False)
    user_f, item_f = release_features("ml-100k", folder, ml100k)
    assert user_f is not None and item_f is not None
    dates = rating_dates(ml100k, unit="day")
    train, test = canonical_split(ml100k, "u1")
    inputs = bench.myfm_inputs(myfm, ml100k, train, test, (user_f, item_f, dates))
    tr, te = inputs["train"], inputs["test"]
    U, I = tr["X_rel"][0].data, tr["X_rel"][1].data
    n_u, n_i = ml100k.n_users, ml100k.n_items
    assert U.shape == (n_u, n_u + user_f.n_features + n_i)
    assert I.shape == (n_i, n_i + item_f.n_features + n_u)
    assert tr["X"].shape == (train.shape[0], dates.n_features)
    assert te["X"].shape == (test.shape[0], dates.n_features)
    assert np.array_equal(tr["X"].sum(axis=1).A1, np.ones(train.shape[0]))  # one day each
    assert len(inputs["grouping"]) == dates.n_features + U.shape[1] + I.shape[1]
    # date, user id, its attribute columns (age, gender, occupation, zip), N(u), item id, its
    # columns (year, genre), R(i): one prior group each, numbered in that order
    assert np.array_equal(np.unique(inputs["grouping"]), np.arange(1 + 1 + 4 + 1 + 1 + 2 + 1))
    groups = np.asarray(inputs["grouping"])
    n_d = dates.n_features
    assert set(groups[:n_d]) == {0} and set(groups[n_d : n_d + ml100k.n_users]) == {1}
    assert set(groups[-ml100k.n_users :]) == {10}  # R(i), the last
    assert np.array_equal(tr["X_rel"][0].original_to_block, ml100k.users[train])
    assert np.array_equal(te["X_rel"][1].original_to_block, ml100k.items[test])
    # user 0: its id, its attributes, and the movies it rated in u1.base only, weighted |N(u)|^-½
    u = int(ml100k.users[test][0])
    row = U[u].toarray().ravel()
    assert row[u] == 1 and row[:n_u].sum() == 1
    attrs = np.flatnonzero(row[n_u : n_u + user_f.n_features])
    assert attrs.tolist() == user_f.indices[user_f.indptr[u] : user_f.indptr[u + 1]].tolist()
    rated = set(ml100k.items[train][ml100k.users[train] == u].tolist())
    implicit = row[n_u + user_f.n_features :]
    assert set(np.flatnonzero(implicit).tolist()) == rated
    np.testing.assert_allclose(implicit[list(rated)], 1 / np.sqrt(len(rated)), rtol=1e-15)
    held_out = set(ml100k.items[test][ml100k.users[test] == u].tolist())
    assert held_out and not held_out & set(np.flatnonzero(implicit).tolist())
    # ids only: the identity blocks and no rating columns
    ids = bench.myfm_inputs(myfm, ml100k, train, test, None)
    assert ids["train"]["X"].shape == (train.shape[0], 0)
    assert np.array_equal(ids["train"]["X_rel"][0].data.toarray(), np.eye(n_u))
    assert ids["grouping"] == [0] * n_u + [1] * n_i


@pytest.mark.slow
def test_canonical_table_end_to_end(ml100k, tmp_path):
    """Every row on u1 from 10,000 of its training ratings, few sweeps: each scores all
    20,000 test ratings and beats the training mean, and the table has a line per row."""
    _myfm()
    folder = find_release("ml-100k", download=False)
    argv = ["--splits", "u1", "--sweeps", "12", "--train-sample", "10000",
            "--data-dir", str(folder), "--out", str(tmp_path)]  # fmt: skip
    assert bench.main(argv) == 0
    results = json.loads((tmp_path / "myfm_canonical.json").read_text())
    assert [r["row"] for r in results] == list(bench.ROWS)
    train, test = canonical_split(ml100k, "u1")
    mean = ml100k.ratings[train].mean()
    baseline = float(np.sqrt(np.mean((ml100k.ratings[test] - mean) ** 2)))
    for r in results:
        assert r["n_test"] == test.shape[0] and r["n_train"] == 10_000
        assert r["rmse"] < baseline - 0.02, r
        assert r["fit_s"] > 0
    text = (tmp_path / "myfm_canonical.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(bench.ROWS)
    assert all(line.count("|") == 6 for line in lines)  # model, u1, mean, fit s, mean fit s


def test_without_myfm_its_rows_are_skipped_with_the_reason(ml100k, monkeypatch, capsys):
    monkeypatch.setattr(bench, "import_myfm", lambda: (None, "myfm is not importable (test)"))
    folder = find_release("ml-100k", download=False)
    assert bench.run(ml100k, folder, ["u1"], list(bench.MYFM_ROWS)) == []
    out = capsys.readouterr().out
    assert "skipping myfm-ids, myfm-recipe, myfm-oprobit: myfm is not importable (test)" in out


def test_render_joins_runs_on_different_splits(tmp_path):
    def result(row, split, rmse, fit_s):
        return dict(row=row, label=f"label {row}", split=split, rmse=rmse, fit_s=fit_s)

    first = [result("a", "u1", 0.9, 10.0), result("b", "u1", 0.8, 30.0)]
    second = [result("a", "u2", 0.7, 20.0), result("b", "u2", 0.6, 50.0)]
    paths = []
    for n, part in enumerate((first, second)):
        paths.append(tmp_path / f"run{n}.json")
        paths[-1].write_text(json.dumps(part))
    out = tmp_path / "out"
    assert bench.main(["--render", *map(str, paths), "--out", str(out)]) == 0
    text = (out / "myfm_canonical.md").read_text()
    assert "| label a | 0.9000 | 0.7000 | 0.8000 | 10 20 | 15.0 |" in text
    assert "| label b | 0.8000 | 0.6000 | 0.7000 | 30 50 | 40.0 |" in text
    assert json.loads((out / "myfm_canonical.json").read_text()) == first + second


def test_the_default_row_fits_and_predicts_with_the_ratings_dates(ml100k, monkeypatch):
    """fit_default hands DefaultModel the training ratings' timestamps and predict the test
    ones', so the default row runs with its dates."""
    seen: dict = {}

    class Spy(bench.DefaultModel):
        @functools.wraps(bench.DefaultModel.fit)
        def fit(self, *args, **kw):
            seen["fit"] = kw
            seen["model"] = self
            return super().fit(*args, **kw)

        @functools.wraps(bench.DefaultModel.predict)
        def predict(self, *args, **kw):
            seen["predict"] = kw
            return super().predict(*args, **kw)

    monkeypatch.setattr(bench, "DefaultModel", Spy)
    folder = find_release("ml-100k", download=False)
    user_f, item_f = release_features("ml-100k", folder, ml100k)
    assert user_f is not None and item_f is not None
    train, test = canonical_split(ml100k, "u1")
    train, test = train[::20], test[:500]  # a quick fit
    side = (user_f, item_f, rating_dates(ml100k, unit="month"))
    label, _, pred = bench.fit_default(ml100k, train, test, side, seed=0)
    assert np.array_equal(seen["fit"]["timestamps"], ml100k.timestamps[train])
    assert np.array_equal(seen["predict"]["timestamps"], ml100k.timestamps[test])
    months = date_periods(ml100k.timestamps[train], "month")
    assert seen["model"].date_span_ == (months.min(), months.max())  # it dated the ratings
    assert "month of rating" in label
    assert pred.shape == test.shape
