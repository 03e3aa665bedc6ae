"""The library entry of ``--binary``: which models have a binary form, and the CV metrics."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.binary import binary_model, cross_validate_binary, evaluate_binary_fold
from mfrec.data import kfold
from mfrec.modelstate import supports_binary
from mfrec.reference.classification import auc
from mfrec.reference.logistic import LogisticMF
from mfrec.torch_impl.logistic import TorchLogisticMF
from mfrec.torch_impl.networks import ConcatMLP


def test_binary_forms_and_refusals():
    assert type(binary_model("biased")) is LogisticMF and binary_model("biased").biased
    assert not binary_model("plain").biased
    assert type(binary_model("biased", backend="torch")) is TorchLogisticMF
    book = binary_model("book", backend="torch")
    assert book.mode == "minibatch" and book.max_norm == 1.0 and not book.biased
    net = binary_model("concat", backend="torch")
    assert type(net) is ConcatMLP and net.task == "binary" and supports_binary(net)
    with pytest.raises(ValueError, match="model 'als' has no binary .* these have one: plain"):
        binary_model("als")
    with pytest.raises(ValueError, match="'concat' is a torch network: use --backend torch"):
        binary_model("concat")
    with pytest.raises(ValueError, match="'embedding-mlp' needs user and item features"):
        binary_model("embedding-mlp", backend="torch")
    with pytest.raises(ValueError, match="model 'book' has no numba version"):
        binary_model("book")


def test_binary_fold_metrics_on_ml100k(ml100k):
    data = ml100k.subset(np.arange(5000))
    tr, te = kfold(len(data), 5, 0)[0]
    model = LogisticMF(n_factors=5, n_epochs=3, lr=0.05, reg=0.02)
    result = evaluate_binary_fold(model, data, tr, te, 10, 4)
    test = data.subset(te)
    y = (test.ratings >= 4).astype(float)
    assert result["auc"] == pytest.approx(auc(y, model.predict(test.users, test.items)), abs=0.02)
    assert 0.5 < result["auc"] < 1 and 0 < result["log_loss"] < np.log(2) + 0.05
    assert {"precision", "recall", "accuracy", "precision@10", "recall@10", "ndcg@10"} <= set(
        result
    )
    assert result["n_test"] == len(te)


def test_binary_cv_refuses_bad_thresholds(ml100k):
    data = ml100k.subset(np.arange(2000))
    with pytest.raises(ValueError, match=r"threshold 6 is outside the rating scale \[1, 5\]"):
        cross_validate_binary(data, "biased", folds=2, threshold=6)
    with pytest.raises(ValueError, match="threshold 1 leaves one class in the training part"):
        cross_validate_binary(data, "biased", folds=2, threshold=1)
    with pytest.raises(ValueError, match="model 'bayes' has no binary"):
        cross_validate_binary(data, "bayes", folds=2)


def test_binary_cv_reports_every_metric_per_fold(ml100k):
    data = ml100k.subset(np.arange(3000))
    result = cross_validate_binary(data, "biased", folds=2, k=5, factory=lambda s: LogisticMF(
        n_factors=3, n_epochs=2, lr=0.05, seed=s))  # fmt: skip
    keys = {"auc", "log_loss", "precision", "recall", "accuracy", "precision@5", "recall@5",
            "ndcg@5", "fit_s"}  # fmt: skip
    assert set(result["mean"]) == keys and len(result["folds"]) == 2
    assert result["threshold"] == 4.0
    aucs = [f["auc"] for f in result["folds"]]
    assert result["mean"]["auc"] == pytest.approx(np.mean(aucs))
