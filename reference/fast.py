"""Fast SGD kernels: the reference rule with vectorised arithmetic, prefetching and threads.

:func:`mfrec.reference.kernels._sgd_epoch` stays the exact reference. These kernels apply the same
update, in the same visiting order, to the same arrays, but let LLVM reassociate the dot product
(SIMD lanes, FMA) and compute in the factors' own dtype (float32 stays float32), so they agree
with the reference to rounding, not bit for bit. ``tests/test_fast_kernels.py`` states the
tolerances.
"""

from __future__ import annotations

import numba
import numpy as np

from mfrec._internal import njit_fast, njit_parallel, prefetch
from mfrec.reference.kernels import _biased_error_step, _dot, _factor_step, _sgd_epoch
from mfrec.reference.sampling import epoch_order

# How many ratings ahead the kernel prefetches a rating's rows of P, Q (and, twice as far
# ahead, its (u, i, r) entries): enough to cover a cache miss at one rating per ~50 ns.
AHEAD = 16
CACHE_LINE = 64


@njit_fast
def _sgd_span(users, items, ratings, order, start, stop, P, Q, bu, bi, mu, lr, reg, biased):
    """The reference rule over ``order[start:stop]`` in the factors' dtype; returns Σ e².

    Per rating (u, i, r), the rule of :func:`mfrec.reference.kernels._sgd_epoch` from its
    inlined pieces, here compiled with the fast-math flags and Pᵤ·Qᵢ summed in the factors'
    dtype.
    """
    k = P.shape[1]
    line = CACHE_LINE // P.itemsize
    sse = 0.0
    for n in range(start, stop):
        if n + 2 * AHEAD < stop:
            jj = order[n + 2 * AHEAD]
            prefetch(users, jj)
            prefetch(items, jj)
            prefetch(ratings, jj)
        if n + AHEAD < stop:
            jj = order[n + AHEAD]
            for c in range(0, k, line):
                prefetch(P, users[jj] * k + c)
                prefetch(Q, items[jj] * k + c)
        j = order[n]
        u = users[j]
        i = items[j]
        dot = _dot(P[u], Q[i], P.dtype.type(0))
        r = ratings[j]
        err = _biased_error_step(r, dot, bu, bi, mu, u, i, lr, reg) if biased else r - dot
        sse += np.float64(err) * np.float64(err)
        _factor_step(P[u], Q[i], err, lr, reg)
    return sse


@njit_fast
def _sgd_epoch_fast(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased):
    """One serial epoch of the reference rule (see :func:`_sgd_span`); returns Σ e²."""
    n = order.shape[0]
    return _sgd_span(users, items, ratings, order, 0, n, P, Q, bu, bi, mu, lr, reg, biased)


@njit_parallel
def _sgd_epoch_hogwild(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased, n_threads):
    """One Hogwild epoch: ``order`` cut into ``n_threads`` spans run at once, without locks.

    Each thread applies the reference rule to its span (see :func:`_sgd_span`). Races: two
    threads may read and write the same row Pᵤ, Qᵢ or bias at the same moment, so one update
    can read a half-updated row or overwrite another's step to it (each float is written
    whole; there is no torn value). Acceptable as in Hogwild! (Niu et al., 2011): a rating
    touches 2 of ~10⁴–10⁵ rows, so collisions are rare, each lost step is one small SGD step,
    and SGD converges under such bounded noise; the tests check the test RMSE stays that of
    the serial kernel. Returns Σ e² over all spans.
    """
    n = order.shape[0]
    sse = np.zeros(n_threads)
    for t in numba.prange(n_threads):
        start = t * n // n_threads
        stop = (t + 1) * n // n_threads
        sse[t] = _sgd_span(
            users, items, ratings, order, start, stop, P, Q, bu, bi, mu, lr, reg, biased
        )
    return sse.sum()


class OrderedEpochs:
    """Epochs of the ``"exact"``, ``"fast"`` or ``"hogwild"`` kernel over a fresh order each.

    Each call draws the epoch's visiting order from ``rng`` (a seeded permutation; the input
    order when ``shuffle`` is false) and runs the kernel over it: ``"exact"`` the reference
    :func:`mfrec.reference.kernels._sgd_epoch`, ``"fast"`` :func:`_sgd_epoch_fast`,
    ``"hogwild"`` :func:`_sgd_epoch_hogwild` on ``n_threads`` threads (capped at Numba's pool).
    """

    def __init__(
        self,
        kernel: str,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray,
        rng: np.random.Generator,
        shuffle: bool = True,
        n_threads: int = 1,
    ) -> None:
        if kernel not in ("exact", "fast", "hogwild"):
            raise ValueError(f"kernel must be 'exact', 'fast' or 'hogwild', got {kernel!r}")
        if kernel != "hogwild" and n_threads != 1:
            raise ValueError(f"kernel={kernel!r} runs on one thread, got {n_threads=}")
        self.kernel = kernel
        self.users, self.items, self.ratings = users, items, ratings
        self.rng, self.shuffle = rng, shuffle
        self.threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)  # pyright: ignore[reportPrivateImportUsage, reportAttributeAccessIssue]

    def __call__(self, P, Q, bu, bi, mu, lr, reg, biased) -> float:
        """One epoch in a freshly drawn order; returns Σ e² (pre-update errors)."""
        order = epoch_order(self.rng, self.ratings.shape[0], self.shuffle)
        return self.run(order, P, Q, bu, bi, mu, lr, reg, biased)

    def run(self, order, P, Q, bu, bi, mu, lr, reg, biased) -> float:
        """One epoch in the given ``order`` (benchmarks time this with a fixed order)."""
        data = (self.users, self.items, self.ratings, order, P, Q, bu, bi, mu, lr, reg, biased)
        if self.kernel == "exact":
            return _sgd_epoch(*data)
        if self.kernel == "fast":
            return _sgd_epoch_fast(*data)
        numba.set_num_threads(self.threads)
        return _sgd_epoch_hogwild(*data, self.threads)
