"""Features, canonical splits and the validation carver on the command line (issue 19)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import numpy as np
import pytest
from cli_run import half_pairs, run, run_json

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
    assert code == 2 and "only default, svdpp, embedding-mlp use features" in err


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
    "two-towers, concat": [("two-towers", None, "torch"), ("concat", None, "torch")],
    "embedding-mlp": [("embedding-mlp", None, "torch")],
    "--binary plain/biased (numba)": [("plain", 4.0, "numba"), ("biased", 4.0, "numba")],
    "--binary plain/biased (torch)": [("plain", 4.0, "torch"), ("biased", 4.0, "torch")],
    "--binary book": [("book", 4.0, "torch")],
}
VALUES = {"factors": 3, "epochs": 2, "lr": 0.02, "reg": 0.07, "biased": True, "init_std": 0.05,
          "dtype": "float32", "lr_decay": 0.9, "kernel": "fast", "threads": 2, "mode": "exact",
          "batch_size": 64, "compile": True, "device": "cpu", "val_fraction": 0.2,
          "patience": 3}  # fmt: skip


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
    _, err = run_json(capsys, "cv", "--ratings", r, "--model", "svdpp", "--folds", 2)
    assert "svdpp in cv: implicit feedback only" in err
