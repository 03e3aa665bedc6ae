"""Seeded splits of a ratings table."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


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


UNKNOWN = -1
"""Index that marks a user or item the model was not trained on (predict falls back to biases)."""


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
    vu, vi = u[val_rows], i[val_rows]
    seen_u = (np.bincount(u[fit_rows], minlength=int(u.max()) + 1) > 0)[vu]  # (n_val,)
    seen_i = (np.bincount(i[fit_rows], minlength=int(i.max()) + 1) > 0)[vi]  # (n_val,)
    val = (np.where(seen_u, vu, UNKNOWN), np.where(seen_i, vi, UNKNOWN), r[val_rows])
    return Carved(fit_rows, val, int(np.count_nonzero(~(seen_u & seen_i))))
