"""The liked-or-not task for ``mfrec train/cv --binary T`` and the accuracy benchmark.

:func:`binary_model` maps a ``--model`` name to its binary form (or refuses it, naming the
models that have one), :func:`evaluate_binary_fold` / :func:`cross_validate_binary` score it:
AUC, log loss, precision/recall/accuracy at 0.5, and precision/recall/NDCG@K of the ranked
lists (relevant: test ratings >= T). :func:`network_configs` lists the chapter-3 networks for
either task. Labels are y = 1[r >= T] (:func:`mfrec.data.binarize`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mfrec.data import Ratings
from mfrec.data.binary import binarize, check_threshold
from mfrec.evaluate import cross_validate, query_indices
from mfrec.reference.classification import binary_metrics
from mfrec.reference.mf import FactorModel
from mfrec.reference.ranking import ranking_metrics

BINARY_METRICS = ("auc", "log_loss", "precision", "recall", "accuracy", "precision@{k}",
                  "recall@{k}", "ndcg@{k}", "fit_s")  # fmt: skip


def _logistic(biased: bool, backend: str):
    """Factory of the logistic model; lr and reg are the best of lr ∈ {0.01, 0.03} × reg ∈
    {0.02, 0.05, 0.1} by validation AUC on a 10% split of fold 0's training part (ML-100k)."""

    def build(seed: int = 0):
        kw: dict[str, Any] = dict(
            n_factors=50, n_epochs=30, lr=0.03, reg=0.05, biased=biased, seed=seed
        )
        if backend == "torch":
            from mfrec.torch_impl.logistic import TorchLogisticMF

            return TorchLogisticMF(**kw, mode="exact")
        from mfrec.reference.logistic import LogisticMF

        return LogisticMF(**kw)

    return build


def book_logistic(seed: int = 0):
    """The book's training: σ(Pᵤ·Qᵢ), AdamW on minibatches, ``nn.Embedding(max_norm=1)``."""
    from mfrec.torch_impl.logistic import TorchLogisticMF

    return TorchLogisticMF(n_factors=32, n_epochs=20, lr=5e-3, biased=False, mode="minibatch",
                           batch_size=1024, max_norm=1.0, seed=seed)  # fmt: skip


def network_configs(
    task: str, user_features=None, item_features=None
) -> dict[str, tuple[str, Callable[[int], FactorModel]]]:
    """The chapter-3 networks for ``task`` ("rating" or "binary") as name → (description,
    factory(seed)); ``embedding-mlp`` only when both feature arrays are given (see
    :class:`mfrec.torch_impl.networks.EmbeddingMLP`). Early-stopped on a 10% split."""
    from mfrec.torch_impl.networks import ConcatMLP, EmbeddingMLP, TwoTowerMF

    kw: dict[str, Any] = dict(n_factors=32, n_epochs=30, lr=2e-3, reg=0.05, batch_size=1024,
                              val_fraction=0.1, task=task)  # fmt: skip
    configs = {
        "two-towers": (
            "two towers (Linear+Tanh 64, 32 each), dot product + biases: k=32, AdamW 2e-3",
            lambda seed: TwoTowerMF(hidden=(64, 32), seed=seed, **kw),
        ),
        "concat": (
            "NCF concatenation MLP [Pᵤ, Qᵢ] → 64 → 32 → 1 + biases: k=32, AdamW 2e-3",
            lambda seed: ConcatMLP(hidden=(64, 32), seed=seed, **kw),
        ),
    }
    if user_features is not None and item_features is not None:
        configs["embedding-mlp"] = (
            "Embedding-MLP over ids and features (8 wide each) → 64 → 32 → 1 + biases: k=32",
            lambda seed: EmbeddingMLP(
                user_features=user_features,
                item_features=item_features,
                hidden=(64, 32),
                seed=seed,
                **kw,
            ),  # fmt: skip
        )
    return configs


BINARY_FORMS = {
    "plain": ("σ(Pᵤ·Qᵢ) by per-sample SGD on the log loss: k=50, 30 epochs, lr 0.03, reg 0.05",
              _logistic(False, "numba"), _logistic(False, "torch")),
    "biased": ("σ(μ + bᵤ + bᵢ + Pᵤ·Qᵢ), the same SGD rule", _logistic(True, "numba"),
               _logistic(True, "torch")),
    "book": ("the book's: σ(Pᵤ·Qᵢ), AdamW 5e-3 on batches of 1024, max_norm 1, k=32, 20 epochs",
             None, book_logistic),
}  # fmt: skip
"""``--model`` name → (description, numba factory, torch factory) of its binary form."""


NETWORKS = ("two-towers", "concat", "embedding-mlp")
"""The chapter-3 networks' names (:func:`network_configs`; each has both tasks)."""


def binary_names() -> tuple[str, ...]:
    """Every ``--model`` name that has a binary form (the networks included)."""
    return (*BINARY_FORMS, *NETWORKS)


def binary_model(
    name: str, seed: int = 0, backend: str = "numba", features=(None, None)
) -> FactorModel:
    """A fresh, unfitted binary-task model for ``--model name`` on ``backend``; ``ValueError``
    naming the model when it has no binary form (or none on that backend)."""
    networks = network_configs("binary", *features)
    if name in networks:
        if backend != "torch":
            raise ValueError(f"--binary: model {name!r} is a torch network: use --backend torch")
        return networks[name][1](seed)
    if name == "embedding-mlp":
        raise ValueError("--binary: model 'embedding-mlp' needs user and item features")
    if name not in BINARY_FORMS:
        raise ValueError(
            f"--binary: model {name!r} has no binary (liked-or-not) form; "
            f"these have one: {', '.join(binary_names())}"
        )
    factory = BINARY_FORMS[name][1 if backend == "numba" else 2]
    if factory is None:
        raise ValueError(f"--binary: model {name!r} has no {backend} version")
    return factory(seed)


def evaluate_binary_fold(
    model, data: Ratings, train_idx: np.ndarray, test_idx: np.ndarray, k: int, threshold: float
) -> dict:
    """Fit ``model`` on the train rows' labels 1[r >= threshold] and score the test rows.

    The threshold must lie on the data set's rating scale and leave both classes in the
    training part (``ValueError`` naming it otherwise). Test users or items without a training
    rating are passed as ``UNKNOWN`` (the model's fallback), as in :func:`evaluate_fold`.
    """
    scale = (float(data.ratings.min()), float(data.ratings.max()))
    train, test = data.subset(train_idx), data.subset(test_idx)
    y_train = binarize(train.ratings, threshold, scale, part="training")
    t = check_threshold(threshold, scale)
    y_test = (test.ratings >= t).astype(np.float64)
    start = time.perf_counter()
    model.fit(train.users, train.items, y_train, data.n_users, data.n_items)
    fit_s = time.perf_counter() - start
    probs = model.predict(*query_indices(data, train, test))
    result = binary_metrics(y_test, probs)
    result.update({"n_test": len(test), "n_unknown": int(model.n_unknown_), "fit_s": fit_s})
    ranks = ranking_metrics(model, test.users, test.items, test.ratings, k, t)
    result.update({key: v for key, v in ranks.items() if "@" in key})
    return result


def score_binary(model, users, items, ratings, k: int, threshold: float) -> dict:
    """A fitted binary model's metrics on test (users, items, ratings) given as 0-based
    indices (``UNKNOWN`` allowed: the fallback scores them, ``n_unknown`` counts them)."""
    y = (np.asarray(ratings) >= threshold).astype(np.float64)
    if y.size == 0:
        return {"n_test": 0, "n_unknown": 0}
    result = binary_metrics(y, model._predict_indices(users, items))
    result["n_unknown"] = int(model.n_unknown_)
    ranks = ranking_metrics(model, users, items, ratings, k, threshold)
    result.update({key: v for key, v in ranks.items() if "@" in key})
    return result


def cross_validate_binary(
    data: Ratings,
    name: str,
    folds: int = 5,
    seed: int = 0,
    k: int = 10,
    threshold: float = 4.0,
    on_fold=None,
    factory=None,
    backend: str = "numba",
) -> dict:
    """``folds``-fold CV of the binary form of ``name`` (or of ``factory(seed)`` models): the
    folds of :func:`mfrec.evaluate.cross_validate`, per-fold results, mean and std."""
    if factory is None:
        binary_model(name, seed, backend)  # refuse a model without a binary form up front

        def named_factory(s: int):
            return binary_model(name, s, backend)

        factory = named_factory
    result = cross_validate(data, name, folds, seed, k, threshold, on_fold, factory,
                            evaluate_binary_fold, BINARY_METRICS)  # fmt: skip
    return {**result, "threshold": threshold}
