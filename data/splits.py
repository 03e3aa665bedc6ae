"""Seeded splits of a ratings table."""

from __future__ import annotations

import numpy as np
from mfrec.data.dataset import Ratings


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
