"""Slide steps 3 and 4: random init of P and Q, and the order in which ratings are visited.

Both implementations draw from one ``numpy.random.default_rng(seed)`` in the same sequence
(P, then Q, then one permutation per epoch), which is what makes them comparable step for step.
"""

from __future__ import annotations

import math

import numpy as np

from mfrec._internal import check_memory


def init_factors(
    rng: np.random.Generator, n_users: int, n_items: int, k: int, init_std: float, dtype
) -> tuple[np.ndarray, np.ndarray]:
    """P ~ N(0, init_std²) of shape (n_users, k), then Q ~ N(0, init_std²) of shape (n_items, k).

    Both start on a cache line (:func:`aligned_empty`), which the SGD kernels run faster on.
    A pair that (with the float64 draw it is filled from) would not fit in the memory
    available is refused before anything is allocated (``mfrec._internal.ResourceError``).
    """
    draw = max(n_users, n_items) * k * 8
    check_memory(f"P and Q ({n_users} + {n_items} rows x {k} factors)",
                 (n_users + n_items) * k * np.dtype(dtype).itemsize + draw)  # fmt: skip
    P = aligned_empty((n_users, k), dtype)
    P[...] = rng.normal(0.0, init_std, size=(n_users, k))
    Q = aligned_empty((n_items, k), dtype)
    Q[...] = rng.normal(0.0, init_std, size=(n_items, k))
    return P, Q


def aligned_empty(shape: tuple[int, ...], dtype, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary.

    NumPy promises only 16 bytes (large buffers here start 16 bytes past a line), so a row's
    SIMD loads and stores straddle cache lines: measured 10–20% slower blocked-kernel epochs
    (ML-100k, k=100 float64, on a 2-core AMD EPYC VM).
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + align, dtype=np.uint8)
    start = -buf.ctypes.data % align
    return buf[start : start + nbytes].view(dtype).reshape(shape)


def epoch_order(rng: np.random.Generator, n: int, shuffle: bool) -> np.ndarray:
    """The visiting order of one epoch: a fresh permutation, or 0..n-1 when not shuffling."""
    if shuffle:
        return rng.permutation(n).astype(np.int64, copy=False)
    return np.arange(n, dtype=np.int64)


def walk_step(rng: np.random.Generator, n: int) -> tuple[int, int]:
    """(a, b) for an epoch's walk t ↦ (a·t + b) mod n over positions 0..n-1: a in [1, n) with
    gcd(a, n) = 1, so the walk is a permutation, and b in [0, n). (1, 0) when n <= 2.

    The GPU kernels walk one permutation this way each epoch (``order="device"``): a new order
    per epoch with no host permutation or copy.
    """
    if n <= 2:
        return 1, 0
    while True:
        a = int(rng.integers(1, n))
        if math.gcd(a, n) == 1:
            return a, int(rng.integers(n))


WALK_ORDERS = ("host", "device")
"""Where a GPU fit's epoch orders come from: ``"host"`` permutations or ``"device"`` walks."""


class EpochWalks:
    """Each epoch's walk (order, a, b), visiting positions t ↦ order[(a·t + b) mod n], all drawn
    from the fit's generator ``rng`` (so a callback, ``eval_set`` or ``tol`` changes nothing).

    ``where="host"``: a fresh :func:`epoch_order` per epoch (the reference's stream), a = 1,
    b = 0. ``where="device"``: one permutation π drawn now, then a fresh (a, b) per epoch
    (:func:`walk_step`; (1, 0) without ``shuffle``). ``put(order)`` places an order where the
    kernel reads it (e.g. copies it into one device buffer) and returns what the kernel takes,
    so only one epoch's order exists at a time.
    """

    def __init__(self, rng: np.random.Generator, n: int, shuffle: bool, where: str, put) -> None:
        if where not in WALK_ORDERS:
            raise ValueError(f"order must be one of {WALK_ORDERS}, got {where!r}")
        self.rng, self.n, self.shuffle, self.where, self.put = rng, n, shuffle, where, put
        self.walked = put(epoch_order(rng, n, shuffle)) if where == "device" else None

    def __call__(self) -> tuple:
        """The next epoch's (order as ``put`` returned it, a, b)."""
        if self.walked is None:
            return self.put(epoch_order(self.rng, self.n, self.shuffle)), 1, 0
        a, b = walk_step(self.rng, self.n) if self.shuffle else (1, 0)
        return self.walked, a, b
