"""Slide steps 3 and 4: random init of P and Q, and the order in which ratings are visited.

Both implementations draw from one ``numpy.random.default_rng(seed)`` in the same sequence
(P, then Q, then one permutation per epoch), which is what makes them comparable step for step.
"""

from __future__ import annotations

import numpy as np


def init_factors(
    rng: np.random.Generator, n_users: int, n_items: int, k: int, init_std: float, dtype
) -> tuple[np.ndarray, np.ndarray]:
    """P ~ N(0, init_std²) of shape (n_users, k), then Q ~ N(0, init_std²) of shape (n_items, k)."""
    P = rng.normal(0.0, init_std, size=(n_users, k)).astype(dtype)
    Q = rng.normal(0.0, init_std, size=(n_items, k)).astype(dtype)
    return P, Q


def epoch_order(rng: np.random.Generator, n: int, shuffle: bool) -> np.ndarray:
    """The visiting order of one epoch: a fresh permutation, or 0..n-1 when not shuffling."""
    if shuffle:
        return rng.permutation(n).astype(np.int64, copy=False)
    return np.arange(n, dtype=np.int64)
