"""LibMF-style blocked SGD: ratings grouped into a B×B grid of (user-block, item-block) blocks.

Once per fit the ratings are copied into one compact layout (int32 user and item indices,
ratings in the factors' dtype) grouped block by block, in a seeded shuffled order inside each
block; this layout replaces the per-epoch permutation index. An epoch streams the blocks'
ratings sequentially, so a block's rows of P and Q stay in cache while it runs. Each rating
gets the reference update of :func:`reference.kernels._sgd_epoch`; only the visiting order
differs from a fresh permutation per epoch (blocks in a seeded random order, a fixed shuffled
order inside each block: a different but legitimate SGD sampling scheme, as in LibMF, Chin et
al. 2015). ``tests/test_blocked.py`` checks that, given the same visiting order, it equals the
reference kernel, and that the ML-100k test RMSE stays that of the serial reference.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from reference._jit import njit, njit_fast, njit_parallel, prefetch
from reference.fast import AHEAD, CACHE_LINE

# Bytes of P and Q rows one block may touch (half an L2 of 1–2 MiB), and the least grid side.
CACHE_BUDGET = 512 * 1024
MIN_BLOCKS = 8


def n_blocks_for(n_users: int, n_items: int, k: int, itemsize: int) -> int:
    """The grid side B: even, >= ``MIN_BLOCKS``, and small enough blocks that their rows fit
    ``CACHE_BUDGET``. It does not depend on the thread count, so results do not either."""
    B = math.ceil((n_users + n_items) * k * itemsize / CACHE_BUDGET)
    return max(MIN_BLOCKS, B + B % 2)


@njit
def _block_layout(users, items, ratings, perm, B, ub, ib, U, I, R, ptr):
    """Counting sort of the ratings, taken in ``perm`` order, into blocks; fills U, I, R, ptr.

    Block b = (u // ub)·B + i // ib holds positions ptr[b] … ptr[b+1]−1, in ``perm`` order.
    """
    for j in range(users.shape[0]):
        ptr[(users[j] // ub) * B + items[j] // ib + 1] += 1
    for b in range(B * B):
        ptr[b + 1] += ptr[b]
    fill = ptr[:-1].copy()
    for n in range(perm.shape[0]):
        j = perm[n]
        b = (users[j] // ub) * B + items[j] // ib
        pos = fill[b]
        fill[b] += 1
        U[pos] = users[j]
        I[pos] = items[j]
        R[pos] = ratings[j]


@njit_fast
def _sgd_run(U, I, R, start, stop, P, Q, bu, bi, mu, lr, reg, biased):
    """The reference rule over positions ``start:stop`` of the layout, in the factors' dtype.

    Per rating (u, i, r), as in :func:`reference.kernels._sgd_epoch`::

        e = r − (Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ))
        bᵤ ← bᵤ + lr·(e − reg·bᵤ);  bᵢ ← bᵢ + lr·(e − reg·bᵢ)      (``biased`` only)
        Pᵤ ← Pᵤ + lr·(e·Qᵢ − reg·Pᵤ);  Qᵢ ← Qᵢ + lr·(e·Pᵤ − reg·Qᵢ)  (Pᵤ from before)

    Returns Σ e² (pre-update errors).
    """
    k = P.shape[1]
    line = CACHE_LINE // P.itemsize
    sse = 0.0
    for n in range(start, stop):
        if n + AHEAD < stop:
            for c in range(0, k, line):
                prefetch(P, U[n + AHEAD] * k + c)
                prefetch(Q, I[n + AHEAD] * k + c)
        u = U[n]
        i = I[n]
        Pu = P[u]  # (k,) view
        Qi = Q[i]  # (k,) view
        dot = P.dtype.type(0)
        for f in range(k):
            dot += Pu[f] * Qi[f]
        if biased:
            err = R[n] - (mu + bu[u] + bi[i] + dot)
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
        else:
            err = R[n] - dot
        sse += np.float64(err) * np.float64(err)
        for f in range(k):
            p = Pu[f]
            q = Qi[f]
            Pu[f] = p + lr * (err * q - reg * p)
            Qi[f] = q + lr * (err * p - reg * q)
    return sse


@njit_fast
def _sgd_blocks_serial(U, I, R, ptr, rows, cols, steps, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """One serial epoch: for s in ``steps``, for a in 0…B−1, block (rows[a], cols[(a+s) % B]).

    Each step's B blocks share no user-block and no item-block. Writes each block's Σ e² into
    ``sse`` (B², block order) and returns their sum.
    """
    B = rows.shape[0]
    for s in steps:
        for a in range(B):
            b = rows[a] * B + cols[(a + s) % B]
            sse[b] = _sgd_run(U, I, R, ptr[b], ptr[b + 1], P, Q, bu, bi, mu, lr, reg, biased)
    return sse.sum()


@njit_parallel
def _sgd_blocks_parallel(U, I, R, ptr, rows, cols, steps, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """The epoch of :func:`_sgd_blocks_serial`, each step's B blocks spread over the threads.

    No races: the blocks of one step share no user-block and no item-block, so two threads
    never touch the same row of P or Q or the same bias, and a step ends (a barrier) before
    the next begins. Blocks of one step touch disjoint rows, so their updates commute: the
    result equals the serial epoch's bit for bit, whatever the thread count.
    """
    B = rows.shape[0]
    for s in steps:
        for a in numba.prange(B):
            b = rows[a] * B + cols[(a + s) % B]
            sse[b] = _sgd_run(U, I, R, ptr[b], ptr[b + 1], P, Q, bu, bi, mu, lr, reg, biased)
    return sse.sum()


class BlockedEpochs:
    """The blocked layout of one training set and the epoch function over it.

    Holds U, I (int32), R (factor dtype) and ptr (B²+1): the one index the fit keeps. Each call
    draws the epoch's block order (a seeded permutation of the user-blocks, the item-blocks and
    the steps; fixed when ``shuffle`` is false) and runs it on ``n_threads`` threads.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray,
        n_users: int,
        n_items: int,
        k: int,
        rng: np.random.Generator,
        shuffle: bool = True,
        n_threads: int = 1,
        n_blocks: int | None = None,
    ) -> None:
        dtype = ratings.dtype
        B = n_blocks or n_blocks_for(n_users, n_items, k, dtype.itemsize)
        n = ratings.shape[0]
        self.B, self.rng, self.shuffle = B, rng, shuffle
        self.ub, self.ib = -(-n_users // B), -(-n_items // B)  # rows per user-/item-block
        self.U = np.empty(n, dtype=np.int32)
        self.I = np.empty(n, dtype=np.int32)
        self.R = np.empty(n, dtype=dtype)
        self.ptr = np.zeros(B * B + 1, dtype=np.int64)
        perm = rng.permutation(n) if shuffle else np.arange(n)
        _block_layout(
            users, items, ratings, perm, B, self.ub, self.ib, self.U, self.I, self.R, self.ptr
        )
        self.sse = np.zeros(B * B)
        self.threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)

    def schedule(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This epoch's (rows, cols, steps): block (rows[a], cols[(a+s) % B]) for s, a."""
        if not self.shuffle:
            return (np.arange(self.B),) * 3
        return tuple(self.rng.permutation(self.B) for _ in range(3))

    def __call__(self, users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased) -> float:
        """One epoch (``users``, ``items``, ``ratings``, ``order`` unused: the layout replaces
        them); returns Σ e²."""
        args = (self.U, self.I, self.R, self.ptr, *self.schedule())
        hyper = (P, Q, bu, bi, mu, lr, reg, biased, self.sse)
        if self.threads == 1:
            return _sgd_blocks_serial(*args, *hyper)
        numba.set_num_threads(self.threads)
        return _sgd_blocks_parallel(*args, *hyper)
