"""The synthetic MovieLens generator and the end-to-end benchmark built on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.end_to_end import main as end_to_end
from benchmarks.end_to_end import parse_json_output
from benchmarks.synthetic import (
    WHOLE_STARS,
    _conditional_moments,
    _floor_variance,
    _pick_items,
    format_rows,
    generate,
    read_truth,
    user_degrees,
)
from mfrec.data import read_ratings


def test_format_rows_writes_each_release_rating_style():
    args = ([1, 22], [333, 4], [8, 7], [0, 1234567890])
    assert format_rows(*args, ",", 1) == b"1,333,4.0,0\n22,4,3.5,1234567890\n"
    assert format_rows(*args, "::", 2) == b"1::333::4::0\n22::4::3.5::1234567890\n"
    assert format_rows([5], [6], [10], [7], "\t", 0) == b"5\t6\t5\t7\n"
    with pytest.raises(ValueError, match=">= 0"):
        format_rows([-1], [6], [10], [7])


def test_user_degrees_sum_floor_cap_and_tail():
    d = user_degrees(np.random.default_rng(0), 200_000, 1_000, 900)
    assert d.sum() == 200_000 and d.min() >= 20 and d.max() <= 900
    assert d.max() > 4 * np.median(d)  # a heavy tail, as MovieLens users have
    with pytest.raises(ValueError, match="do not fit"):
        user_degrees(np.random.default_rng(0), 1_000, 10, 50)


def test_pick_items_draws_distinct_items_even_for_heavy_users():
    n_items = 400
    degrees = np.array([1, 200, 37, 199, 5])  # 200 of 400: half the catalogue
    pop = (np.arange(n_items) + 1.0) ** -1.5
    cdfs = [np.cumsum(pop), np.cumsum(np.sqrt(pop)), np.arange(1.0, n_items + 1)]
    u, i = _pick_items(np.random.default_rng(3), degrees, cdfs, n_items)
    np.testing.assert_array_equal(np.bincount(u, minlength=5), degrees)
    keys = u * n_items + i
    assert np.all(np.diff(keys) > 0)  # sorted and no pair twice
    assert np.mean(i[u == 2] < 40) > 0.3  # popular items come first (10% of ids)


def test_floor_is_the_simulated_conditional_variance():
    rng = np.random.default_rng(1)
    x = np.array([0.2, 1.7, 3.1, 3.5, 4.9, 5.6])
    mean, var = _conditional_moments(x, 0.8, 0.5, 5.0, 0.5)
    r = np.clip(np.round((x[:, None] + rng.normal(0, 0.8, (6, 200_000))) / 0.5) * 0.5, 0.5, 5.0)
    np.testing.assert_allclose(mean, r.mean(axis=1), atol=0.01)
    np.testing.assert_allclose(var, r.var(axis=1), atol=0.01)


def test_floor_of_the_whole_and_half_star_mixture_matches_simulation():
    rng = np.random.default_rng(2)
    x = np.array([0.9, 2.2, 3.6, 4.4, 5.2])
    y = x[:, None] + rng.normal(0, 0.8, (5, 200_000))
    r = np.clip(np.round(y * 2) / 2, 0.5, 5.0)
    whole = rng.random(y.shape) < WHOLE_STARS
    r[whole] = np.clip(np.round(y[whole]), 1.0, 5.0)
    np.testing.assert_allclose(_floor_variance(x, 0.8, 0.5, 5.0), r.var(axis=1), atol=0.01)


def test_generate_is_seeded_and_cached(tmp_path):
    a = generate("ml-25m", 20_000, tmp_path / "a", seed=5)
    b = generate("ml-25m", 20_000, tmp_path / "b", seed=5)
    c = generate("ml-25m", 20_000, tmp_path / "c", seed=6)
    data = (a / "ratings.csv").read_bytes()
    assert data == (b / "ratings.csv").read_bytes() != (c / "ratings.csv").read_bytes()
    assert (a / "movies.csv").read_bytes() == (b / "movies.csv").read_bytes()
    mtime = (a / "ratings.csv").stat().st_mtime_ns
    assert generate("ml-25m", 20_000, tmp_path / "a", seed=5) == a  # same parameters: kept
    assert (a / "ratings.csv").stat().st_mtime_ns == mtime
    truth = read_truth(a)
    table = read_ratings(a / "ratings.csv")
    assert len(table) == 20_000 and table.n_users == truth["params"]["n_users"]
    assert abs(table.ratings.mean() - truth["rating_mean"]) < 1e-9
    assert 0.5 < truth["floor_rmse"] < truth["noise"] < truth["rating_std"]


def test_parse_json_output_takes_one_document_or_the_last_json_line():
    assert parse_json_output('{\n  "rmse": 0.8\n}\n') == {"rmse": 0.8}
    assert parse_json_output('epoch 1\n{"rmse": 0.9}\ntop 10\n{"rmse": 0.7}\n') == {"rmse": 0.7}
    with pytest.raises(ValueError, match="no JSON"):
        parse_json_output("epoch 1\n")


def test_end_to_end_writes_its_report(tmp_path):
    out = tmp_path / "out"
    argv = ["--ratings", "20000", "--data", str(tmp_path), "--out", str(out), "--no-peers"]
    assert end_to_end([*argv, "--mfrec=--model plain --epochs 3"]) == 0
    doc = json.loads((out / "end_to_end-20000.json").read_text())
    (row,) = doc["rows"]
    assert row["exit_code"] == 0 and row["peak_rss_mib"] > 10
    assert row["result"]["n_train"] + row["result"]["n_test"] <= 20_000
    assert row["result"]["rmse"] > doc["meta"]["floor_rmse"]
    text = (out / "end_to_end-20000.md").read_text()
    assert "mfrec --model plain --epochs 3" in text and f"{doc['meta']['floor_rmse']:.4f}" in text


def _sparse_item_gain(folder, n_ratings: int) -> float:
    """Test RMSE of ids-only Bayesian MF minus that of the FM with the copy's genres and user
    attributes, on the test ratings of items with at most 3 training ratings."""
    from mfrec.data.features import read_features
    from mfrec.reference import rmse
    from mfrec.reference.bayes import BayesianMF
    from mfrec.reference.bfm import BayesianFM

    table = read_ratings(folder / "ratings.csv")
    users = read_features(folder / "users.csv", table.user_ids, what="user")
    items = read_features(folder / "movies.csv", table.item_ids, what="item")
    u, i, r = table.users, table.items, table.ratings.astype(np.float64)
    test = np.random.default_rng(0).random(len(r)) < 0.2
    fit = ~test
    counts = np.bincount(i[fit], minlength=table.n_items)
    sparse = test & (counts[i] <= 3)
    assert sparse.sum() > 300, sparse.sum()  # enough sparse-item ratings to tell
    kw = dict(n_factors=5, n_samples=60, burn_in=20, seed=0)
    ids = BayesianMF(ard=True, **kw).fit(u[fit], i[fit], r[fit], table.n_users, table.n_items)
    fm = BayesianFM(**kw).fit(u[fit], i[fit], r[fit], table.n_users, table.n_items,
                              user_features=users, item_features=items, implicit=False)  # fmt: skip
    ts = np.flatnonzero(sparse)
    return rmse(r[ts], ids.predict(u[ts], i[ts])) - rmse(r[ts], fm.predict(u[ts], i[ts]))


def test_generated_features_carry_the_known_gain(tmp_path):
    """With half of the truth's variance in the genres and user attributes, the FM that reads
    them beats ids alone on sparse items; with none there, it gains nothing of note. So the
    files written hold the features the truth was built from, aligned to the right ids."""
    n = 40_000
    shaped = generate("ml-25m", n, tmp_path / "s", feature_share=0.5, date_effect=0.0)
    plain = generate("ml-25m", n, tmp_path / "p", feature_share=0.0, date_effect=0.0)
    header = (shaped / "users.csv").read_text().splitlines()[0]
    assert header == "userId,age,gender,occupation"
    truth, control = read_truth(shaped), read_truth(plain)
    # The features alone predict better than the mean where they shape the truth.
    assert truth["features_rmse"] < truth["rating_std"] - 0.03
    assert abs(control["features_rmse"] - control["rating_std"]) < 0.02
    gain = _sparse_item_gain(shaped, n)
    assert gain > 0.04, gain
    assert _sparse_item_gain(plain, n) < gain - 0.03


def test_date_effect_shifts_the_monthly_means(tmp_path):
    from mfrec.data.features import date_periods

    folder = generate("ml-25m", 30_000, tmp_path / "d", feature_share=0.0, date_effect=0.4)
    table = read_ratings(folder / "ratings.csv")
    month = date_periods(table.timestamps, "month")
    months, inverse, counts = np.unique(month, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=table.ratings) / counts
    busy = counts >= 100  # months whose mean is known to about ±0.1
    assert busy.sum() > 10
    assert means[busy].std() > 0.2  # the drift (std 0.4) is there; noise alone gives ~0.1
    with pytest.raises(ValueError, match="feature_share"):
        generate("ml-25m", 1_000, tmp_path / "x", feature_share=1.5)
