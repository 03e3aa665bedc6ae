"""The default model: least-squares blend weights on validation, the size rule, devices."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from cli_run import run, run_json

from mfrec.data import Features
from mfrec.data.features import date_features, date_periods
from mfrec.job import (
    BUDGET_SECONDS,
    FM_FACTORS,
    FM_MAX_RATINGS,
    GAIN_WINDOW,
    MAX_KEPT,
    SMALL,
    Budget,
    DefaultModel,
    FeatureFM,
    plan,
    resolve_device,
)
from mfrec.modelio import load_model, save_model
from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.ensemble import BlendedEnsemble, member_label, simplex_weights


def test_simplex_weights_match_a_fine_grid_search():
    rng = np.random.default_rng(0)
    truth = rng.normal(3.5, 1.0, 4000)
    preds = np.column_stack([truth + rng.normal(0, s, 4000) for s in (0.5, 0.7, 1.5)])
    w = simplex_weights(preds, truth)
    assert np.all(w >= 0) and np.isclose(w.sum(), 1.0)
    sse = lambda v: float(np.sum((truth - preds @ v) ** 2))  # noqa: E731
    steps = np.linspace(0, 1, 101)
    grid = [
        np.array([a, b, 1 - a - b]) for a, b in itertools.product(steps, repeat=2) if a + b <= 1
    ]
    best = min(grid, key=sse)
    assert sse(w) <= sse(best) + 1e-9, "the exact solution can be no worse than any grid point"
    # Independent errors with variances 0.25, 0.49, 2.25: the optimum ∝ 1/σ², about (.6, .3, .07).
    np.testing.assert_allclose(w, [1 / 0.25, 1 / 0.49, 1 / 2.25] / np.sum([4, 1 / 0.49, 1 / 2.25]),
                               atol=0.05)  # fmt: skip


def test_simplex_weights_put_everything_on_an_exact_member_and_drop_a_useless_one():
    rng = np.random.default_rng(1)
    truth = rng.normal(3.5, 1.0, 500)
    preds = np.column_stack([truth + rng.normal(0, 1, 500), truth, rng.normal(3.5, 1.0, 500)])
    np.testing.assert_allclose(simplex_weights(preds, truth), [0, 1, 0], atol=1e-9)
    with pytest.raises(ValueError, match="preds must be"):
        simplex_weights(preds[:10], truth)


def low_rank(seed: int, n_users=120, n_items=90, n=5000, noise=0.3):
    rng = np.random.default_rng(seed)
    P, Q = rng.normal(0, 0.7, (n_users, 3)), rng.normal(0, 0.7, (n_items, 3))
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    r = 3.5 + (P @ Q.T)[u, i] + rng.normal(0, noise, n)
    return u, i, r, n_users, n_items


def test_blend_drops_a_useless_member_and_is_the_weighted_average():
    u, i, r, nu, ni = low_rank(2)
    good = BayesianMF(n_factors=3, n_samples=40, burn_in=10, seed=0)
    # Random factors (std 1), barely trained: predictions are mostly noise around the mean.
    useless = MatrixFactorization(n_factors=3, n_epochs=1, lr=1e-6, init_std=1.0, seed=0)
    sgd = MatrixFactorization(n_factors=3, n_epochs=60, lr=0.01, reg=0.05, biased=True, seed=0)
    model = BlendedEnsemble([useless, good, sgd], val_fraction=0.2, refit=False, seed=0)
    model.fit(u, i, r, nu, ni)
    assert useless not in model.members, model.all_weights_
    assert model.all_weights_[0] < 0.01
    # The blend on validation is never worse than its best member there.
    members = {k: v for k, v in model.val_rmse_.items() if k != "blend"}
    assert model.val_rmse_["blend"] <= min(members.values()) + 1e-12
    # Early stopping set the SGD member's epoch count to its best epoch.
    assert sgd.n_epochs == sgd.best_epoch_ + 1 <= 60
    # One factor model: predictions equal the weighted members' (float32 storage: 1e-4).
    mixed = sum(w * m.raw_predict(u, i) for w, m in zip(model.weights, model.members, strict=True))
    np.testing.assert_allclose(model.raw_predict(u, i), mixed, atol=1e-4)
    assert model.P.dtype == np.float32


def test_refit_sees_every_training_rating():
    u, i, r, nu, ni = low_rank(3)
    member = BayesianMF(n_factors=3, n_samples=10, burn_in=5, seed=0)
    BlendedEnsemble([member], val_fraction=0.2, refit=True, seed=0).fit(u, i, r, nu, ni)
    assert member._seen_indptr[-1] == len(r)
    member = BayesianMF(n_factors=3, n_samples=10, burn_in=5, seed=0)
    BlendedEnsemble([member], val_fraction=0.2, refit=False, seed=0).fit(u, i, r, nu, ni)
    assert member._seen_indptr[-1] == len(r) - round(0.2 * len(r))


@pytest.mark.parametrize("n", [80_000, 999_999, 1_000_000, 2_000_000, 20_000_000, 100_000_000])
def test_plan_keeps_the_work_and_the_model_size_bounded(n):
    p = plan(n)
    assert p["refit"] == (n < SMALL)
    assert p["val_fraction"] == (0.1 if n < SMALL else 0.02)
    sweeps = p["burn_in"] + p["n_samples"]
    assert 30 <= sweeps <= 220 and 10 <= p["sgd_epochs"] <= 100
    if n < SMALL:  # budgets in work: at most 1e9 sweeps·ratings, 1.6e9 epochs·ratings
        assert p["budget_s"] is None and (sweeps * n <= 1.0e9 * 1.0001 or sweeps == 30)
    else:  # budgets in measured time, linear in n; the caps bound the model's size
        assert p["budget_s"] == pytest.approx(BUDGET_SECONDS * n) and p["thin"] == 1
    kept = -(-p["n_samples"] // p["thin"])
    assert kept <= MAX_KEPT
    columns = 2 * 100 + sum(k * kept for k in p["bayes_factors"])
    # Each FM chain, like each Bayesian MF chain, keeps at most MAX_KEPT samples.
    assert -(-p["fm_samples"] // p["fm_thin"]) <= MAX_KEPT
    if n >= SMALL:  # an ML-25M-sized model: 221,588 rows of float32 factors, well under 2 GiB
        assert columns * (162_541 + 59_047) * 4 < 2**31 / 2


def test_default_model_is_seeded_and_beats_its_members_on_validation():
    u, i, r, nu, ni = low_rank(4, n=4000)
    a = DefaultModel(seed=1, n_threads=2).fit(u, i, r, nu, ni)
    b = DefaultModel(seed=1, n_threads=1).fit(u, i, r, nu, ni)
    np.testing.assert_array_equal(a.P, b.P)  # blocked SGD and Gibbs: any thread count, same bits
    assert a.plan_["refit"] and a.device_ == "cpu"
    members = [v for k, v in a.val_rmse_.items() if k != "blend"]
    assert a.val_rmse_["blend"] <= min(members)
    assert rmse(r, a.predict(u, i)) < 0.4  # fits through the noise (0.3) on its own data


def grouped(seed: int, n: int = 1500, n_users: int = 200, n_items: int = 300):
    """Ratings 3.5 ± 0.8 by the item's group (of 3) plus noise 0.5, about 5 per item, and the
    group as a one-hot item feature: the ids alone learn each item's bias from its few ratings,
    the feature pools them."""
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    group = np.arange(n_items) % 3
    r = 3.5 + np.array([-0.8, 0.0, 0.8])[group[i]] + rng.normal(0, 0.5, n)
    items = Features(np.arange(n_items + 1, dtype=np.int64), group.astype(np.int64),
                     ["group=0", "group=1", "group=2"])  # fmt: skip
    return u, i, r, n_users, n_items, items


def test_features_put_a_factorization_machine_in_the_bayesian_chains_place():
    u, i, r, nu, ni, items = grouped(6)
    ids_only = DefaultModel(seed=0, n_threads=1).members_for(len(r))
    featured = DefaultModel(seed=0, n_threads=1, item_features=items).members_for(len(r))
    sgd = [type(m) for m in ids_only if isinstance(m, MatrixFactorization)]
    assert [type(m) for m in ids_only] == sgd + [BayesianMF] * 2
    assert [type(m) for m in featured] == sgd + [FeatureFM]
    model = DefaultModel(seed=0, n_threads=1, item_features=items).fit(u, i, r, nu, ni)
    fm = [m for m in model.members if isinstance(m, FeatureFM)]
    assert len(fm) == 1, model.all_weights_  # kept: its weight is at least MIN_WEIGHT
    assert fm[0].groups_ == ["user", "implicit N(u)", "item", "item features", "raters R(i)"]
    sgd_rmse = [v for k, v in model.val_rmse_.items() if k.startswith("MatrixFactorization")]
    assert model.val_rmse_["FeatureFM k=10"] < min(sgd_rmse) - 0.02  # the features pay
    # Still one factor model: the blend's predictions are its members' weighted average.
    mixed = sum(w * m.raw_predict(u, i) for w, m in zip(model.weights, model.members, strict=True))
    np.testing.assert_allclose(model.raw_predict(u, i), mixed, atol=1e-4)


def test_from_small_on_features_add_a_light_fm_beside_the_ids_only_members():
    """From SMALL (= FM_MAX_RATINGS) training ratings on, features add an FM without implicit
    feedback or date block to the ids-only members, chains first; dates alone add nothing."""
    *_, items = grouped(6)
    n = FM_MAX_RATINGS
    assert n == SMALL and plan(n - 1)["fm_dates"] and not plan(n)["fm_dates"]
    one = np.zeros(1, dtype=np.int64)
    dates = (one, one, Features(np.arange(2, dtype=np.int64), one, ["month=0"]))  # one dated pair
    big = DefaultModel(seed=0, n_threads=1, item_features=items).members_for(n, dates)
    ids_only = DefaultModel(seed=0, n_threads=1).members_for(n)
    assert [type(m) for m in ids_only] == [BayesianMF, MatrixFactorization, MatrixFactorization]
    assert [type(m) for m in big] == [BayesianMF, FeatureFM, *[type(m) for m in ids_only[1:]]]
    fm = big[1]
    assert not (fm.implicit or fm.item_implicit) and fm.rating_dates is None
    dated_only = DefaultModel(seed=0, n_threads=1).members_for(n, dates)
    assert [type(m) for m in dated_only] == [type(m) for m in ids_only]
    below = DefaultModel(seed=0, n_threads=1, item_features=items).members_for(n - 1, dates)
    (fm_below,) = [m for m in below if isinstance(m, FeatureFM)]
    assert fm_below.implicit and fm_below.rating_dates is not None
    featured = DefaultModel(seed=0, n_threads=1, item_features=items)
    assert featured.leaves_out_fm(n, True) and not featured.leaves_out_fm(n, False)
    assert not featured.leaves_out_fm(n - 1, True)
    assert not DefaultModel(seed=0, n_threads=1, dates=False).leaves_out_fm(n, True)


class _Sample:
    """A stand-in member whose validation predictions are ``truth + noise[step]``."""

    n_factors = 1
    step = 0

    def __init__(self, truth, noise):
        self.truth, self.noise = truth, noise

    def predict(self, users, items):
        return self.truth + self.noise[self.step]


def test_budget_stops_a_member_that_gains_nothing_and_one_out_of_time():
    rng = np.random.default_rng(0)
    n_val = 2000
    truth = rng.normal(3.5, 1.0, n_val)
    val = (np.arange(n_val), np.arange(n_val), truth)
    budget = Budget(val, 1_000_000, 1e6, [1.0, 1.0, 1.0])
    improving = _Sample(truth, [rng.normal(0, 1.0 / (s + 1), n_val) for s in range(40)])
    for s in range(40):  # its error halves, then thirds, ...: the blend gains fast enough
        improving.step = s
        assert not budget.step(0, s, improving), s
    # A second member no better than the first and not improving: its blend never gains.
    flat = _Sample(truth, [rng.normal(0, 2.0, n_val)] * 40)
    stopped = []
    for s in range(40):
        flat.step = s
        if budget.step(1, s, flat):
            stopped.append(s)
            break
    assert stopped == [GAIN_WINDOW]  # judged once it has GAIN_WINDOW steps behind it
    # It gained nothing: the next member of its kind is not trained (stops at once), and the
    # budget's log says why each ended.
    improving.step = 0
    assert budget.step(2, 0, improving)
    budget.finish()
    assert [row[4] for row in budget.log_] == ["done", "gain", "skip"]
    assert [row[1] for row in budget.log_] == [40, GAIN_WINDOW + 1, 0]
    out_of_time = Budget(val, 1_000_000, 0.0, [1.0])
    improving.step = 0
    assert out_of_time.step(0, 0, improving)
    assert out_of_time.log_[0][4] == "time"


def test_large_data_path_on_a_small_generated_copy(tmp_path, monkeypatch):
    """The path from SMALL on (budgeted members, the light FM), run on 60k generated ratings
    with genres and user attributes by lowering SMALL: every member is judged by the budget,
    the blend is no worse than its best member on validation, and the saved model recommends,
    finds similar items and folds in a new user."""
    from benchmarks.synthetic import generate
    from mfrec import job
    from mfrec.data import read_ratings
    from mfrec.data.features import read_features

    monkeypatch.setattr(job, "SMALL", 20_000)
    monkeypatch.setattr(job, "FM_MAX_RATINGS", 20_000)
    folder = generate("ml-25m", 60_000, tmp_path / "syn", feature_share=0.5)
    table = read_ratings(folder / "ratings.csv")
    users = read_features(folder / "users.csv", table.user_ids, what="user")
    items = read_features(folder / "movies.csv", table.item_ids, what="item")
    model = DefaultModel(seed=0, n_threads=1, user_features=users, item_features=items)
    model.fit(table.users, table.items, table.ratings, table.n_users, table.n_items,
              timestamps=table.timestamps)  # fmt: skip
    assert model.plan_["budget_s"] == pytest.approx(BUDGET_SECONDS * len(table))
    assert not model.plan_["refit"] and not model.dated  # no date block from SMALL on
    labels = [row[0] for row in model.budget_.log_]
    assert labels == ["BayesianMF k=10", "FeatureFM k=10", "MatrixFactorization k=100 reg=0.05",
                      "MatrixFactorization k=100 reg=0.1"]  # fmt: skip
    ends = [row[4] for row in model.budget_.log_]
    assert all(end in ("done", "gain", "time", "skip") for end in ends), ends
    assert ends[0] != "skip" and all(row[1] >= 1 for row in model.budget_.log_ if row[4] != "skip")
    members = [v for k, v in model.val_rmse_.items() if k != "blend"]
    assert model.val_rmse_["blend"] <= min(members) + 1e-12
    fm = [m for m in model.members if isinstance(m, FeatureFM)]
    assert fm and fm[0].groups_ == ["user", "user features", "item", "item features"]
    path = save_model(tmp_path / "m.npz", model, table.user_ids, table.item_ids)
    loaded, user_ids, item_ids, _ = load_model(path)
    np.testing.assert_array_equal(loaded.predict(table.users[:50], table.items[:50]),
                                  model.predict(table.users[:50], table.items[:50]))  # fmt: skip
    top, scores = loaded._recommend_indices(np.array([0, 3]), 5)
    assert top.shape == (2, 5) and np.all(np.isfinite(scores))
    near, cosines = loaded.similar_items(item_ids[:2], 4)
    assert near.shape == (2, 4) and np.all(np.abs(cosines) <= 1 + 1e-6)
    fold, _ = loaded.recommend_new_user(item_ids[:5], [5.0, 4.0, 1.0, 3.5, 2.0], 5)
    assert len(fold) == 5 and not set(fold.tolist()) & set(item_ids[:5].tolist())


def test_default_with_features_saves_and_loads(tmp_path):
    u, i, r, nu, ni, items = grouped(7)
    model = DefaultModel(seed=0, n_threads=1, item_features=items).fit(u, i, r, nu, ni)
    assert any(isinstance(m, FeatureFM) for m in model.members)
    path = save_model(tmp_path / "m.npz", model, np.arange(nu), np.arange(ni))
    loaded, user_ids, item_ids, _ = load_model(path)
    assert user_ids.tolist() == list(range(nu)) and item_ids.tolist() == list(range(ni))
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))
    top = np.array([0, 5], dtype=np.int64)
    for a, b in zip(loaded._recommend_indices(top, 5), model._recommend_indices(top, 5),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """About 3 ratings per item of 200, by 60 users, whose stars follow the item file's genre."""
    monkeypatch.setenv("MFREC_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(2)
    rows = [(u, i) for u in range(60) for i in range(200) if rng.random() < 0.05]
    stars = [int(np.clip(np.rint(3 + 1.2 * (i % 3 - 1) + rng.normal(0, 0.5)), 1, 5))
             for _, i in rows]  # fmt: skip
    ratings = tmp_path / "r.csv"
    ratings.write_text(
        "".join(f"{u + 1},{i + 101},{s}\n" for (u, i), s in zip(rows, stars, strict=True))
    )
    users = tmp_path / "users.csv"
    users.write_text("id,group\n" + "".join(f"{u + 1},g{u % 3}\n" for u in range(60)))
    items = tmp_path / "items.csv"
    items.write_text("id,genre\n" + "".join(f"{i + 101},g{i % 3}\n" for i in range(200)))
    return ratings, users, items


def test_cli_default_blends_features_and_features_none_is_the_ids_only_one(capsys, files, tmp_path):
    r, uf, itf = files
    feats = ("--user-features", uf, "--item-features", itf)
    plain, _ = run_json(capsys, "train", "--ratings", r)
    none, err = run_json(capsys, "train", "--ratings", r, *feats, "--features", "none")
    assert "user features" not in err
    for result in (none, plain):
        del result["seconds"]
    assert none == plain  # the same members, weights, test RMSE and top list
    assert "FeatureFM" not in {m["class"] for m in plain["members"]}
    model = tmp_path / "default.npz"
    featured, err = run_json(capsys, "train", "--ratings", r, *feats, "--save", model)
    assert "user features: 3 from" in err and "validate 3/3: FeatureFM k=10" in err
    assert "FeatureFM" in {m["class"] for m in featured["members"]}
    assert featured["rmse"] != plain["rmse"]
    # The saved blend is one factor model: recommend and similar read it as any other.
    code, out, err = run(capsys, "recommend", "--model", model, "--user", 1, "-k", 3)
    assert code == 0 and out.startswith("top 3 unseen movies for user 1"), err
    code, out, err = run(capsys, "similar", "--model", model, "--item", 101, "-k", 3)
    assert code == 0 and out.startswith("3 items most similar to item 101"), err


def test_device_choice():
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")


SIM_SCRIPT = r"""
import sys
from mfrec.cli import main
code = main(["train", "--ratings", sys.argv[1], "--device", "cuda", "-k", "3"])
if code != 0:
    raise SystemExit(f"mfrec train exited {code}")
"""


def test_cli_runs_the_sgd_members_on_cuda_under_the_simulator(tmp_path):
    # NUMBA_ENABLE_CUDASIM must be set before numba is imported: hence a subprocess. Tiny data:
    # the simulator runs every GPU thread as a Python thread.
    rng = np.random.default_rng(5)
    u, i = rng.integers(1, 25, 300), rng.integers(1, 20, 300)
    pairs = np.unique(np.column_stack([u, i]), axis=0)
    r = rng.integers(1, 6, len(pairs))
    path = tmp_path / "tiny.tsv"
    path.write_text("".join(f"{a}\t{b}\t{c}\n" for (a, b), c in zip(pairs, r, strict=True)))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SIM_SCRIPT, str(path)], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CudaMatrixFactorization k=100 reg=0.05 (100 epochs max, on cuda)" in proc.stdout
    assert "test RMSE" in proc.stdout


def test_cuda_without_a_device_is_a_clear_error():
    from mfrec import devices

    if devices.numba_cuda():
        pytest.skip("a CUDA device is present: the error cannot happen here")
    with pytest.raises(ValueError, match="numba sees no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_progress_lines_carry_elapsed_time_and_eta(capsys, monkeypatch):
    from mfrec import progress

    monkeypatch.setenv("MFREC_PROGRESS_SECONDS", "0")  # a line at every step, not every 5 s
    bar = progress.eta_bar(20, enabled=False, desc="validate 1/2: X", unit="epoch")
    for _ in range(20):
        bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 19, lines  # the clock starts at the first step: no line for it
    assert lines[0].startswith("  validate 1/2: X: 2/20 epochs, ") and "ETA" in lines[0]
    assert lines[-1].endswith("ETA 0 s")
    silent = progress.eta_bar(20, enabled=False, desc="quiet", lines=False)
    silent.update(20)
    assert capsys.readouterr().err == ""


def test_cv_gives_the_default_its_features(capsys, files):
    r, uf, itf = files
    result, err = run_json(capsys, "cv", "--ratings", r, "--item-features", itf, "--folds", 2)
    assert result["model"] == "default" and len(result["folds"]) == 2
    assert "item features: 3 from" in err
    none, _ = run_json(capsys, "cv", "--ratings", r, "--item-features", itf, "--folds", 2,
                       "--features", "none")  # fmt: skip
    assert none["mean"]["rmse"] != result["mean"]["rmse"]  # the folds' models used them


def dated(seed: int, n_users: int = 120, n_items: int = 80, n: int = 3000):
    """Distinct (user, item) pairs rated over 8 months whose stars move ±0.8 with the month,
    plus noise 0.4; returns (u, i, r, n_users, n_items, timestamps)."""
    rng = np.random.default_rng(seed)
    key = np.unique(rng.integers(0, n_users * n_items, n))
    u, i = key // n_items, key % n_items
    ts = rng.integers(875_000_000, 875_000_000 + 240 * 86_400, key.shape[0])
    month = ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    r = 3.5 + 0.8 * np.sin(month - month.min()) + rng.normal(0, 0.4, key.shape[0])
    return u, i, r, n_users, n_items, ts


@pytest.fixture(scope="module")
def dated_fit():
    u, i, r, nu, ni, ts = dated(8)
    return DefaultModel(seed=0, n_threads=1).fit(u, i, r, nu, ni, timestamps=ts), (u, i, r, ts)


def test_dates_add_the_fm_s_date_part_to_the_stacked_factors(dated_fit):
    model, (u, i, r, ts) = dated_fit
    fm = [m for m in model.members if isinstance(m, FeatureFM)]
    assert model.dated and len(fm) == 1, model.all_weights_
    assert fm[0].groups_[-1] == "rating features" and not fm[0].factor_form
    assert model.w_date_.shape == (model.date_span_[1] - model.date_span_[0] + 1,)
    # The blend's prediction is its members' weighted average, the FM's at each rating's date.
    fm[0]._query = fm[0].dates_of(u, i)
    mixed = sum(w * m.raw_predict(u, i) for w, m in zip(model.weights, model.members,
                                                        strict=True))  # fmt: skip
    fm[0]._query = None
    with model._dated(ts):
        np.testing.assert_allclose(model.raw_predict(u, i), mixed, atol=1e-4)
    dated_rmse, latest_rmse = rmse(r, model.predict(u, i, ts)), rmse(r, model.predict(u, i))
    assert dated_rmse < 0.45 < latest_rmse, (dated_rmse, latest_rmse)  # the month pays
    # Without timestamps (and for recommend) every pair is dated as the latest period.
    last = np.full(len(u), ts.max())
    np.testing.assert_array_equal(model.predict(u, i), model.predict(u, i, last))
    np.testing.assert_allclose(
        model.score_all(3), model.raw_predict(np.full(80, 3), np.arange(80)), atol=1e-4
    )
    # A date outside the training span counts as its nearest end.
    early = np.full(len(u), ts.min() - 400 * 86_400)
    np.testing.assert_array_equal(model.predict(u, i, early),
                                  model.predict(u, i, np.full(len(u), ts.min())))  # fmt: skip
    with pytest.raises(ValueError, match="one per pair"):
        model.predict(u, i, ts[:5])


def test_a_dated_default_saves_its_date_part_and_loads_the_same(dated_fit, tmp_path):
    model, (u, i, _, ts) = dated_fit
    path = save_model(tmp_path / "m.npz", model, np.arange(120), np.arange(80))
    loaded, *_ = load_model(path)
    assert isinstance(loaded, DefaultModel) and loaded.dated
    np.testing.assert_array_equal(loaded.predict(u, i, ts), model.predict(u, i, ts))
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))
    top = np.array([0, 7], dtype=np.int64)
    for a, b in zip(loaded._recommend_indices(top, 5), model._recommend_indices(top, 5),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    rated = ([1, 2, 3], [5.0, 4.0, 1.0])
    for a, b in zip(loaded.recommend_new_user(*rated, 4), model.recommend_new_user(*rated, 4),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_dates_off_or_absent_give_the_ids_only_default():
    u, i, r, nu, ni, ts = dated(9, n=1500)
    plain = DefaultModel(seed=0, n_threads=1).fit(u, i, r, nu, ni)
    off = DefaultModel(seed=0, n_threads=1, dates=False).fit(u, i, r, nu, ni, timestamps=ts)
    assert not plain.dated and not off.dated
    assert [type(m) for m in off.members] == [type(m) for m in plain.members]
    np.testing.assert_array_equal(off.P, plain.P)
    with pytest.raises(ValueError, match="one per rating"):
        DefaultModel(seed=0, n_threads=1).fit(u, i, r, nu, ni, timestamps=ts[:10])


def test_cli_default_dates_test_ratings_and_dates_none_is_the_plain_one(capsys, tmp_path):
    u, i, r, *_, ts = dated(10, n=2000)
    path = tmp_path / "dated.tsv"
    path.write_text("".join(f"{a + 1}\t{b + 1}\t{int(np.clip(np.rint(c), 1, 5))}\t{t}\n"
                            for a, b, c, t in zip(u, i, r, ts, strict=True)))  # fmt: skip
    model = tmp_path / "dated.npz"
    with_dates, err = run_json(capsys, "train", "--ratings", path, "--save", model)
    assert "rating dates: one feature per month" in err
    assert "FeatureFM" in {m["class"] for m in with_dates["members"]}
    assert with_dates["dates"] == "month"
    results = []
    for flags in (("--dates", "none"), ("--features", "none")):
        result, err = run_json(capsys, "train", "--ratings", path, *flags)
        assert "rating dates" not in err
        del result["seconds"]
        results.append(result)
    assert results[0] == results[1]  # no features here: both are the ids-only default
    assert "FeatureFM" not in {m["class"] for m in results[0]["members"]}
    assert "dates" not in results[0]
    assert with_dates["rmse"] < results[0]["rmse"]  # the test ratings scored at their dates
    code, out, err = run(capsys, "recommend", "--model", model, "--user", 1, "-k", 3)
    assert code == 0 and out.startswith("top 3 unseen movies for user 1"), err
    cv, _ = run_json(capsys, "cv", "--ratings", path, "--folds", 2)
    cv_none, _ = run_json(capsys, "cv", "--ratings", path, "--folds", 2, "--dates", "none")
    assert cv["mean"]["rmse"] < cv_none["mean"]["rmse"]


def raw(model: FeatureFM, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The FM's unclipped prediction, each pair at its own date."""
    model._query = model.dates_of(u, i)
    try:
        return model.raw_predict(u, i)
    finally:
        model._query = None


def test_fm_chains_average_to_the_mean_of_the_chains_on_any_thread_count():
    u, i, r, nu, ni, ts = dated(9)
    period = date_periods(ts, "month")
    dates = date_features(period, int(period.min()), int(period.max()), "month")
    kw: dict[str, Any] = dict(rating_dates=(u, i, dates), item_implicit=True, n_factors=3,
                              n_samples=12, burn_in=4, thin=2, dtype="float32")  # fmt: skip
    steps = []
    multi = FeatureFM(n_chains=3, n_threads=2, seed=5, **kw)
    multi.fit(u, i, r, nu, ni, callback=lambda s, m: steps.append(s))
    assert steps == list(range(4 + 12))  # one step per round of the three chains' sweeps
    alone = [FeatureFM(seed=5 + c, **kw).fit(u, i, r, nu, ni) for c in range(3)]
    assert multi.P.shape == (nu, 3 * alone[0].P.shape[1]) and multi.P.dtype == np.float32
    assert multi.V_rating_.shape[1] == multi.P.shape[1]  # each chain's date columns by its P
    np.testing.assert_allclose(raw(multi, u, i), np.mean([raw(m, u, i) for m in alone], 0),
                               atol=1e-4)  # fmt: skip
    one_thread = FeatureFM(n_chains=3, n_threads=1, seed=5, **kw).fit(u, i, r, nu, ni)
    np.testing.assert_array_equal(raw(one_thread, u, i), raw(multi, u, i))
    # Three independent chains fit their own data closer than any one of them.
    assert rmse(r, raw(multi, u, i)) < min(rmse(r, raw(m, u, i)) for m in alone)


def test_the_default_fm_runs_the_planned_chains():
    u, i, r, nu, ni, ts = dated(10)
    model = DefaultModel(seed=3, n_threads=2).fit(u, i, r, nu, ni, timestamps=ts)
    p = model.plan_
    fm = [m for m in model.members if isinstance(m, FeatureFM)]
    assert len(fm) == 1 and fm[0].n_chains == p["fm_chains"] > 1, model.all_weights_
    kept = -(-p["fm_samples"] // p["fm_thin"])
    assert fm[0].P.shape[1] == FM_FACTORS * p["fm_chains"] * kept
    again = DefaultModel(seed=3, n_threads=1).fit(u, i, r, nu, ni, timestamps=ts)
    np.testing.assert_array_equal(model.predict(u, i, ts), again.predict(u, i, ts))


def test_min_gain_se_keeps_the_best_member_alone_unless_the_blend_earns_more():
    u, i, r, nu, ni = low_rank(5)

    def members():
        return [BayesianMF(n_factors=3, n_samples=30, burn_in=10, seed=0),
                MatrixFactorization(n_factors=3, n_epochs=40, lr=0.01, reg=0.05, biased=True,
                                    seed=0)]  # fmt: skip

    kw: dict[str, Any] = dict(val_fraction=0.2, refit=False, seed=0)
    free = BlendedEnsemble(members(), **kw).fit(u, i, r, nu, ni)
    gain, se = free.val_gain_
    assert gain >= 0 and se > 0  # the least-squares blend is never worse on its own split
    strict = BlendedEnsemble(members(), min_gain_se=gain / se * 1.01, **kw).fit(u, i, r, nu, ni)
    best = min((k for k in free.val_rmse_ if k != "blend"), key=lambda k: free.val_rmse_[k])
    assert [member_label(m) for m in strict.members] == [best] and strict.weights == [1.0]
    assert strict.val_rmse_["blend"] <= strict.val_rmse_[best] + 1e-12  # (clipped to the scale)
    loose = BlendedEnsemble(members(), min_gain_se=gain / se * 0.99, **kw).fit(u, i, r, nu, ni)
    np.testing.assert_array_equal(loose.all_weights_, free.all_weights_)
