"""``mfrec cv``: k-fold cross-validation (every rating tested exactly once) with error and
ranking metrics for one of the named configurations in :mod:`mfrec.configs`."""

from __future__ import annotations

import time

import numpy as np

from mfrec.configs import build_model
from mfrec.data import Ratings, kfold
from mfrec.reference import mae, mse, rmse
from mfrec.reference.mf import UNKNOWN
from mfrec.reference.ranking import ranking_metrics

METRICS = ("rmse", "mse", "mae", "precision@{k}", "recall@{k}", "ndcg@{k}", "fit_s")


def evaluate_fold(
    model, data: Ratings, train_idx: np.ndarray, test_idx: np.ndarray, k: int, threshold: float
) -> dict:
    """Fit ``model`` on the train rows, score the test rows: errors, ranking metrics, fit time.

    A test user or item with no training rating is passed as ``UNKNOWN``, so its prediction is
    the fallback (training mean plus the known bias), never an untrained factor row. A model
    that ``takes_timestamps`` (the default) gets the ratings' timestamps, when ``data`` has
    them, at fit and at scoring.
    """
    train, test = data.subset(train_idx), data.subset(test_idx)
    dated = getattr(model, "takes_timestamps", False) and data.timestamps is not None
    start = time.perf_counter()
    model.fit(train.users, train.items, train.ratings, data.n_users, data.n_items,
              **({"timestamps": train.timestamps} if dated else {}))  # fmt: skip
    fit_s = time.perf_counter() - start
    pred = model.predict(*query_indices(data, train, test),
                         **({"timestamps": test.timestamps} if dated else {}))  # fmt: skip
    result = {
        "rmse": rmse(test.ratings, pred),
        "mse": mse(test.ratings, pred),
        "mae": mae(test.ratings, pred),
        "n_test": len(test),
        "n_unknown": int(model.n_unknown_),
        "fit_s": fit_s,
    }
    ranks = ranking_metrics(model, test.users, test.items, test.ratings, k, threshold)
    result.update({key: v for key, v in ranks.items() if "@" in key})
    return result


def query_indices(data: Ratings, train: Ratings, test: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """The test (users, items), each ``UNKNOWN`` where it has no rating in ``train``."""
    seen_u = np.bincount(train.users, minlength=data.n_users) > 0
    seen_i = np.bincount(train.items, minlength=data.n_items) > 0
    users = np.where(seen_u[test.users], test.users, UNKNOWN)
    items = np.where(seen_i[test.items], test.items, UNKNOWN)
    return users, items


def cross_validate(
    data: Ratings,
    name: str,
    folds: int | list[tuple[np.ndarray, np.ndarray]] = 5,
    seed: int = 0,
    k: int = 10,
    threshold: float = 4.0,
    on_fold=None,
    factory=None,
    evaluate=evaluate_fold,
    metrics: tuple[str, ...] = METRICS,
) -> dict:
    """``folds``-fold CV of configuration ``name`` (or of ``factory(seed)`` models when given):
    per-fold results of ``evaluate`` and the mean and std of ``metrics``. ``folds`` may also be
    the (train, test) row indices of each fold (e.g. ml-100k's canonical u1..u5)."""
    per_fold = []
    splits = kfold(len(data), folds, seed) if isinstance(folds, int) else folds
    for f, (tr, te) in enumerate(splits):
        model = factory(seed) if factory is not None else build_model(name, seed)
        per_fold.append(evaluate(model, data, tr, te, k, threshold))
        if on_fold is not None:
            on_fold(f, per_fold[-1])
    keys = [m.format(k=k) for m in metrics]
    return {
        "model": name,
        "folds": per_fold,
        "mean": {key: float(np.mean([r[key] for r in per_fold])) for key in keys},
        "std": {key: float(np.std([r[key] for r in per_fold])) for key in keys},
    }
