"""Features, canonical splits and the validation carver on the command line (issue 19)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import numpy as np
import pytest
from cli_run import half_pairs, run, run_json

import mfrec
from mfrec.data import canonical_split, load_ml100k
from mfrec.data.dataset import align, reindex
from mfrec.data.splits import carve_validation, train_test_split, unseen_as_unknown
from mfrec.factory import MODEL_FLAGS, SCHEDULE_FLAGS, make_model, resolve_plan

needs_ml100k = pytest.mark.skipif(not os.environ.get("MFREC_DATA"), reason="needs MFREC_DATA")


pytestmark = pytest.mark.usefixtures("cache_in_tmp")


@pytest.fixture
def files(tmp_path):
    """Ratings of 30 users × 20 items, a user file with one id not in them, an item file."""
    rng = np.random.default_rng(1)
    rows = half_pairs(rng, 30, 20)
    r = tmp_path / "r.csv"
    r.write_text("".join(f"{u + 1},{i + 101},{rng.integers(1, 6)}\n" for u, i in rows))
    uf = tmp_path / "users.csv"
    uf.write_text("id,group\n" + "".join(f"{u + 1},g{u % 3}\n" for u in range(31)))
    itf = tmp_path / "items.csv"
    itf.write_text("id,genre\n" + "".join(f"{i + 101},a|b{i % 2}\n" for i in range(20)))
    return r, uf, itf


def test_user_and_item_feature_files_reach_svdpp(capsys, files):
    r, uf, itf = files
    feats = ("--user-features", uf, "--item-features", itf)
    result, err = run_json(capsys, "train", "--ratings", r, "--model", "svdpp", "--epochs", 1,
                           "--factors", 2, *feats)  # fmt: skip
    assert result["class"] == "SVDpp"
    assert "user features: 3 from" in err and "item features: 3 from" in err
    assert "1 rows with ids absent from the ratings ignored" in err  # the file's .note


def test_features_none_and_models_without_features(capsys, files):
    r, uf, itf = files
    _, err = run_json(capsys, "train", "--ratings", r, "--model", "svdpp", "--epochs", 1,
                      "--user-features", uf, "--features", "none")  # fmt: skip
    assert "user features" not in err
    code, _, err = run(capsys, "train", "--ratings", r, "--model", "plain", "--user-features", uf)
    assert code == 2 and "only default, svdpp, bfm, embedding-mlp use features" in err


def test_embedding_mlp_needs_features(capsys, files):
    r, uf, itf = files
    code, _, err = run(capsys, "train", "--ratings", r, "--model", "embedding-mlp")
    assert code == 2 and "needs user and item features" in err
    feats = ("--user-features", uf, "--item-features", itf)
    result, _ = run_json(capsys, "train", "--ratings", r, "--model", "embedding-mlp", "--epochs",
                         1, "--factors", 2, *feats)  # fmt: skip
    assert result["class"] == "EmbeddingMLP" and result["params"]["n_factors"] == 2


def test_svdpp_val_fraction_early_stops(capsys, files):
    r, _, _ = files
    _, err = run_json(capsys, "train", "--ratings", r, "--model", "svdpp", "--epochs", 3,
                      "--factors", 2, "--val-fraction", 0.2, "--patience", 1)  # fmt: skip
    assert "training ratings held out" in err and "validation RMSE best at epoch" in err


def test_torch_svdpp(capsys, files):
    r, uf, itf = files
    result, _ = run_json(capsys, "train", "--ratings", r, "--model", "svdpp", "--backend",
                         "torch", "--epochs", 1, "--factors", 2)  # fmt: skip
    assert result["class"] == "TorchSVDpp" and result["backend"] == "torch"


def test_split_is_refused_off_ml100k_or_with_other_split_flags(capsys, files):
    r, _, _ = files
    code, _, err = run(capsys, "train", "--ratings", r, "--split", "u1")
    assert code == 2 and "--split u1 is a split of ml-100k's u.data" in err
    code, _, err = run(capsys, "train", "--split", "u2", "--test-size", "0.1")
    assert code == 2 and "--test-size" in err
    code, _, err = run(capsys, "train", "--dataset", "ml-1m", "--split", "u1", "--no-download")
    assert code == 2 and "only ml-100k ships canonical splits" in err
    code, _, err = run(capsys, "cv", "--ratings", r, "--splits", "canonical")
    assert code == 2 and "only ml-100k ships canonical splits" in err


@needs_ml100k
def test_train_split_u1_is_the_release_cut(capsys):
    result, _ = run_json(capsys, "train", "--split", "u1", "--model", "plain", "--epochs", 1,
                         "--no-download")  # fmt: skip
    data = load_ml100k(os.path.join(os.environ["MFREC_DATA"], "ml-100k"))
    tr, te = canonical_split(data, "u1")
    assert (result["n_train"], result["n_test"]) == (len(tr), len(te)) == (80_000, 20_000)


@needs_ml100k
def test_cv_canonical_runs_u1_to_u5(capsys):
    result, err = run_json(capsys, "cv", "--splits", "canonical", "--model", "plain",
                           "--no-download")  # fmt: skip
    assert result["splits"] == "canonical" and len(result["folds"]) == 5
    assert all(f"u{n}: RMSE" in err for n in range(1, 6))
    assert [f["n_test"] for f in result["folds"]] == [20_000] * 5
    mean = np.mean([f["rmse"] for f in result["folds"]])
    assert result["mean"]["rmse"] == pytest.approx(mean, rel=1e-12)


@needs_ml100k
def test_release_features_are_found_by_dataset(capsys):
    _, err = run_json(capsys, "train", "--model", "svdpp", "--epochs", 1, "--factors", 2,
                      "--no-download")  # fmt: skip
    assert "user features: " in err and "u.user" in err and "u.item" in err


@needs_ml100k
def test_val_fraction_counts_match_a_direct_carve(capsys):
    _, err = run_json(capsys, "train", "--model", "biased", "--epochs", 1, "--factors", 2,
                      "--val-fraction", 0.1, "--no-download")  # fmt: skip
    data = load_ml100k(os.path.join(os.environ["MFREC_DATA"], "ml-100k"))
    tr, te = train_test_split(len(data), 0.2, 0)
    train = reindex(data.subset(tr))
    test, _ = align(train, data.subset(te))
    carved = carve_validation(train.users, train.items, train.ratings, 0.1, 1)
    fit = train.subset(carved.fit_rows)
    n_test_unknown = unseen_as_unknown(test.users, test.items, fit.users, fit.items)[2]
    assert carved.n_unknown > 0 and n_test_unknown > 0
    assert f"8,000 training ratings held out, 72,000 left to fit; {carved.n_unknown:,} of" in err
    assert f"{n_test_unknown:,} test ratings have a user or item not in the fit part" in err


# Every cell of docs/cli.md's table of the extra models' flags: "yes" sets the constructor
# argument on the model built, "refused" is an error naming the flag.
DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
COLUMNS = {
    "svdpp (numba)": [("svdpp", None, "numba")],
    "svdpp (torch)": [("svdpp", None, "torch")],
    "bfm": [("bfm", None, "numba")],
    "two-towers, concat": [("two-towers", None, "torch"), ("concat", None, "torch")],
    "embedding-mlp": [("embedding-mlp", None, "torch")],
    "--binary plain/biased (numba)": [("plain", 4.0, "numba"), ("biased", 4.0, "numba")],
    "--binary plain/biased (torch)": [("plain", 4.0, "torch"), ("biased", 4.0, "torch")],
    "--binary book": [("book", 4.0, "torch")],
}
VALUES = {"factors": 3, "epochs": 2, "lr": 0.02, "reg": 0.07, "biased": True, "init_std": 0.05,
          "dtype": "float32", "lr_decay": 0.9, "kernel": "fast", "threads": 2, "mode": "exact",
          "batch_size": 64, "compile": True, "device": "cpu", "val_fraction": 0.2,
          "patience": 3, "samples": 7, "burn_in": 3}  # fmt: skip


def doc_cells() -> list[tuple[str, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- flag-table: extra models -->")[1].split("<!-- end flag-table -->")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.strip().splitlines()]
    header, body = rows[0], rows[2:]
    assert header[1:] == list(COLUMNS)
    return [
        (row[0].strip("`"), col, cell)
        for row in body
        for col, cell in zip(header[1:], row[1:], strict=True)
    ]


@pytest.mark.parametrize(("flag_name", "column", "cell"), doc_cells())
def test_documented_flag_table_of_the_extra_models(flag_name, column, cell):
    dest = flag_name[2:].replace("-", "_")
    assert dest in VALUES and cell in ("yes", "refused")
    stub = np.zeros((1, 1), dtype=np.int64)
    for model, binary, backend in COLUMNS[column]:
        args = argparse.Namespace(model=model, backend=backend, seed=0, binary=binary,
                                  distributed=False, plot=None, save=None, checkpoint=None,
                                  resume=False, features_=(stub, stub))  # fmt: skip
        for d in (*MODEL_FLAGS, *SCHEDULE_FLAGS):
            setattr(args, d, False if d == "compile" else None)
        setattr(args, dest, VALUES[dest])
        if cell == "refused":
            with pytest.raises(ValueError, match=re.escape(flag_name)):
                resolve_plan(args)
            continue
        resolve_plan(args)
        built = make_model(args)
        if dest in SCHEDULE_FLAGS and not hasattr(built, dest):
            continue  # the CLI's own carver (see test_svdpp_val_fraction_early_stops)
        param = MODEL_FLAGS.get(dest, dest)
        names = param if isinstance(param, tuple) else (param,)
        value = next(getattr(built, n) for n in names if hasattr(built, n))
        if dest == "dtype":
            value = np.dtype(value).name
        assert str(value) == str(VALUES[dest]), (model, backend, dest, value)


def test_cv_embedding_mlp_reads_features_and_svdpp_says_what_it_uses(capsys, files):
    r, uf, itf = files
    feats = ("--user-features", uf, "--item-features", itf)
    result, err = run_json(capsys, "cv", "--ratings", r, "--model", "embedding-mlp", "--folds",
                           2, *feats)  # fmt: skip
    assert len(result["folds"]) == 2 and "user features: 3 from" in err
    assert all(np.isfinite(f["rmse"]) for f in result["folds"])
    _, err = run_json(capsys, "cv", "--ratings", r, "--model", "svdpp", "--folds", 2, *feats)
    assert "user features: 3 from" in err and "item features: 3 from" in err


# --- a generated ml-100k-like release: feature files beside --train/--test, cold items ---

GENRE_EFFECT = {1: 1.2, 5: 0.0, 8: -1.2}
"""Genre flag (u.item column: Action, Comedy, Drama) → its effect on every rating."""
N_USERS, N_WARM, N_COLD_ITEMS = 60, 35, 5


def write_release(folder: Path, seed: int = 0, density: float = 0.5) -> dict:
    """A folder named ``ml-100k`` holding u.user, u.item (the release's layouts), u.data and
    u1.base/u1.test: rating = 3 + the item's genre effect + a user bias + noise, so an item's
    genre predicts its ratings. Items 36..40 are rated in u1.test only (cold items); each user
    rates a ``density`` share of the others."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    n_items = N_WARM + N_COLD_ITEMS
    genre = [list(GENRE_EFFECT)[i % 3] for i in range(n_items)]
    bias = rng.normal(0, 0.3, N_USERS)

    def rating(u: int, i: int) -> int:
        return int(np.clip(np.rint(3 + GENRE_EFFECT[genre[i]] + bias[u] + rng.normal(0, 0.3)),
                           1, 5))  # fmt: skip

    def line(u: int, i: int) -> str:
        return (
            f"{u + 1}\t{i + 1}\t{rating(u, i)}\t{880_000_000 + int(rng.integers(0, 60_000_000))}\n"
        )

    warm = [line(u, i) for u in range(N_USERS) for i in range(N_WARM) if rng.random() < density]
    warm = [warm[j] for j in rng.permutation(len(warm))]
    cut = len(warm) * 4 // 5
    cold = [line(u, i) for u in range(N_USERS) for i in range(N_WARM, n_items)
            if rng.random() < 0.5]  # fmt: skip
    (folder / "u1.base").write_text("".join(warm[:cut]))
    (folder / "u1.test").write_text("".join(warm[cut:] + cold))
    (folder / "u.data").write_text("".join(warm + cold))
    (folder / "u.user").write_text("".join(
        f"{u + 1}|{20 + u % 40}|{'MF'[u % 2]}|job{u % 4}|{u % 10}0000\n" for u in range(N_USERS)
    ))  # fmt: skip
    flags = ["|".join("1" if g == genre[i] else "0" for g in range(19)) for i in range(n_items)]
    (folder / "u.item").write_text("".join(
        f"{i + 1}|Movie {i + 1} (1995)|01-Jan-{1990 + i % 8}||http://x|{flags[i]}\n"
        for i in range(n_items)
    ))  # fmt: skip
    return {"base": folder / "u1.base", "test": folder / "u1.test", "n_cold": len(cold)}


def test_train_test_files_beside_a_release_find_its_feature_files(capsys, tmp_path):
    rel = write_release(tmp_path / "ml-100k")
    data = ("--train", rel["base"], "--test", rel["test"])
    svdpp = ("--model", "svdpp", "--epochs", 1, "--factors", 2)
    result, err = run_json(capsys, "train", *data, *svdpp)
    assert f"feature files of ml-100k found beside u1.base in {tmp_path / 'ml-100k'}" in err
    assert re.search(rf"user features: \d+ from {re.escape(str(tmp_path))}.ml-100k.u\.user", err)
    assert re.search(rf"item features: \d+ from {re.escape(str(tmp_path))}.ml-100k.u\.item", err)
    assert result["n_cold"] == rel["n_cold"] and result["n_unknown"] == 0
    _, err = run_json(capsys, "train", *data, *svdpp, "--features", "none")
    assert "found beside" not in err and "features:" not in err
    mine = tmp_path / "items.csv"
    mine.write_text("id,tag\n" + "".join(f"{i},t{i % 2}\n" for i in range(1, 41)))
    _, err = run_json(capsys, "train", *data, *svdpp, "--item-features", mine)
    assert f"item features: 2 from {mine}" in err and "u.user" in err  # one side overridden
    code, _, err = run(capsys, "train", *data, *svdpp, "--save", rel["base"].parent / "u.item")
    assert code == 2 and "u.item" in err and "is the ml-100k feature file" in err
    # the same folder under another name is still recognised by its files; a bad row is an
    # error naming the file, its line and the way out
    other = tmp_path / "mine"
    other.mkdir()
    for f in ("u1.base", "u1.test", "u.user", "u.item"):
        (other / f).write_bytes((rel["base"].parent / f).read_bytes())
    (other / "u.item").write_text((other / "u.item").read_text() + "41|broken\n")
    code, _, err = run(capsys, "train", "--train", other / "u1.base", "--test",
                       other / "u1.test", *svdpp)  # fmt: skip
    assert code == 2 and f"{other / 'u.item'}:41: expected 24 '|'-separated fields" in err
    assert "--features none ignores them" in err


def test_ratings_beside_a_movies_csv_use_it(capsys, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    rows = half_pairs(np.random.default_rng(2), 20, 10)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        + "".join(f"{u + 1},{i + 1},{1 + (u + i) % 5},{9e8 + u:.0f}\n" for u, i in rows)
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        + "".join(f"{i + 1},M{i} ({1990 + i}),A|B{i % 2}\n" for i in range(10))  # fmt: skip
    )
    _, err = run_json(capsys, "train", "--ratings", folder / "ratings.csv", "--model", "svdpp",
                      "--epochs", 1, "--factors", 2)  # fmt: skip
    assert "feature files of ml-latest-small found beside ratings.csv" in err
    assert "item features: " in err and "movies.csv" in err and "user features" not in err


def test_default_leaves_cold_items_to_the_fallback(capsys, tmp_path):
    """The default's FM reads R(i), which a cold item lacks (factory.cold_sides): a test item
    with features and no training ratings is an unknown id, scored μ + bᵤ."""
    rel = write_release(tmp_path / "ml-100k", density=0.15)
    result, err = run_json(capsys, "train", "--train", rel["base"], "--test", rel["test"])
    assert (result["n_cold"], result["n_unknown"]) == (0, rel["n_cold"])
    assert "cold rows:" not in err


def test_cv_scores_cold_items_from_features_for_svdpp_only(capsys, tmp_path):
    rel = write_release(tmp_path / "ml-100k")
    # each item of u1.test only keeps one rating: in the fold that tests it, it is a cold row
    lines = rel["base"].read_text().splitlines(keepends=True)
    seen: set[str] = set()
    for line in rel["test"].read_text().splitlines(keepends=True):
        item = line.split("\t")[1]
        if int(item) > N_WARM and item not in seen:
            seen.add(item)
            lines.append(line)
    (rel["base"].parent / "u.data").write_text("".join(lines))
    ratings = ("--ratings", rel["base"].parent / "u.data", "--folds", 2)
    result, err = run_json(capsys, "cv", *ratings, "--model", "svdpp")
    assert "user features: " in err and "item features: " in err
    assert sum(f["n_cold"] for f in result["folds"]) == N_COLD_ITEMS
    assert sum(f["n_unknown"] for f in result["folds"]) == 0
    assert "of cold rows scored from their features" in err
    for model in ("default", "bfm"):  # their FM reads R(i): cold items are unknown ids
        result, err = run_json(capsys, "cv", *ratings, "--model", model)
        assert "user features: " in err and "item features: " in err, model
        assert sum(f["n_cold"] for f in result["folds"]) == 0, model
        assert sum(f["n_unknown"] for f in result["folds"]) == N_COLD_ITEMS, model
    none, _ = run_json(capsys, "cv", *ratings, "--model", "svdpp", "--features", "none")
    assert sum(f["n_cold"] for f in none["folds"]) == 0
    assert sum(f["n_unknown"] for f in none["folds"]) == N_COLD_ITEMS


def test_bfm_trains_on_features_implicit_feedback_and_dates(capsys, tmp_path):
    rel = write_release(tmp_path / "ml-100k")
    data = ("--train", rel["base"], "--test", rel["test"], "--model", "bfm")
    short = ("--samples", 8, "--burn-in", 2, "--factors", 3)
    result, err = run_json(capsys, "train", *data, *short)
    assert result["class"] == "DataFM" and result["dates"] == "month"
    assert result["params"]["n_samples"] == 8 and result["params"]["burn_in"] == 2
    assert result["params"]["n_factors"] == 3 and result["epochs_run"] == 10
    assert (result["n_cold"], result["n_unknown"]) == (0, rel["n_cold"])
    assert "sweep  10/10" in err and "u.user" in err
    code, _, err = run(capsys, "train", *data, *short, "--save", tmp_path / "m.npz")
    assert code == 2 and "--save with --model bfm needs --dates none" in err
    code, _, err = run(capsys, "train", *data, "--epochs", 3)
    assert code == 2 and "--epochs does not apply to --model bfm" in err
    saved = tmp_path / "bfm.npz"
    plain, _ = run_json(capsys, "train", *data, *short, "--dates", "none", "--save", saved)
    assert "dates" not in plain and plain["rmse"] != result["rmse"]
    assert mfrec.load(saved).predict([1], [36]).shape == (1,)  # a cold item: the fallback


def test_datafm_scores_each_pair_at_its_date():
    from mfrec.fm import DataFM

    rng = np.random.default_rng(0)
    n = 450
    u, i = np.divmod(rng.choice(30 * 20, n, replace=False), 20)  # distinct pairs, as in a file
    ts = 880_000_000 + rng.integers(0, 30_000_000, n)  # about a year: 12 months
    r = np.clip(np.rint(3 + 0.8 * (ts > 8.95e8) + rng.normal(0, 0.5, n)), 1, 5)
    m = DataFM(n_factors=2, n_samples=20, burn_in=5, seed=0)
    m.fit(u, i, r, 30, 20, timestamps=ts)
    assert m.dated and m.groups_[-1] == "rating features"
    early = m.predict(u[:50], i[:50], timestamps=np.full(50, 880_000_000))
    late = m.predict(u[:50], i[:50], timestamps=np.full(50, 909_000_000))
    assert np.mean(late - early) > 0.3  # the later months rate higher, by 0.8 in truth
    # no timestamps: a training pair is scored at its own date
    np.testing.assert_allclose(m.predict(u[:50], i[:50]), m.predict(u[:50], i[:50], ts[:50]))
    np.testing.assert_allclose(m._predict_indices(u[:50], i[:50], timestamps=ts[:50]),
                               m.predict(u[:50], i[:50], ts[:50]))  # fmt: skip
