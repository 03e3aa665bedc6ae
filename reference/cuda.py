"""The per-sample SGD rule as ``numba.cuda`` kernels, Hogwild across GPU threads.

In the manner of cuMF_SGD, many GPU workers update P and Q at once without locks; each worker
walks a strided slice of the epoch's ``order``. Two layouts: ``lanes=1``, one thread per
rating (:func:`_sgd_epoch_cuda`); ``lanes=32``, one warp per rating (:func:`_sgd_epoch_cuda_warp`,
cuMF_SGD's: the 32 lanes read a row together, so loads coalesce). Their logic runs on the CPU
under ``NUMBA_ENABLE_CUDASIM=1`` (see ``tests/test_gpu.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from mfrec.reference.mf import MatrixFactorization
from mfrec.reference.sampling import epoch_order
from numba import config, cuda

from mfrec._internal import check_positive, cuda_device, cuda_jit

RATINGS_PER_THREAD = 256  # the least ratings each worker (thread or warp) walks per epoch
MAX_BLOCKS = 2048  # about 16 blocks on each of an H100's or H200's 132 multiprocessors
WARP = 32
MAX_THREADS = 1024  # CUDA's most threads per block (and the simulator's warp-sum scratch)


@lru_cache(maxsize=1)
def has_cuda() -> bool:
    """Whether Numba sees a CUDA device (or the simulator): the project's one ``HAS_CUDA``."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install reads as "no device"
        return False


FULL_MASK = 0xFFFFFFFF  # every lane of a warp takes part in the shuffles

if config.ENABLE_CUDASIM:
    # The simulator has no warp shuffles: the same sum through shared memory and block
    # barriers (the kernel's loop is uniform across the block, so every thread meets them).
    # Its memory is coherent: plain reads.

    def _read(a, index):
        """``a[index]``, as the latest value any thread wrote."""
        return a[index]

    def _warp_sum(x: float) -> float:
        """Σ of ``x`` over the 32 lanes of the calling warp, returned to every lane."""
        partial = cuda.shared.array(MAX_THREADS, dtype=np.float64)
        t = cuda.threadIdx.x
        lane = t % WARP
        partial[t] = x
        cuda.syncthreads()
        s = WARP // 2
        while s > 0:
            if lane < s:
                partial[t] += partial[t + s]
            cuda.syncthreads()
            s //= 2
        total = partial[t - lane]
        cuda.syncthreads()
        return total

    def _warp_sync() -> None:
        """All lanes of the warp reach this point before any goes on."""
        cuda.syncthreads()

else:

    @cuda_device
    def _read(a, index):
        """``a[index]`` as held in L2, past this multiprocessor's L1: an atomic add of 0 (every
        numba has it; a cache-hinted ``ld.global.cg`` would be cheaper where numba offers one)."""
        return cuda.atomic.add(a, index, 0)

    @cuda_device
    def _warp_sum(x):
        """Σ of ``x`` over the 32 lanes of the calling warp, returned to every lane (butterfly
        of ``shfl_xor``)."""
        s = WARP // 2
        while s > 0:
            x += cuda.shfl_xor_sync(FULL_MASK, x, s)
            s //= 2
        return x

    @cuda_device
    def _warp_sync():
        """All lanes of the warp reach this point before any goes on."""
        cuda.syncwarp(FULL_MASK)


@cuda_jit
def _sgd_epoch_cuda(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """Hogwild epoch: thread t applies the reference rule to order[t], order[t + T], …

    Per rating (u, i, r)::

        e = r − (Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ))
        bᵤ ← bᵤ + lr·(e − reg·bᵤ);  bᵢ ← bᵢ + lr·(e − reg·bᵢ)      (``biased`` only)
        Pᵤ ← Pᵤ + lr·(e·Qᵢ − reg·Pᵤ);  Qᵢ ← Qᵢ + lr·(e·Pᵤ − reg·Qᵢ)  (Pᵤ from before)

    Factors and biases are read from L2 (:func:`_read`) and changed by atomic adds of the step:
    in one launch the multiprocessors' L1 caches are not kept coherent (PTX ISA, "Cache
    Operators": a default ``ld.ca`` "may get stale L1 cache data"), so a plain load can return
    a row another multiprocessor changed long ago and a plain store then undoes that change.
    Races left (Hogwild, as in :func:`mfrec.reference.fast._sgd_epoch_hogwild`): threads on the same
    row at once each compute their step from the value before the other's; no step is lost.
    Alone (one thread) it is the reference, bit for bit. ``sse[0]`` gathers Σ e² by one atomic
    add per thread.
    """
    k = P.shape[1]
    acc = 0.0
    for n in range(cuda.grid(1), order.shape[0], cuda.gridsize(1)):
        j = order[n]
        u = users[j]
        i = items[j]
        dot = 0.0
        for f in range(k):
            dot += _read(P, (u, f)) * _read(Q, (i, f))
        if biased:
            b_u = _read(bu, u)
            b_i = _read(bi, i)
            err = ratings[j] - (mu + b_u + b_i + dot)
            cuda.atomic.add(bu, u, lr * (err - reg * b_u))
            cuda.atomic.add(bi, i, lr * (err - reg * b_i))
        else:
            err = ratings[j] - dot
        acc += err * err
        for f in range(k):
            p = _read(P, (u, f))
            q = _read(Q, (i, f))
            cuda.atomic.add(P, (u, f), lr * (err * q - reg * p))
            cuda.atomic.add(Q, (i, f), lr * (err * p - reg * q))
    cuda.atomic.add(sse, 0, acc)


@cuda_jit
def _sgd_epoch_cuda_warp(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """Hogwild epoch, one warp per rating: warp w of the grid takes order[w], order[w + W], …

    Lane l of the warp owns features f = l, l + 32, …: the lanes read Pᵤ and Qᵢ together, sum
    their partial dot products by warp shuffles, and each applies the reference rule to its
    own features::

        e = r − (Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ))
        bᵤ ← bᵤ + lr·(e − reg·bᵤ);  bᵢ ← bᵢ + lr·(e − reg·bᵢ)      (``biased`` only; lane 0)
        Pᵤf ← Pᵤf + lr·(e·Qᵢf − reg·Pᵤf);  Qᵢf ← Qᵢf + lr·(e·Pᵤf − reg·Qᵢf)  (Pᵤf from before)

    No race inside a warp: each lane changes only its own features, and a warp barrier
    separates every lane's reads of bᵤ, bᵢ from lane 0's update. Between warps, Hogwild races;
    reads from L2 and atomic adds of each step, as in :func:`_sgd_epoch_cuda`. A block's warps
    step through their ratings together (the simulator's stand-in for the shuffles needs
    that); ``sse[0]`` gathers Σ e².
    """
    g = cuda.grid(1)
    lane = g % WARP
    warps = cuda.blockDim.x // WARP  # warps per block
    w = g // WARP  # this warp in the grid
    k = P.shape[1]
    n = order.shape[0]
    acc = 0.0
    for base in range(w - w % warps, n, cuda.gridsize(1) // WARP):
        j = base + w % warps
        active = j < n
        u = 0
        i = 0
        dot = 0.0
        if active:
            u = users[order[j]]
            i = items[order[j]]
            for f in range(lane, k, WARP):
                dot += _read(P, (u, f)) * _read(Q, (i, f))
        r_hat = _warp_sum(dot)
        err = 0.0
        b_u = 0.0
        b_i = 0.0
        if active:
            if biased:
                b_u = _read(bu, u)
                b_i = _read(bi, i)
                r_hat += mu + b_u + b_i
            err = ratings[order[j]] - r_hat
        _warp_sync()  # every lane has read bᵤ, bᵢ before lane 0 writes them
        if active:
            if biased and lane == 0:
                cuda.atomic.add(bu, u, lr * (err - reg * b_u))
                cuda.atomic.add(bi, i, lr * (err - reg * b_i))
            for f in range(lane, k, WARP):
                p = _read(P, (u, f))
                q = _read(Q, (i, f))
                cuda.atomic.add(P, (u, f), lr * (err * q - reg * p))
                cuda.atomic.add(Q, (i, f), lr * (err * p - reg * q))
            if lane == 0:
                acc += err * err
    if lane == 0:
        cuda.atomic.add(sse, 0, acc)


KERNELS = {1: _sgd_epoch_cuda, WARP: _sgd_epoch_cuda_warp}


def default_blocks(n_ratings: int, threads: int, lanes: int = 1) -> int:
    """Enough blocks that each worker (``lanes`` threads) walks >= RATINGS_PER_THREAD ratings,
    at most MAX_BLOCKS.

    Fewer concurrent workers than ratings keeps Hogwild's collisions (workers on the same row
    at once) rare on small data; large data fills the GPU.
    """
    workers = threads // lanes
    return max(1, min(MAX_BLOCKS, n_ratings // (workers * RATINGS_PER_THREAD)))


class CudaEpochs:
    """Ratings and factors resident on the GPU; each call runs one epoch for a host ``order``.

    The host arrays P, Q, bu, bi are refreshed in place after every epoch, so callbacks and the
    fitted model see the same values as on the CPU path.
    """

    def __init__(
        self,
        users,
        items,
        ratings,
        P,
        Q,
        bu,
        bi,
        blocks: int | None,
        threads: int,
        lanes: int = 1,
    ) -> None:
        self.host = (P, Q, bu, bi)
        self.data = [cuda.to_device(a) for a in (users, items, ratings)]
        self.factors = [cuda.to_device(a) for a in self.host]
        self.kernel = KERNELS[lanes]
        self.grid = (
            default_blocks(ratings.shape[0], threads, lanes) if blocks is None else blocks,
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
        self.kernel[blocks, threads](*self.data, d_order, *self.factors, mu, lr, reg, biased, sse)
        cuda.synchronize()
        return float(sse.copy_to_host()[0])


class CudaMatrixFactorization(MatrixFactorization):
    """:class:`MatrixFactorization` trained by the ``numba.cuda`` Hogwild kernel.

    ``blocks × threads`` GPU threads share each epoch (``blocks=None``: see
    :func:`default_blocks`), ``lanes`` threads per rating (1: a thread, 32: a warp); the result
    varies with thread timing, like ``n_threads > 1``.
    """

    def __init__(
        self, *args, blocks: int | None = None, threads: int = 128, lanes: int = 1, **kw
    ) -> None:
        super().__init__(*args, **kw)
        if not has_cuda():
            raise ValueError("CudaMatrixFactorization needs a CUDA device; numba sees none")
        self.blocks = None if blocks is None else check_positive("blocks", blocks, integer=True)
        self.threads = check_positive("threads", threads, integer=True)
        if lanes not in KERNELS:
            raise ValueError(f"lanes must be 1 (thread per rating) or 32 (warp), got {lanes!r}")
        if threads % lanes or threads > MAX_THREADS:
            raise ValueError(
                f"threads={threads} must be a multiple of lanes={lanes} and <= {MAX_THREADS}"
            )
        self.lanes = lanes

    def _runs_on(self) -> str:
        per = "a warp" if self.lanes == 32 else "a thread"
        return f"numba.cuda Hogwild, {per} per rating"

    def _epoch_runner(self, u, i, r, rng):
        """Epochs on the GPU, each in a fresh order drawn from ``rng`` (as the CPU kernels)."""
        host = (self.P, self.Q, self.bu, self.bi)
        epochs = CudaEpochs(u, i, r, *host, self.blocks, self.threads, self.lanes)

        def run_epoch(P, Q, bu, bi, mu, lr, reg, biased):
            return epochs(epoch_order(rng, r.shape[0], self.shuffle), mu, lr, reg, biased)

        return run_epoch
