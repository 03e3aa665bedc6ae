"""Seeded splits of a ratings table."""

from __future__ import annotations

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
