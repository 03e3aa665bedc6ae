"""LibMF-style blocked SGD: ratings grouped into a B×B grid of (user-block, item-block) blocks.

Once per fit the ratings are copied into one compact layout (int32 user and item indices,
ratings in the factors' dtype) grouped block by block, in a seeded shuffled order inside each
block (Fisher–Yates driven by one seeded uniform draw per rating); this layout replaces the
per-epoch permutation index. User-blocks (and item-blocks) are
id ranges cut to hold about equal numbers of ratings. An epoch streams the blocks' ratings
sequentially, so a block's rows of P and Q stay in cache while it runs.

Each rating gets the reference update of :func:`mfrec.reference.kernels._sgd_epoch`; only the
visiting order differs from a fresh permutation per epoch: the blocks in a seeded random order
drawn each epoch (random labels for the user- and item-blocks, and a random step order), and a
fixed shuffled order inside each block. That is a different but legitimate SGD sampling scheme
(LibMF's, Chin et al. 2015). Threads (LibMF-style scheduling): the grid is cut into G×G
super-blocks and each step runs G super-blocks that share no user-block and no item-block, one
per thread, so there are no races on P, Q or the biases at all: every run is reproducible, and
the threaded epoch equals the serial epoch of the same grid bit for bit. G = max(2, n_threads),
so one and two threads give the same result; more threads cut a different grid (G changes, and
with it the block order), so a run with 4 threads is reproducible but not equal to one with 2.
``tests/test_blocked.py`` checks that, given the same visiting
order, it equals the reference kernel, and that the ML-100k test RMSE stays within 0.003 of the
exact reference's.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mfrec._internal import njit, njit_fast, njit_parallel
from mfrec.reference.kernels import _biased_error_step, _dot

# Bytes of P and Q rows one block may touch (about one core's L2), and the least grid side. On
# the 10M benchmark, B = 8…40 measured within noise of each other (B = 20 from this budget).
CACHE_BUDGET = 1024 * 1024
MIN_BLOCKS = 8


def n_blocks_for(n_users: int, n_items: int, k: int, itemsize: int, G: int) -> int:
    """The grid side B: a multiple of ``G``, >= ``MIN_BLOCKS``, and small enough blocks that
    their rows of P and Q fit ``CACHE_BUDGET``."""
    B = max(MIN_BLOCKS, math.ceil((n_users + n_items) * k * itemsize / CACHE_BUDGET))
    return -(-B // G) * G


@njit
def _block_layout(users, items, ratings, B, user_block, item_block, U, I, R, ptr):
    """Stable counting sort of the ratings into blocks; fills U, I, R and ptr.

    Block b = user_block[u]·B + item_block[i] holds positions ptr[b] … ptr[b+1]−1, in input
    order. Reads the input sequentially (a permutation first would make every read a miss).
    """
    for j in range(users.shape[0]):
        ptr[user_block[users[j]] * B + item_block[items[j]] + 1] += 1
    for b in range(B * B):
        ptr[b + 1] += ptr[b]
    fill = ptr[:-1].copy()
    for j in range(users.shape[0]):
        b = user_block[users[j]] * B + item_block[items[j]]
        pos = fill[b]
        fill[b] += 1
        U[pos] = users[j]
        I[pos] = items[j]
        R[pos] = ratings[j]


@njit
def _shuffle_blocks(ptr, draws, U, I, R):
    """Shuffles each block of the layout in place (Fisher–Yates, driven by ``draws``).

    For block positions t = m−1 … 1 (m ratings, from ``ptr[b]``): swap t with
    j = ⌊draws[ptr[b] + t]·(t + 1)⌋ (at most t), where ``draws`` holds one uniform draw in
    [0, 1) per rating. One pass; a block's ratings are in cache.
    """
    for b in range(ptr.shape[0] - 1):
        start = ptr[b]
        for t in range(ptr[b + 1] - start - 1, 0, -1):
            j = start + min(int(draws[start + t] * (t + 1)), t)
            x = start + t
            U[x], U[j] = U[j], U[x]
            I[x], I[j] = I[j], I[x]
            R[x], R[j] = R[j], R[x]


@njit_fast
def _sgd_run(U, I, R, start, stop, P, Q, bu, bi, mu, lr, reg, biased):
    """The reference rule over positions ``start:stop`` of the layout, in the factors' dtype.

    Per rating (u, i, r), the rule of :func:`mfrec.reference.kernels._sgd_epoch`: e and the bias
    step from its inlined pieces (here with the fast-math flags, Pᵤ·Qᵢ summed in the factors'
    dtype), then the factor step, written out here as Pᵤ − (lr·reg)·Pᵤ + (lr·e)·Qᵢ (Qᵢ
    likewise), with lr·reg and lr·e formed once per rating: two FMAs per element (see
    ``inspect_asm()``) instead of three operations, equal to the rule up to rounding; measured
    about 10% fewer ns per update (ML-100k, k=100 float64, epochs interleaved with the
    three-operation form on a 2-core AMD EPYC VM).
    Returns Σ e² (pre-update errors).

    No software prefetch (unlike :mod:`mfrec.reference.fast`): a block's rows are in L2 already,
    and prefetching them measured 10–20% slower. The pieces are inlined, not called: a shared
    plain ``@njit`` step function measured 19.6M against 32.7M updates/s on the 10M benchmark.
    """
    k = P.shape[1]
    lr_reg = lr * reg
    sse = 0.0
    for n in range(start, stop):
        u = U[n]
        i = I[n]
        dot = _dot(P[u], Q[i], P.dtype.type(0))
        err = _biased_error_step(R[n], dot, bu, bi, mu, u, i, lr, reg) if biased else R[n] - dot
        sse += np.float64(err) * np.float64(err)
        Pu = P[u]  # (k,) view
        Qi = Q[i]  # (k,) view
        step = lr * err
        for f in range(k):
            p = Pu[f]
            q = Qi[f]
            Pu[f] = p - lr_reg * p + step * q
            Qi[f] = q - lr_reg * q + step * p
    return sse


@njit_fast
def _sgd_superblock(U, I, R, ptr, rows, cols, a, c, m, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """Super-block (a, c): blocks (rows[a·m + x], cols[c·m + y]) for x, then y, in 0…m−1.

    Writes each block's Σ e² into ``sse`` (B², by block index).
    """
    B = rows.shape[0]
    for x in range(m):
        for y in range(m):
            b = rows[a * m + x] * B + cols[c * m + y]
            sse[b] = _sgd_run(U, I, R, ptr[b], ptr[b + 1], P, Q, bu, bi, mu, lr, reg, biased)


@njit_fast
def _sgd_blocks_serial(U, I, R, ptr, rows, cols, steps, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """One serial epoch: for s in ``steps``, for a in 0…G−1, super-block (a, (a + s) mod G).

    The B×B grid is cut into G×G super-blocks of m×m blocks (m = B / G, G = len(steps)); the G
    super-blocks of one step share no user-block and no item-block. Each block's Σ e² goes
    to ``sse`` (B², by block index), summed by the caller in one fixed order.
    """
    G = steps.shape[0]
    m = rows.shape[0] // G
    for s in steps:
        for a in range(G):
            c = (a + s) % G
            _sgd_superblock(
                U, I, R, ptr, rows, cols, a, c, m, P, Q, bu, bi, mu, lr, reg, biased, sse
            )


@njit_parallel
def _sgd_blocks_parallel(U, I, R, ptr, rows, cols, steps, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """The epoch of :func:`_sgd_blocks_serial`, each step's G super-blocks run on G threads.

    No races: the super-blocks of one step share no user-block and no item-block, so two
    threads never touch the same row of P or Q or the same bias, and a step ends (a barrier)
    before the next begins. Updates of disjoint rows commute, so the result equals the serial
    epoch's bit for bit.
    """
    G = steps.shape[0]
    m = rows.shape[0] // G
    for s in steps:
        for a in numba.prange(G):
            c = (a + s) % G
            _sgd_superblock(
                U, I, R, ptr, rows, cols, a, c, m, P, Q, bu, bi, mu, lr, reg, biased, sse
            )


def balanced_blocks(index: np.ndarray, n: int, B: int) -> np.ndarray:
    """Block (0…B−1) of each of the ``n`` users (or items): contiguous id ranges cut where the
    running count of their ratings passes each B-th of the total, so blocks hold about equal
    numbers of ratings (even work per thread) and a block's rows stay close in memory.
    """
    counts = np.bincount(index, minlength=n)  # (n,) ratings of each id
    before = np.cumsum(counts) - counts
    return np.minimum(before * B // max(int(counts.sum()), 1), B - 1)


class BlockedEpochs:
    """The blocked layout of one training set and the epoch function over it.

    Holds U, I (int32), R (factor dtype) and ptr (B²+1): the one index the fit keeps. Each call
    draws the epoch's block order (a seeded permutation of the user-blocks, the item-blocks and
    the G steps; fixed when ``shuffle`` is false) and runs it on ``n_threads`` threads, one per
    super-block of a step. G = max(2, n_threads), so one and two threads give equal results.
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
        self.threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)  # pyright: ignore[reportPrivateImportUsage, reportAttributeAccessIssue]
        G = max(2, n_threads)
        B = n_blocks or n_blocks_for(n_users, n_items, k, dtype.itemsize, G)
        if B % G:
            raise ValueError(f"n_blocks={B} must be a multiple of max(2, n_threads)={G}")
        if max(n_users, n_items) >= 2**31:
            raise ValueError(f"blocked kernel indexes rows with int32: {n_users=}, {n_items=}")
        n = ratings.shape[0]
        self.B, self.G, self.rng, self.shuffle = B, G, rng, shuffle
        self.U = np.empty(n, dtype=np.int32)
        self.I = np.empty(n, dtype=np.int32)
        self.R = np.empty(n, dtype=dtype)
        self.ptr = np.zeros(B * B + 1, dtype=np.int64)
        self.user_block = balanced_blocks(users, n_users, B)
        self.item_block = balanced_blocks(items, n_items, B)
        _block_layout(
            users,
            items,
            ratings,
            B,
            self.user_block,
            self.item_block,
            self.U,
            self.I,
            self.R,
            self.ptr,
        )
        if shuffle:  # one uniform draw per rating drives a Fisher–Yates shuffle of each block
            _shuffle_blocks(self.ptr, rng.random(n), self.U, self.I, self.R)
        self.sse = np.zeros(B * B)

    def schedule(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This epoch's (rows, cols, steps): user-block and item-block labels, step order."""
        if not self.shuffle:
            return np.arange(self.B), np.arange(self.B), np.arange(self.G)
        return (
            self.rng.permutation(self.B),
            self.rng.permutation(self.B),
            self.rng.permutation(self.G),
        )

    def __call__(self, P, Q, bu, bi, mu, lr, reg, biased) -> float:
        """One epoch over the layout in this epoch's block order; returns Σ e²."""
        args = (self.U, self.I, self.R, self.ptr, *self.schedule())
        hyper = (P, Q, bu, bi, mu, lr, reg, biased, self.sse)
        if self.threads == 1:
            _sgd_blocks_serial(*args, *hyper)
        else:
            numba.set_num_threads(self.threads)
            _sgd_blocks_parallel(*args, *hyper)
        return float(self.sse.sum())
