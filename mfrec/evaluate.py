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
    model,
    data: Ratings,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    k: int,
    threshold: float,
    *,
    fit_options: dict | None = None,
    cold: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    dates: bool = True,
) -> dict:
    """Fit ``model`` on the train rows, score the test rows: errors, ranking metrics, fit time.

    A test user or item with no training rating is passed as ``UNKNOWN``, so its prediction is
    the fallback (training mean plus the known bias), never an untrained factor row, except a
    *cold row*: ``cold`` is (users, items) masks over ``data``'s rows that the model scores
    from their features (None: no side). A model
    that ``takes_timestamps`` (the default, bfm) gets the ratings' timestamps, when ``data``
    has them and ``dates`` is on, at fit and at scoring; ``fit_options`` go to ``fit``.
    """
    train, test = data.subset(train_idx), data.subset(test_idx)
    dated = getattr(model, "takes_timestamps", False) and data.timestamps is not None and dates
    start = time.perf_counter()
    when = {"timestamps": train.timestamps} if dated else {}
    model.fit(train.users, train.items, train.ratings, data.n_users, data.n_items, **when,
              **(fit_options or {}))  # fmt: skip
    fit_s = time.perf_counter() - start
    users, items = query_indices(data, train, test, *cold)
    unseen_u, unseen_i = query_indices(data, train, test)
    pred = model.predict(users, items, **({"timestamps": test.timestamps} if dated else {}))
    result = {
        "rmse": rmse(test.ratings, pred),
        "mse": mse(test.ratings, pred),
        "mae": mae(test.ratings, pred),
        "n_test": len(test),
        "n_unknown": int(model.n_unknown_),
        "n_cold": int(np.count_nonzero((users != unseen_u) | (items != unseen_i))),
        "fit_s": fit_s,
    }
    ranks = ranking_metrics(model, test.users, test.items, test.ratings, k, threshold)
    result.update({key: v for key, v in ranks.items() if "@" in key})
    return result


def query_indices(
    data: Ratings,
    train: Ratings,
    test: Ratings,
    cold_users: np.ndarray | None = None,
    cold_items: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The test (users, items), each ``UNKNOWN`` where it has no rating in ``train`` and is
    not a cold row (``cold_users``/``cold_items``: masks over ``data``'s rows)."""
    seen_u = np.bincount(train.users, minlength=data.n_users) > 0
    seen_i = np.bincount(train.items, minlength=data.n_items) > 0
    if cold_users is not None:
        seen_u |= cold_users
    if cold_items is not None:
        seen_i |= cold_items
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
