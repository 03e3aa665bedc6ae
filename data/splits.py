"""Seeded splits of a ratings table."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mfrec.data.dataset import Ratings
from mfrec.data.ids import UNKNOWN


def train_test_split(
    n: int, test_size: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test): a seeded random ``test_size`` fraction goes to test."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_size))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def kfold(n: int, n_folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` (train, test) index pairs; every row is in exactly one test fold."""
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be in [2, {n}], got {n_folds!r}")
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(perm, n_folds)
    return [
        (np.sort(np.concatenate(folds[:f] + folds[f + 1 :])), np.sort(folds[f]))
        for f in range(n_folds)
    ]


class Carved(NamedTuple):
    """A validation split carved from training ratings (see :func:`carve_validation`)."""

    fit_rows: np.ndarray
    """Sorted row indices of the ratings left to fit on."""
    val: tuple[np.ndarray, np.ndarray, np.ndarray]
    """(users, items, ratings) held out; a user or item absent from the fit rows is UNKNOWN."""
    n_unknown: int
    """Held-out ratings whose user or item is absent from the fit rows (scored by fallback)."""


def carve_validation(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    fraction: float,
    seed: int | tuple | np.random.Generator,
) -> Carved:
    """Hold out a seeded ``fraction`` (at least one rating) of 0-based training ratings.

    The held-out rows are the first max(1, round(n·fraction)) of a permutation drawn from
    ``np.random.default_rng(seed)`` (a Generator is used as it is, continuing its stream).
    A held-out user or item that no fit row has becomes ``UNKNOWN``, so ``predict`` scores it
    by the fallback (training mean plus the known bias) rather than by its initial random
    row, and the count of such ratings is ``n_unknown``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction!r}")
    u, i, r = (np.asarray(a) for a in (users, items, ratings))
    n = r.shape[0]
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 ratings, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    fit_rows, val_rows = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    vu, vi, n_unknown = unseen_as_unknown(u[val_rows], i[val_rows], u[fit_rows], i[fit_rows])
    return Carved(fit_rows, (vu, vi, r[val_rows]), n_unknown)


def unseen_as_unknown(
    users: np.ndarray, items: np.ndarray, fit_users: np.ndarray, fit_items: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(users, items, n_unknown): 0-based ``users``/``items`` (``UNKNOWN`` allowed) with every
    index that ``fit_users``/``fit_items`` (the ratings a model is fitted on) lack set to
    ``UNKNOWN``, and the number of pairs with an unknown side (scored by the fallback)."""
    users, items = np.asarray(users), np.asarray(items)
    out = []
    for index, fitted in ((users, fit_users), (items, fit_items)):
        size = max(int(index.max(initial=0)), int(np.max(fitted, initial=0))) + 1
        seen = np.bincount(np.asarray(fitted), minlength=size) > 0  # (size,)
        out.append(np.where((index >= 0) & seen[np.maximum(index, 0)], index, UNKNOWN))
    vu, vi = out
    return vu, vi, int(np.count_nonzero((vu == UNKNOWN) | (vi == UNKNOWN)))


CANONICAL_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
"""The train/test splits ml-100k ships (its ``mku.sh`` writes them from ``u.data``)."""


def canonical_split(ratings: Ratings, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of ml-100k's split ``name`` (``u1``..``u5``, ``ua``, ``ub``).

    ``ratings`` must be ``u.data`` in its file order, as :func:`mfrec.data.load_ml100k` reads
    it. The cut is ``mku.sh``'s: ``u<k>.test`` is lines 20000(k−1)+1 .. 20000k of ``u.data``,
    ``u<k>.base`` the other 80,000 (so u1..u5 are a 5-fold partition); ``ua.test`` holds each
    user's 1st..10th rating in file order and ``ub.test`` the 11th..20th (``allbut.pl ua 1 10``,
    ``allbut.pl ub 11 20``), the ``.base`` the rest. Both index arrays come sorted by (user,
    item), the order of the shipped files (``sort -k 1,1n -k 2,2n``).
    """
    if name not in CANONICAL_SPLITS:
        raise ValueError(f"unknown ml-100k split {name!r} (known: {', '.join(CANONICAL_SPLITS)})")
    n = len(ratings)
    if n != 100_000 or ratings.n_users != 943:
        raise ValueError(
            f"canonical splits are of ml-100k's u.data (100,000 ratings by 943 users), got "
            f"{n:,} ratings by {ratings.n_users:,} users"
        )
    if name[1].isdigit():
        k = int(name[1])
        test = np.zeros(n, dtype=bool)
        test[20_000 * (k - 1) : 20_000 * k] = True
    else:
        start = 1 if name == "ua" else 11
        nth = _occurrence(ratings.users)  # 1 for a user's first row in file order, 2, ...
        test = (nth >= start) & (nth < start + 10)
    by_user_item = np.lexsort((ratings.item_ids[ratings.items], ratings.user_ids[ratings.users]))
    return by_user_item[~test[by_user_item]], by_user_item[test[by_user_item]]


def _occurrence(keys: np.ndarray) -> np.ndarray:
    """For each position, how many times its key occurred up to and including it (from 1)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    run = np.repeat(starts, np.diff(np.r_[starts, keys.shape[0]]))
    nth = np.empty(keys.shape[0], dtype=np.int64)
    nth[order] = np.arange(keys.shape[0]) - run + 1
    return nth
