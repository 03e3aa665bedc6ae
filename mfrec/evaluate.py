"""``mfrec cv``: k-fold cross-validation (every rating tested exactly once) with error and
ranking metrics for one of the named configurations in :mod:`mfrec.configs`."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from mfrec.configs import CONFIGS, build_model
from mfrec.data import Ratings, kfold, load_ml100k, read_ratings
from mfrec.reference import mae, mse, rmse
from mfrec.reference.mf import UNKNOWN
from mfrec.reference.ranking import ranking_metrics

METRICS = ("rmse", "mse", "mae", "precision@{k}", "recall@{k}", "ndcg@{k}", "fit_s")


def evaluate_fold(
    model, data: Ratings, train_idx: np.ndarray, test_idx: np.ndarray, k: int, threshold: float
) -> dict:
    """Fit ``model`` on the train rows, score the test rows: errors, ranking metrics, fit time.

    A test user or item with no training rating is passed as ``UNKNOWN``, so its prediction is
    the fallback (training mean plus the known bias), never an untrained factor row.
    """
    train, test = data.subset(train_idx), data.subset(test_idx)
    start = time.perf_counter()
    model.fit(train.users, train.items, train.ratings, data.n_users, data.n_items)
    fit_s = time.perf_counter() - start
    seen_u = np.bincount(train.users, minlength=data.n_users) > 0
    seen_i = np.bincount(train.items, minlength=data.n_items) > 0
    users = np.where(seen_u[test.users], test.users, UNKNOWN)
    items = np.where(seen_i[test.items], test.items, UNKNOWN)
    pred = model.predict(users, items)
    result = {
        "rmse": rmse(test.ratings, pred),
        "mse": mse(test.ratings, pred),
        "mae": mae(test.ratings, pred),
        "n_unknown": int(model.n_unknown_),
        "fit_s": fit_s,
    }
    ranks = ranking_metrics(model, test.users, test.items, test.ratings, k, threshold)
    result.update({key: v for key, v in ranks.items() if "@" in key})
    return result


def cross_validate(
    data: Ratings,
    name: str,
    folds: int = 5,
    seed: int = 0,
    k: int = 10,
    threshold: float = 4.0,
    on_fold=None,
    factory=None,
) -> dict:
    """``folds``-fold CV of configuration ``name`` (or of ``factory(seed)`` models when given):
    per-fold results and their mean and std."""
    per_fold = []
    for f, (tr, te) in enumerate(kfold(len(data), folds, seed)):
        model = factory(seed) if factory is not None else build_model(name, seed)
        per_fold.append(evaluate_fold(model, data, tr, te, k, threshold))
        if on_fold is not None:
            on_fold(f, per_fold[-1])
    keys = [m.format(k=k) for m in METRICS]
    return {
        "model": name,
        "folds": per_fold,
        "mean": {key: float(np.mean([r[key] for r in per_fold])) for key in keys},
        "std": {key: float(np.std([r[key] for r in per_fold])) for key in keys},
    }


def add_cv_parser(sub) -> None:
    """Register the ``cv`` subcommand on the ``mfrec`` subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    # argparse %-formats help text, so a literal % (as in "a 10% split") must be doubled.
    models = "; ".join(f"{name}: {desc}" for name, (desc, _) in CONFIGS.items()).replace("%", "%%")
    c = sub.add_parser("cv", help="k-fold cross-validation of a model", formatter_class=fmt)
    c.add_argument("--folds", type=int, default=5, help="number of folds")
    c.add_argument("--seed", type=int, default=0, help="seeds the folds and the models")
    c.add_argument("--model", choices=list(CONFIGS), default="default", help=models)
    c.add_argument("--data-dir", help="folder with ml-100k (else $MFREC_DATA, cache, download)")
    c.add_argument("--ratings", help="a ratings file 'user item rating [timestamp]' instead")
    c.add_argument("-k", "--top", type=int, default=10, help="K of precision/recall/NDCG@K")
    c.add_argument("--threshold", type=float, default=4.0, help="relevant: test rating >= this")
    c.add_argument("--json", action="store_true", help="end with one JSON line of results")


def cmd_cv(args) -> int:
    """Run ``mfrec cv``: print each fold, then the mean ± std of every metric."""
    if args.top < 1:
        raise ValueError(f"-k/--top must be >= 1, got {args.top}")
    if args.folds < 2:
        raise ValueError(f"--folds must be >= 2 (every rating is tested once), got {args.folds}")
    data = read_ratings(args.ratings) if args.ratings else load_ml100k(args.data_dir)
    k = args.top
    print(f"{args.folds}-fold CV of '{args.model}' on {len(data):,} ratings ({data.source})")

    def show(f: int, r: dict) -> None:
        print(
            f"fold {f + 1}: RMSE {r['rmse']:.4f}  MAE {r['mae']:.4f}  "
            f"NDCG@{k} {r[f'ndcg@{k}']:.4f}  ({r['fit_s']:.1f} s fit)"
        )

    result = cross_validate(data, args.model, args.folds, args.seed, k, args.threshold, show)
    mean, std = result["mean"], result["std"]
    for key in mean:
        print(f"mean {key:>13s} {mean[key]:.4f} ± {std[key]:.4f}")
    if args.json:
        print(json.dumps(result))
    return 0
