"""ML-100k's canonical splits u1..u5: mfrec's default and Bayesian FM beside myFM, one table.

Run ``python -m benchmarks.myfm_canonical`` (the second step of ``make accuracy``). Every row
sees the same splits (``canonical_split``, cut as ml-100k's ``mku.sh`` cuts them) and scores
every test rating; rank 10 and ``--sweeps`` Gibbs sweeps (512 by default, myFM's recipe) for
the samplers. Rows:

- ``myfm-ids``: myFM's ``MyFMRegressor`` on user and item ids only.
- ``myfm-recipe``: myFM's ML-100k recipe, as its examples build it: a relation block of the
  users (id, u.user's age bins, gender, occupation, first zip character, and N(u) — the
  movies the user rated in the training part — weighted |N(u)|^−½) and one of the movies (id,
  u.item's release-year bins and genres, and R(i), its raters in the training part, weighted
  |R(i)|^−½), the rating's day as a column of its own, one prior group per source column.
- ``myfm-oprobit``: the same inputs, ``MyFMOrderedProbit`` (the ratings as ordered classes);
  the prediction is the expected rating under its class probabilities.
- ``default``: ``mfrec.job.DefaultModel`` (what ``mfrec train`` fits with no model flags),
  given the side information its constructor or ``fit`` accepts (its label says what).
- ``bfm-recipe``: mfrec's ``BayesianFM`` with the same recipe, the date by month
  (``benchmarks.bfm_canonical``'s ``recipe+date``), 20 burn-in sweeps.

The features come from the release's own files (``release_features``, ``rating_dates``); the
implicit sets from the training part only. Fit seconds: building a model's inputs from the
split and fitting it, not predicting. The myFM rows are skipped, with the reason printed,
when ``myfm`` cannot be imported (extra ``peers``: myfm, and setuptools<81 for the
``pkg_resources`` its import needs). Writes ``myfm_canonical.md`` and ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sps

from benchmarks.accuracy import cpu_name, write_results
from benchmarks.bfm_canonical import fit_config, rows_of
from mfrec.data import load_ml100k
from mfrec.data.dataset import Ratings
from mfrec.data.features import Features, rating_dates, release_features, sets_by_row
from mfrec.data.movielens import find_release
from mfrec.data.splits import canonical_split
from mfrec.job import DefaultModel

ROWS = ("myfm-ids", "myfm-recipe", "myfm-oprobit", "default", "bfm-recipe")
MYFM_ROWS = ROWS[:3]
SPLITS = ("u1", "u2", "u3", "u4", "u5")
GIVEN = {"user_features": "user attributes", "item_features": "item attributes",
         "rating_features": "month of rating", "timestamps": "month of rating"}  # fmt: skip
"""What the default's label says of each side input its ``fit`` accepted."""


def import_myfm() -> tuple[Any, str]:
    """(the ``myfm`` module, "") or (None, why it cannot be imported)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # its note that pkg_resources is old
            return importlib.import_module("myfm"), ""
    except ImportError as exc:
        return None, (
            f"myfm is not importable ({exc}); install the peers extra "
            "(pip install -e '.[peers]': myfm, and setuptools<81 for its pkg_resources)"
        )


# --- myFM's inputs ----------------------------------------------------------------------


def onehot(features: Features) -> sps.csr_matrix:
    """``features`` as a 0/1 matrix, n_entities × n_features."""
    shape = (features.n_entities, features.n_features)
    ones = np.ones(features.indices.shape[0])
    return sps.csr_matrix((ones, features.indices, features.indptr), shape=shape)


def normalised_sets(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int):
    """Each row's distinct ``cols``, weighted |set|^−½ (SVD++'s implicit feedback)."""
    indptr, indices = sets_by_row(rows, cols, n_rows, n_cols)
    counts = np.diff(indptr)
    weights = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts)
    return sps.csr_matrix((weights, indices, indptr), shape=(n_rows, n_cols))


def column_groups(features: Features) -> np.ndarray:
    """Each feature's source column as a group index (``genre=Comedy`` → genre, ``age<20`` →
    age): myFM's recipe gives every column its own prior."""
    columns = [re.split("[=<∈≥]", name, maxsplit=1)[0] for name in features.names]
    return np.unique(columns, return_inverse=True)[1].reshape(-1)


def _stack(parts: list[tuple[Any, np.ndarray]], n_rows: int) -> tuple[Any, list[np.ndarray]]:
    """The parts' matrices side by side, and their group arrays."""
    if not parts:
        return sps.csr_matrix((n_rows, 0)), []
    return sps.hstack([m for m, _ in parts], format="csr"), [g for _, g in parts]


def myfm_inputs(
    myfm: Any,
    ratings: Ratings,
    train: np.ndarray,
    test: np.ndarray,
    side: tuple[Features, Features, Features] | None,
) -> dict:
    """myFM's fit and predict arguments for the rows ``train`` and ``test``: ``X`` (the
    rating rows' own columns), ``blocks`` (a user and an item ``RelationBlock``) and
    ``grouping`` (a prior group per column, X's first, then the blocks' in order). ``side``:
    (user features, item features, rating dates) for the recipe, None for ids only."""
    n_u, n_i = ratings.n_users, ratings.n_items
    user_parts = [(sps.identity(n_u, format="csr"), np.zeros(n_u, np.int64))]
    item_parts = [(sps.identity(n_i, format="csr"), np.zeros(n_i, np.int64))]
    rating_parts: list[tuple[Any, np.ndarray]] = []
    if side is not None:
        user_f, item_f, dates = side
        u, i = ratings.users[train], ratings.items[train]  # implicit sets: training part only
        user_parts += [(onehot(user_f), column_groups(user_f)),
                       (normalised_sets(u, i, n_u, n_i), np.zeros(n_i, np.int64))]  # fmt: skip
        item_parts += [(onehot(item_f), column_groups(item_f)),
                       (normalised_sets(i, u, n_i, n_u), np.zeros(n_u, np.int64))]  # fmt: skip
        rating_parts = [(onehot(dates), np.zeros(dates.n_features, np.int64))]
    X, rating_groups = _stack(rating_parts, len(ratings))
    U, user_groups = _stack(user_parts, n_u)
    I, item_groups = _stack(item_parts, n_i)
    grouping: list[int] = []
    for g in rating_groups + user_groups + item_groups:
        grouping += (g + (max(grouping) + 1 if grouping else 0)).tolist()
    out: dict = {"grouping": grouping}
    for name, rows in (("train", train), ("test", test)):
        blocks = [myfm.RelationBlock(ratings.users[rows], U),
                  myfm.RelationBlock(ratings.items[rows], I)]  # fmt: skip
        out[name] = {"X": X[rows], "X_rel": blocks}
    return out


def fit_myfm(
    myfm: Any,
    row: str,
    ratings: Ratings,
    train: np.ndarray,
    test: np.ndarray,
    side: tuple[Features, Features, Features],
    rank: int,
    sweeps: int,
    seed: int,
) -> tuple[float, np.ndarray]:
    """(fit seconds, predictions of the rows ``test``) of myFM's ``row`` (see ``MYFM_ROWS``);
    every sweep's sample is kept, as myFM's ML-100k example keeps them."""
    start = time.perf_counter()
    inputs = myfm_inputs(myfm, ratings, train, test, None if row == "myfm-ids" else side)
    tr, te = inputs["train"], inputs["test"]
    y = ratings.ratings[train]
    fit_kw = dict(grouping=inputs["grouping"], n_iter=sweeps, n_kept_samples=sweeps)
    if row == "myfm-oprobit":
        levels = np.unique(y)
        fm = myfm.MyFMOrderedProbit(rank=rank, random_seed=seed)
        fm.fit(tr["X"], np.searchsorted(levels, y), tr["X_rel"], **fit_kw)
        seconds = time.perf_counter() - start
        return seconds, fm.predict_proba(te["X"], te["X_rel"]) @ levels
    fm = myfm.MyFMRegressor(rank=rank, random_seed=seed)
    fm.fit(tr["X"], y, tr["X_rel"], **fit_kw)
    seconds = time.perf_counter() - start
    return seconds, fm.predict(te["X"], te["X_rel"])


# --- mfrec's rows -----------------------------------------------------------------------


def fit_default(
    ratings: Ratings,
    train: np.ndarray,
    test: np.ndarray,
    side: tuple[Features, Features, Features],
    seed: int,
) -> tuple[str, float, np.ndarray]:
    """(label, fit seconds, predictions of ``test``) of ``DefaultModel``, given each of the
    user features, item features, rating dates (``rating_features``, per-rating rows) and the
    ratings' ``timestamps`` that its constructor or its ``fit`` names as a parameter (the
    constructor first); ``predict`` gets the test rows' dates or timestamps likewise."""
    user_f, item_f, dates = side
    stamps = ratings.timestamps
    offered = {"user_features": user_f, "item_features": item_f,
               "rating_features": rows_of(dates, train),
               "timestamps": None if stamps is None else stamps[train]}  # fmt: skip
    init_kw: dict[str, Any] = {
        k: v for k, v in offered.items() if k in inspect.signature(DefaultModel).parameters
    }
    fit_params = inspect.signature(DefaultModel.fit).parameters
    fit_kw: dict[str, Any] = {
        k: v for k, v in offered.items() if k in fit_params and k not in init_kw and v is not None
    }
    asked = {"rating_features": rows_of(dates, test),
             "timestamps": None if stamps is None else stamps[test]}  # fmt: skip
    predict_params = inspect.signature(DefaultModel.predict).parameters
    query = {k: v for k, v in asked.items() if k in {*init_kw, *fit_kw} and k in predict_params}
    u, i, r = ratings.users[train], ratings.items[train], ratings.ratings[train]
    start = time.perf_counter()
    model = DefaultModel(seed=seed, **init_kw)
    model.fit(u, i, r, ratings.n_users, ratings.n_items, **fit_kw)
    seconds = time.perf_counter() - start
    given = ", ".join(GIVEN[k] for k in (*init_kw, *fit_kw)) or "ids only: it takes no features"
    label = f"mfrec default ({given})"
    return label, seconds, model.predict(ratings.users[test], ratings.items[test], **query)


# --- the run ----------------------------------------------------------------------------


def run(
    ratings: Ratings,
    folder: Path,
    splits: list[str],
    rows: list[str],
    *,
    rank: int = 10,
    sweeps: int = 512,
    burn_in: int = 20,
    seed: int = 0,
    train_sample: int | None = None,
) -> list[dict]:
    """One result dict per (row, split): ``rmse``, ``fit_s``, ``n_test`` and the label.
    ``train_sample`` keeps that many training ratings at random (a quick check; the test
    part stays whole)."""
    user_f, item_f = release_features("ml-100k", folder, ratings)
    if user_f is None or item_f is None:
        raise ValueError(f"{folder}: ml-100k's u.user and u.item are needed")
    myfm_side = (user_f, item_f, rating_dates(ratings, unit="day"))
    mfrec_side = (user_f, item_f, rating_dates(ratings, unit="month"))
    myfm, why = import_myfm() if set(rows) & set(MYFM_ROWS) else (None, "")
    if myfm is None and why:
        print(f"skipping {', '.join(r for r in rows if r in MYFM_ROWS)}: {why}", flush=True)
        rows = [r for r in rows if r not in MYFM_ROWS]
    labels = {
        "myfm-ids": "myFM regression, ids only",
        "myfm-recipe": "myFM regression, its ML-100k recipe (day of rating)",
        "myfm-oprobit": "myFM ordered probit, its ML-100k recipe (day of rating)",
        "bfm-recipe": f"mfrec BayesianFM, the recipe (month of rating), {burn_in} burn-in",
    }
    results = []
    for split in splits:
        train, test = canonical_split(ratings, split)
        if train_sample is not None:
            keep = np.random.default_rng(seed).permutation(train.shape[0])[:train_sample]
            train = train[np.sort(keep)]
        for row in rows:
            if row in MYFM_ROWS:
                seconds, pred = fit_myfm(
                    myfm, row, ratings, train, test, myfm_side, rank, sweeps, seed
                )
                label = labels[row]
            elif row == "default":
                label, seconds, pred = fit_default(ratings, train, test, mfrec_side, seed)
            else:
                kw = dict(n_factors=rank, n_samples=sweeps, burn_in=burn_in, seed=seed)
                _, seconds, pred = fit_config(
                    "recipe+date", ratings, train, test, user_f, item_f, mfrec_side[2], **kw
                )
                label = labels[row]
            truth = ratings.ratings[test]
            rmse = float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))
            results.append(dict(row=row, label=label, split=split, rmse=rmse, fit_s=seconds,
                                n_train=int(train.shape[0]), n_test=int(truth.shape[0]),
                                rank=rank, sweeps=sweeps))  # fmt: skip
            print(f"{split} {row:13s} rmse {rmse:.4f}  fit {seconds:6.1f} s", flush=True)
    return results


def table(results: list[dict]) -> str:
    """The markdown table: a row per model, RMSE per split and the mean, then fit seconds."""
    splits = list(dict.fromkeys(r["split"] for r in results))
    lines = [
        f"| model | {' | '.join(splits)} | mean RMSE | fit s ({' '.join(splits)}) | mean fit s |",
        "|---|" + "---|" * (len(splits) + 3),
    ]
    for row in dict.fromkeys(r["row"] for r in results):
        mine = {r["split"]: r for r in results if r["row"] == row}
        rmse = [mine[s]["rmse"] for s in splits]
        fit_s = [mine[s]["fit_s"] for s in splits]
        label = mine[splits[0]]["label"]
        cells = " | ".join(f"{x:.4f}" for x in rmse)
        times = " ".join(f"{x:.0f}" for x in fit_s)
        lines.append(
            f"| {label} | {cells} | {np.mean(rmse):.4f} | {times} | {np.mean(fit_s):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Fit every row on every split, print and write the table and the raw results."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.myfm_canonical", description=__doc__)
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    p.add_argument("--sweeps", type=int, default=512, help="Gibbs sweeps (myFM keeps all)")
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-sample", type=int, help="keep this many training ratings (a check)")
    p.add_argument("--no-peers", action="store_true", help="skip myFM even when installed")
    p.add_argument("--data-dir", help="folder with ml-100k (else $MFREC_DATA, cache, download)")
    p.add_argument("--out", default="benchmarks/out", help="folder for the .md and .json")
    p.add_argument("--render", nargs="+", metavar="JSON", help="only rebuild the table from "
                   "these results (e.g. of runs on different splits), fitting nothing")  # fmt: skip
    args = p.parse_args(argv)
    machine = f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}"
    if args.render:
        results = [r for path in args.render for r in json.loads(Path(path).read_text())]
        head = f"ML-100k canonical splits, from {', '.join(args.render)}"
    else:
        ratings = load_ml100k(args.data_dir)
        folder = find_release("ml-100k", args.data_dir)
        rows = [r for r in args.rows if not (args.no_peers and r in MYFM_ROWS)]
        results = run(ratings, folder, args.splits, rows, rank=args.rank, sweeps=args.sweeps,
                      seed=args.seed, train_sample=args.train_sample)  # fmt: skip
        head = (
            f"ML-100k canonical splits, every test rating scored; rank {args.rank}, "
            f"{args.sweeps} sweeps; machine: {machine}; `python -m benchmarks.myfm_canonical`"
        )
    text = f"{head}\n\n{table(results) if results else 'no rows ran'}\n"
    write_results(Path(args.out), "myfm_canonical", text, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
