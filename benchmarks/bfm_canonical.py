"""Bayesian factorization machine on ML-100k's canonical splits, beside Bayesian MF.

Run ``MFREC_DATA=... python -m benchmarks.bfm_canonical [--splits u1 u2 ...] [--sweeps 200]``.
Configurations: ``mf`` (:class:`BayesianMF`, ids), ``ids`` (:class:`BayesianFM`, user and item
ids only) and ``recipe`` (myFM's ML-100k recipe without the date: ids, u.user's age in quantile
bins, gender, occupation and first zip digit, u.item's release year bins and genres, N(u)
weighted |N(u)|^−½, and the raters R(i)) and ``recipe+date`` (plus the rating's date, one
feature per ``--date-unit`` period, as a block of the ratings); every test rating is scored.
``--likelihoods gaussian ordered`` fits each FM configuration with each likelihood (ordered:
:class:`BayesianFM`'s ordered probit, scored by its expected rating). ``--validation 0.1``
fits on each split's training ratings less a carved validation share
(:func:`~mfrec.data.splits.carve_validation`, seed 0) and scores both that share (``rmse``)
and the split's test ratings (``test_rmse``); with both likelihoods it adds a ``blend`` row:
g + w(o − g) of the two predictions, w ∈ [0, 1] fit by least squares on the validation share.
Prints one line per (split, configuration, likelihood) with the RMSE and the fit seconds, and
writes them as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from mfrec._internal import atomic_write
from mfrec.data import load_ml100k
from mfrec.data.features import Features, rating_dates, release_features
from mfrec.data.movielens import find_release
from mfrec.data.splits import canonical_split, carve_validation
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.bfm import LIKELIHOODS, BayesianFM

CONFIGS = ("mf", "ids", "recipe", "recipe+date")


def rows_of(features: Features, index: np.ndarray) -> Features:
    """The rows ``index`` of per-rating features with one entry each (as rating_dates)."""
    indptr = np.arange(index.shape[0] + 1, dtype=np.int64)
    return Features(indptr, features.indices[index], features.names, features.kinds)


def fit_config(
    config: str,
    ratings,
    train: np.ndarray,
    test: np.ndarray,
    user_f,
    item_f,
    dates: Features,
    **kw,
) -> tuple[BayesianMF | BayesianFM, float, np.ndarray]:
    """(model, fit seconds, predictions of the rows ``test``) of ``config`` fit on the rows
    ``train`` of ``ratings`` (:func:`fit_scorer`); ``kw`` goes to the model's constructor."""
    model, seconds, score = fit_scorer(config, ratings, train, user_f, item_f, dates, **kw)
    return model, seconds, score(test)


def fit_scorer(
    config: str,
    ratings,
    train: np.ndarray,
    user_f,
    item_f,
    dates: Features,
    **kw,
) -> tuple[BayesianMF | BayesianFM, float, Callable[..., np.ndarray]]:
    """(model, fit seconds, ``score``) of ``config`` fit on the rows ``train`` of ``ratings``;
    ``score(rows, query=None)`` predicts the rows ``rows`` of ``ratings``, for ``query`` =
    (users, items) when not theirs (a carved validation split's, unseen ids ``UNKNOWN``);
    ``kw`` goes to the model's constructor."""
    u, i, r = ratings.users[train], ratings.items[train], ratings.ratings[train]
    start = time.perf_counter()
    if config == "mf":
        model = BayesianMF(**kw).fit(u, i, r, ratings.n_users, ratings.n_items)
    else:
        features: dict = dict(implicit=False)
        if config.startswith("recipe"):
            features = dict(user_features=user_f, item_features=item_f,
                            implicit=True, item_implicit=True)  # fmt: skip
        if config == "recipe+date":
            features["rating_features"] = rows_of(dates, train)
        model = BayesianFM(**kw).fit(u, i, r, ratings.n_users, ratings.n_items, **features)
    seconds = time.perf_counter() - start

    def score(rows: np.ndarray, query: tuple | None = None) -> np.ndarray:
        tu, ti = (ratings.users[rows], ratings.items[rows]) if query is None else query
        if config == "recipe+date":
            return model.predict(tu, ti, rating_features=rows_of(dates, rows))
        return model.predict(tu, ti)

    return model, seconds, score


def rmse_of(pred: np.ndarray, r: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - r) ** 2)))


def run(
    splits: list[str],
    configs: list[str],
    rank: int,
    sweeps: int,
    burn_in: int,
    unit: str,
    likelihoods: tuple[str, ...] = ("gaussian",),
    validation: float | None = None,
) -> list:
    """One result dict per (split, configuration, likelihood); ``validation``: the fraction of
    each split's training ratings to carve out and score beside its test ratings (see the
    module doc)."""
    ratings = load_ml100k(download=False)
    user_f, item_f = release_features("ml-100k", find_release("ml-100k", download=False), ratings)
    dates = rating_dates(ratings, unit=unit)
    results = []
    for split in splits:
        train, test = canonical_split(ratings, split)
        scored, query = test, None
        if validation is not None:
            u, i, r = ratings.users[train], ratings.items[train], ratings.ratings[train]
            carved = carve_validation(u, i, r, validation, seed=0)
            val = np.setdiff1d(np.arange(train.shape[0]), carved.fit_rows)  # sorted, as carved
            train, scored, query = train[carved.fit_rows], train[val], carved.val[:2]
        y, y_test = ratings.ratings[scored], ratings.ratings[test]
        for config in configs:
            preds = {}
            for likelihood in ("gaussian",) if config == "mf" else likelihoods:
                kw: dict = dict(n_factors=rank, n_samples=sweeps, burn_in=burn_in, seed=0)
                if config != "mf":
                    kw["likelihood"] = likelihood
                model, seconds, score = fit_scorer(
                    config, ratings, train, user_f, item_f, dates, **kw
                )
                pred = score(scored, query)
                row = dict(split=split, config=config, likelihood=likelihood,
                           rmse=rmse_of(pred, y), fit_s=seconds, rank=rank, sweeps=sweeps,
                           burn_in=burn_in, validation=validation,
                           model=model.describe())  # fmt: skip
                if validation is not None:
                    preds[likelihood] = (pred, score(test))
                    row["test_rmse"] = rmse_of(preds[likelihood][1], y_test)
                report(row)
                results.append(row)
            if len(preds) == 2:
                (g, g_test), (o, o_test) = preds["gaussian"], preds["ordered"]
                w = float(np.clip((o - g) @ (y - g) / max(float((o - g) @ (o - g)), 1e-300), 0, 1))
                row = dict(split=split, config=config, likelihood="blend", weight_ordered=w,
                           rmse=rmse_of(g + w * (o - g), y), fit_s=0.0, validation=validation,
                           test_rmse=rmse_of(g_test + w * (o_test - g_test), y_test))  # fmt: skip
                report(row)
                results.append(row)
    return results


def report(row: dict) -> None:
    """One result line: split, configuration, likelihood, RMSE (and test RMSE), fit seconds."""
    test = f"  test {row['test_rmse']:.4f}" if "test_rmse" in row else ""
    print(f"{row['split']} {row['config']:11s} {row['likelihood']:8s} rmse {row['rmse']:.4f}"
          f"{test}  fit {row['fit_s']:6.1f} s", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="+", default=["u1", "u2", "u3", "u4", "u5"])
    ap.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--sweeps", type=int, default=200, help="kept samples after burn-in")
    ap.add_argument("--burn-in", type=int, default=20)
    ap.add_argument("--date-unit", default="month", help="recipe+date's period (rating_dates)")
    ap.add_argument("--likelihoods", nargs="+", choices=LIKELIHOODS, default=["gaussian"],
                    help="the FM configurations' likelihoods (each is fit)")  # fmt: skip
    ap.add_argument("--validation", type=float, help="score a carved validation fraction")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    results = run(args.splits, args.configs, args.rank, args.sweeps, args.burn_in, args.date_unit,
                  tuple(args.likelihoods), args.validation)  # fmt: skip
    for config, likelihood in dict.fromkeys((x["config"], x["likelihood"]) for x in results):
        rows = [x for x in results if (x["config"], x["likelihood"]) == (config, likelihood)]
        test = [x["test_rmse"] for x in rows if "test_rmse" in x]
        tail = f" test {np.mean(test):.4f}" if test else ""
        print(f"mean {config:11s} {likelihood:8s} rmse {np.mean([x['rmse'] for x in rows]):.4f}"
              f"{tail} over {len(rows)} splits")  # fmt: skip
    if args.json:
        with atomic_write(args.json) as tmp:
            tmp.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
