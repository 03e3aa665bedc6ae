"""The per-sample SGD rule as a ``numba.cuda`` kernel: one thread per rating, Hogwild.

In the manner of cuMF_SGD, many GPU threads update P and Q at once without locks; each thread
walks a strided slice of the epoch's ``order``. Its logic runs on the CPU under
``NUMBA_ENABLE_CUDASIM=1`` (see ``tests/test_cuda_sim.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import cuda

from reference._jit import cuda_jit
from reference._validate import check_positive
from reference.mf import MatrixFactorization

RATINGS_PER_THREAD = 256


@lru_cache(maxsize=1)
def has_cuda() -> bool:
    """Whether Numba sees a CUDA device (or the simulator): the project's one ``HAS_CUDA``."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install reads as "no device"
        return False


@cuda_jit
def _sgd_epoch_cuda(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """Hogwild epoch: thread t applies the reference rule to order[t], order[t + T], …

    Per rating (u, i, r)::

        e = r − (Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ))
        bᵤ ← bᵤ + lr·(e − reg·bᵤ);  bᵢ ← bᵢ + lr·(e − reg·bᵢ)      (``biased`` only)
        Pᵤ ← Pᵤ + lr·(e·Qᵢ − reg·Pᵤ);  Qᵢ ← Qᵢ + lr·(e·Pᵤ − reg·Qᵢ)  (Pᵤ from before)

    Races as in :func:`reference.fast._sgd_epoch_hogwild` (concurrent threads may hit the same
    row); ``sse[0]`` gathers Σ e² by one atomic add per thread.
    """
    k = P.shape[1]
    acc = 0.0
    for n in range(cuda.grid(1), order.shape[0], cuda.gridsize(1)):
        j = order[n]
        u = users[j]
        i = items[j]
        dot = 0.0
        for f in range(k):
            dot += P[u, f] * Q[i, f]
        if biased:
            err = ratings[j] - (mu + bu[u] + bi[i] + dot)
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
        else:
            err = ratings[j] - dot
        acc += err * err
        for f in range(k):
            p = P[u, f]
            q = Q[i, f]
            P[u, f] = p + lr * (err * q - reg * p)
            Q[i, f] = q + lr * (err * p - reg * q)
    cuda.atomic.add(sse, 0, acc)


def default_blocks(n_ratings: int, threads: int) -> int:
    """Enough blocks that each thread walks >= RATINGS_PER_THREAD ratings (at most 256).

    Fewer concurrent threads than ratings keeps Hogwild's collisions (threads on the same row
    at once) rare on small data; large data fills the GPU.
    """
    return max(1, min(256, n_ratings // (threads * RATINGS_PER_THREAD)))


class CudaEpochs:
    """Ratings and factors resident on the GPU; each call runs one epoch for a host ``order``.

    The host arrays P, Q, bu, bi are refreshed in place after every epoch, so callbacks and the
    fitted model see the same values as on the CPU path.
    """

    def __init__(
        self, users, items, ratings, P, Q, bu, bi, blocks: int | None, threads: int
    ) -> None:
        self.host = (P, Q, bu, bi)
        self.data = [cuda.to_device(a) for a in (users, items, ratings)]
        self.factors = [cuda.to_device(a) for a in self.host]
        self.grid = (
            default_blocks(ratings.shape[0], threads) if blocks is None else blocks,
            threads,
        )

    def __call__(self, order: np.ndarray, mu, lr, reg, biased: bool) -> float:
        """One device epoch over a host ``order``; copies the factors back; returns Σ e²."""
        sse = self.run(cuda.to_device(order), mu, lr, reg, biased)
        for d, h in zip(self.factors, self.host, strict=True):
            d.copy_to_host(h)
        return sse

    def run(self, d_order, mu, lr, reg, biased: bool) -> float:
        """One epoch over an ``order`` already on the device; synchronises; returns Σ e²."""
        sse = cuda.to_device(np.zeros(1, dtype=np.float64))
        blocks, threads = self.grid
        _sgd_epoch_cuda[blocks, threads](
            *self.data, d_order, *self.factors, mu, lr, reg, biased, sse
        )
        cuda.synchronize()
        return float(sse.copy_to_host()[0])


class CudaMatrixFactorization(MatrixFactorization):
    """:class:`MatrixFactorization` trained by the ``numba.cuda`` Hogwild kernel.

    ``blocks × threads`` GPU threads share each epoch (``blocks=None``: see
    :func:`default_blocks`); the result varies with thread timing, like ``n_threads > 1``.
    """

    def __init__(self, *args, blocks: int | None = None, threads: int = 128, **kw) -> None:
        super().__init__(*args, **kw)
        if not has_cuda():
            raise ValueError("CudaMatrixFactorization needs a CUDA device; numba sees none")
        self.blocks = None if blocks is None else check_positive("blocks", blocks, integer=True)
        self.threads = check_positive("threads", threads, integer=True)

    def _epoch_kernel(self, u, i, r, P, Q, bu, bi):
        epochs = CudaEpochs(u, i, r, P, Q, bu, bi, self.blocks, self.threads)

        def sgd_epoch(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased):
            return epochs(order, mu, lr, reg, biased)

        return sgd_epoch
