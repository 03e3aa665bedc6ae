"""`mfrec train/cv --binary T`: the liked-or-not task on the command line (issue 17)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cli_run import low_rank, run, run_json

from mfrec.modelio import load_model

pytestmark = pytest.mark.usefixtures("cache_in_tmp")


@pytest.fixture
def ratings(tmp_path):
    """40 users × 30 items, ratings 1..5 of a low-rank truth, about half the pairs."""
    rows = low_rank(np.random.default_rng(0), 0.8)
    path = tmp_path / "r.csv"
    path.write_text(
        "".join(f"{u + 1},{i + 101},{np.clip(np.rint(x), 1, 5):g}\n" for u, i, x in rows)
    )
    return path


def test_train_binary_without_model_is_biased_logistic_mf(capsys, ratings):
    result, err = run_json(capsys, "train", "--ratings", ratings, "--binary", 4, "--epochs", 3,
                           "--factors", 3)  # fmt: skip
    assert result["class"] == "LogisticMF" and result["backend"] == "numba"
    assert "biased logistic MF: no --model given" in err and "liked = rating >= 4" in err
    b = result["binary"]
    assert b["threshold"] == 4.0
    for key in ("auc", "log_loss", "precision", "recall", "accuracy", "precision@10",
                "recall@10", "ndcg@10"):  # fmt: skip
        assert np.isfinite(b[key]), key
    assert 0.0 <= b["auc"] <= 1.0 and b["log_loss"] > 0
    assert all(0.0 <= item["p_liked"] <= 1.0 for item in result["top"])


def test_train_binary_prints_the_metrics_and_the_model_recommends_p_liked(capsys, ratings,
                                                                          tmp_path):  # fmt: skip
    path = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--ratings", ratings, "--binary", 4, "--model",
                         "plain", "--epochs", 2, "--factors", 3, "--save", path)  # fmt: skip
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("numba (LogisticMF): "))
    for word in ("AUC", "log loss", "precision", "recall", "accuracy", "NDCG@10"):
        assert word in line
    assert "(P(liked))" in out
    code, out, err = run(capsys, "recommend", "--model", path, "--user", 1, "-k", 3)
    assert code == 0 and "(P(liked))" in out
    model = load_model(path)[0]
    assert type(model).__name__ == "LogisticMF"
    code, out, err = run(capsys, "recommend", "--model", path, "--rate", "101=5")
    assert code == 2 and "--rate: a LogisticMF cannot fold in" in err and "log loss" in err


@pytest.mark.parametrize("name", ["als", "bayes", "default", "neural", "svdpp"])
def test_binary_is_refused_for_a_model_without_a_binary_form(capsys, ratings, name):
    code, out, err = run(capsys, "train", "--ratings", ratings, "--binary", 4, "--model", name)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"model {name!r} has no binary (liked-or-not) form" in err
    assert "these have one: plain, biased, book, two-towers, concat, embedding-mlp" in err


def test_binary_threshold_outside_the_scale_or_leaving_one_class_is_refused(capsys, ratings):
    code, _, err = run(capsys, "train", "--ratings", ratings, "--binary", 7, "--epochs", 1)
    assert code == 2 and "binary threshold 7.0 is outside the rating scale [1, 5]" in err
    code, _, err = run(capsys, "train", "--ratings", ratings, "--binary", 1, "--epochs", 1)
    assert code == 2 and "leaves one class in the training part" in err


def test_book_needs_binary_and_torch(capsys, ratings):
    code, _, err = run(capsys, "train", "--ratings", ratings, "--model", "book")
    assert code == 2 and "add --binary 4" in err
    result, err = run_json(capsys, "train", "--ratings", ratings, "--model", "book", "--binary",
                           4, "--epochs", 1)  # fmt: skip
    assert result["class"] == "TorchLogisticMF" and result["backend"] == "torch"


def test_two_towers_binary_saves_and_refuses_similar(capsys, ratings, tmp_path):
    path = tmp_path / "t.npz"
    result, _ = run_json(capsys, "train", "--ratings", ratings, "--model", "two-towers",
                         "--binary", 4, "--epochs", 1, "--factors", 4, "--save", path)  # fmt: skip
    assert result["class"] == "TwoTowerMF" and 0 <= result["binary"]["auc"] <= 1
    code, _, err = run(capsys, "similar", "--model", path, "--item", 101)
    assert code == 2 and "a TwoTowerMF cannot find similar items" in err
    code, out, _ = run(capsys, "recommend", "--model", path, "--user", 1, "-k", 2)
    assert code == 0 and "(P(liked))" in out


def test_cv_binary_reports_every_fold_and_the_mean(capsys, ratings):
    result, err = run_json(capsys, "cv", "--ratings", ratings, "--binary", 4, "--model", "plain",
                           "--folds", 2)  # fmt: skip
    assert result["binary"] == {"threshold": 4.0} and len(result["folds"]) == 2
    assert "fold 1: AUC" in err and "fold 2: AUC" in err
    mean = np.mean([f["auc"] for f in result["folds"]])
    assert result["mean"]["auc"] == pytest.approx(mean, rel=1e-12)  # the mean of the folds


@pytest.mark.skipif(not os.environ.get("MFREC_DATA"), reason="needs MFREC_DATA (ML-100k)")
def test_train_binary_on_ml100k_beats_chance(capsys):
    result, _ = run_json(capsys, "train", "--binary", 4, "--epochs", 2, "--factors", 4,
                         "--no-download")  # fmt: skip
    assert result["n_test"] == 20_000 and result["binary"]["auc"] > 0.7


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--backend", "both"), "--backend both does not go with --binary"),
        (("--plot", "c.png"), "--plot does not go with --binary"),
        (("--val-fraction", "0.1"), "--val-fraction with --binary"),
    ],
)
def test_binary_refuses_what_it_cannot_do(capsys, ratings, extra, message):
    code, out, err = run(capsys, "train", "--ratings", ratings, "--binary", 4, "--model",
                         "biased", *extra)  # fmt: skip
    assert code == 2 and message in err and "epoch" not in out
