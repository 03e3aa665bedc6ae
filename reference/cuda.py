"""The per-sample SGD rule as ``numba.cuda`` kernels, Hogwild across GPU threads.

In the manner of cuMF_SGD, many GPU workers update P and Q at once without locks or atomics;
each worker walks a strided slice of the epoch's order. Two layouts: ``lanes=1``, one thread per
rating (:func:`_sgd_epoch_cuda`); ``lanes=32``, one warp per rating (:func:`_sgd_epoch_cuda_warp`,
cuMF_SGD's: the 32 lanes read a row together, so loads coalesce).

Memory: every read of P, Q, bᵤ, bᵢ is ``ld.global.cg`` (:func:`_load`, ``cuda.ldcg``) and every
write ``st.global.cg`` (:func:`_store`, ``cuda.stcg``): both go to L2, which all multiprocessors
share, never to a multiprocessor's L1, which is not kept coherent within a launch (PTX ISA,
"Cache Operators": a default ``ld.ca`` "may get stale L1 cache data"). A plain load could return
a row another multiprocessor changed long ago, and the store after it would undo all those steps
(on an H200 that drove a fit to RMSE 1.97 where the serial rule reaches 0.04).

Races that remain (Hogwild, as :func:`mfrec.reference.fast._sgd_epoch_hogwild` on the CPU): two
workers on the same row at the same moment both read it before either writes, and the later
store wins, losing the other's step for that row. A rating's read-to-write window is a few
hundred nanoseconds, so this needs two of the few thousand ratings in flight to share a user or
an item; on MovieLens-like data that is rare, and SGD tolerates the lost step as it tolerates
noise (``tests/test_gpu.py`` bounds the cost with a CPU model at the GPU test's concurrency).
Inside a warp there is no race: each lane owns its features, and a warp barrier separates every
lane's read of bᵤ, bᵢ from lane 0's write.

Orders: ``order="host"`` visits each epoch's permutation drawn from the fit's generator (the
reference's stream: one worker is the reference, bit for bit); ``order="device"`` draws one
permutation π once and walks epoch e as t ↦ π[(aₑ·t + bₑ) mod n] with aₑ coprime to n, so an
epoch needs no host work or copy. Both draw from the fit's generator
(:class:`~mfrec.reference.sampling.EpochWalks`); :meth:`CudaRunner.run_all` runs all epochs
back to back on the device and synchronises once. The logic runs on the CPU under
``NUMBA_ENABLE_CUDASIM=1`` (see ``tests/test_gpu.py``), where :func:`_load`/:func:`_store`
index plainly.
"""

from __future__ import annotations

import numpy as np
from numba import config, cuda

from mfrec import devices
from mfrec._internal import check_positive, cuda_device, cuda_jit
from mfrec.reference.mf import MatrixFactorization
from mfrec.reference.sampling import WALK_ORDERS, EpochWalks

RATINGS_PER_WORKER = 256  # the least ratings each worker (thread or warp) walks per epoch
BLOCKS_PER_SM = 8  # resident blocks per multiprocessor that the default grid aims at
FALLBACK_SMS = 132  # an H100's or H200's multiprocessors, when the device cannot be asked
WARP = 32
MAX_THREADS = 1024  # CUDA's most threads per block (and the simulator's warp-sum scratch)

FULL_MASK = 0xFFFFFFFF  # every lane of a warp takes part in the shuffles

if config.ENABLE_CUDASIM:
    # The simulator has no warp shuffles and no cache-hinted loads: the same sum through shared
    # memory and block barriers (the kernel's loop is uniform across the block, so every thread
    # meets them), and plain indexing (its memory is coherent).

    def _load(a, index):
        """``a[index]``, as the latest value any thread wrote."""
        return a[index]

    def _store(a, index, value) -> None:
        """``a[index] = value``, seen by every later read of any thread."""
        a[index] = value

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
    def _load(a, index):
        """``a[index]`` from L2 (``ld.global.cg``), past this multiprocessor's possibly stale L1."""
        return cuda.ldcg(a, index)

    @cuda_device
    def _store(a, index, value):
        """``a[index] = value`` into L2 (``st.global.cg``), where every multiprocessor reads."""
        cuda.stcg(a, index, value)

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


@cuda_device
def _walk_start(s, stride, a, b, n):
    """(position of walk step s, the position's advance per ``stride`` steps): (a·s + b) mod n
    and (a·stride) mod n. Two 64-bit remainders per worker, not one per rating."""
    return (a * (s % n) + b) % n, (a * (stride % n)) % n


@cuda_device
def _walk_next(pos, step, n):
    """The walk's position ``stride`` steps on: (pos + step) mod n, both already below n."""
    pos += step
    return pos - n if pos >= n else pos


@cuda_jit
def _sgd_epoch_cuda(users, items, ratings, order, a, b, P, Q, bu, bi, mu, lr, reg, biased, sse):
    """Hogwild epoch: thread t applies the reference rule to the ratings at walk positions t,
    t + T, …, position s meaning ``order[(a·s + b) mod n]`` (a = 1, b = 0: the order as given).

    Per rating (u, i, r)::

        e = r − (Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ))
        bᵤ ← bᵤ + lr·(e − reg·bᵤ);  bᵢ ← bᵢ + lr·(e − reg·bᵢ)      (``biased`` only)
        Pᵤ ← Pᵤ + lr·(e·Qᵢ − reg·Pᵤ);  Qᵢ ← Qᵢ + lr·(e·Pᵤ − reg·Qᵢ)  (Pᵤ from before)

    Reads through L2 and stores into it (:func:`_load`, :func:`_store`); the races left are the
    module docstring's. Alone (one thread) it is the reference, bit for bit. ``sse[0]`` gathers
    Σ e² by one atomic add per thread.
    """
    k = P.shape[1]
    n = order.shape[0]
    zero = mu - mu  # 0 in the factors' dtype: float32 data sums in float32
    acc = 0.0
    stride = cuda.gridsize(1)
    pos, step = _walk_start(cuda.grid(1), stride, a, b, n)
    for _ in range(cuda.grid(1), n, stride):
        j = order[pos]
        pos = _walk_next(pos, step, n)
        u = users[j]
        i = items[j]
        dot = zero
        for f in range(k):
            dot += _load(P, (u, f)) * _load(Q, (i, f))
        if biased:
            b_u = _load(bu, u)
            b_i = _load(bi, i)
            err = ratings[j] - (mu + b_u + b_i + dot)
            _store(bu, u, b_u + lr * (err - reg * b_u))
            _store(bi, i, b_i + lr * (err - reg * b_i))
        else:
            err = ratings[j] - dot
        acc += err * err
        for f in range(k):
            p = _load(P, (u, f))
            q = _load(Q, (i, f))
            _store(P, (u, f), p + lr * (err * q - reg * p))
            _store(Q, (i, f), q + lr * (err * p - reg * q))
    cuda.atomic.add(sse, 0, acc)


@cuda_jit
def _sgd_epoch_cuda_warp(
    users, items, ratings, order, a, b, P, Q, bu, bi, mu, lr, reg, biased, sse
):
    """Hogwild epoch, one warp per rating: warp w of the grid takes walk positions w, w + W, …
    (position s meaning ``order[(a·s + b) mod n]``).

    Lane l of the warp owns features f = l, l + 32, …: the lanes read Pᵤ and Qᵢ together, sum
    their partial dot products by warp shuffles, and each applies the reference rule to its
    own features::

        e = r − (Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ))
        bᵤ ← bᵤ + lr·(e − reg·bᵤ);  bᵢ ← bᵢ + lr·(e − reg·bᵢ)      (``biased`` only; lane 0)
        Pᵤf ← Pᵤf + lr·(e·Qᵢf − reg·Pᵤf);  Qᵢf ← Qᵢf + lr·(e·Pᵤf − reg·Qᵢf)  (Pᵤf from before)

    Each lane reads its features through L2 for the dot product and again for the update (L2
    hits) and stores them into L2; no atomics. A block's warps step through their
    ratings together (the simulator's stand-in for the shuffles needs that); ``sse[0]``
    gathers Σ e².
    """
    g = cuda.grid(1)
    lane = g % WARP
    warps = cuda.blockDim.x // WARP  # warps per block
    w = g // WARP  # this warp in the grid
    k = P.shape[1]
    n = order.shape[0]
    zero = mu - mu  # 0 in the factors' dtype
    acc = 0.0
    stride = cuda.gridsize(1) // WARP
    pos, step = _walk_start(w, stride, a, b, n)
    for base in range(w - w % warps, n, stride):
        active = base + w % warps < n
        u = 0
        i = 0
        j = 0
        dot = zero
        if active:
            j = order[pos]
            u = users[j]
            i = items[j]
            for f in range(lane, k, WARP):
                dot += _load(P, (u, f)) * _load(Q, (i, f))
        pos = _walk_next(pos, step, n)
        r_hat = _warp_sum(dot)
        err = zero
        b_u = zero
        b_i = zero
        if active:
            if biased:
                b_u = _load(bu, u)
                b_i = _load(bi, i)
                r_hat += mu + b_u + b_i
            err = ratings[j] - r_hat
        _warp_sync()  # every lane has read bᵤ, bᵢ before lane 0 writes them
        if active:
            if biased and lane == 0:
                _store(bu, u, b_u + lr * (err - reg * b_u))
                _store(bi, i, b_i + lr * (err - reg * b_i))
            for f in range(lane, k, WARP):
                p = _load(P, (u, f))
                q = _load(Q, (i, f))
                _store(P, (u, f), p + lr * (err * q - reg * p))
                _store(Q, (i, f), q + lr * (err * p - reg * q))
            if lane == 0:
                acc += err * err
    if lane == 0:
        cuda.atomic.add(sse, 0, acc)


LANE_KERNELS = {1: _sgd_epoch_cuda, WARP: _sgd_epoch_cuda_warp}
"""The epoch kernel for each number of lanes (threads) per rating."""


def multiprocessors() -> int:
    """The current CUDA device's multiprocessor count (FALLBACK_SMS where it cannot be asked)."""
    try:
        return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    except Exception:  # the simulator's device has no attributes
        return FALLBACK_SMS


def default_blocks(n_ratings: int, threads: int, lanes: int = 1) -> int:
    """Enough blocks that each worker (``lanes`` threads) walks >= RATINGS_PER_WORKER ratings,
    at most BLOCKS_PER_SM blocks per multiprocessor.

    Fewer concurrent workers than ratings keeps Hogwild's collisions (workers on the same row
    at once) rare on small data; large data fills the GPU.
    """
    workers = threads // lanes
    most = BLOCKS_PER_SM * multiprocessors()
    return max(1, min(most, n_ratings // (workers * RATINGS_PER_WORKER)))


class CudaEpochs:
    """Ratings and factors resident on the GPU; launches epochs of one kernel over them.

    :meth:`run` is one synchronised epoch over an order already on the device (what the
    benchmarks time); :class:`CudaRunner` drives it for a fit.
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
        self.kernel = LANE_KERNELS[lanes]
        self.grid = (
            default_blocks(ratings.shape[0], threads, lanes) if blocks is None else blocks,
            threads,
        )

    def launch(self, d_order, a: int, b: int, mu, lr, reg, biased: bool, d_sse) -> None:
        """Queue one epoch over walk t ↦ d_order[(a·t + b) mod n], adding Σ e² into d_sse[0]."""
        blocks, threads = self.grid
        self.kernel[blocks, threads](
            *self.data, d_order, a, b, *self.factors, mu, lr, reg, biased, d_sse
        )

    def run(self, d_order, mu, lr, reg, biased: bool, a: int = 1, b: int = 0) -> float:
        """One epoch over an ``order`` already on the device; synchronises; returns Σ e²."""
        d_sse = cuda.to_device(np.zeros(1, dtype=np.float64))
        self.launch(d_order, a, b, mu, lr, reg, biased, d_sse)
        cuda.synchronize()
        return float(d_sse.copy_to_host()[0])

    def copy_back(self) -> None:
        """Refresh the host P, Q, bu, bi from the device (synchronises)."""
        for d, h in zip(self.factors, self.host, strict=True):
            d.copy_to_host(h)


class CudaRunner:
    """The fit's :class:`~mfrec.reference.mf.EpochRunner` on the GPU.

    Each epoch's walk comes from :class:`~mfrec.reference.sampling.EpochWalks` over the fit's
    generator, on either path: ``order="host"`` copies each epoch's permutation into one device
    buffer (drawn while the previous epoch runs; the copy waits for it), ``"device"`` uploads
    one permutation and walks it. :meth:`run_all` queues every epoch and synchronises once.
    """

    def __init__(self, model: CudaMatrixFactorization, u, i, r, rng) -> None:
        self.epochs = CudaEpochs(
            u, i, r, model.P, model.Q, model.bu, model.bi, model.blocks, model.threads, model.lanes
        )
        self.dtype = model.dtype
        self.hyper = (self.dtype(model.mu), self.dtype(model.reg), model.biased)
        self.d_order = None
        self.walks = EpochWalks(rng, r.shape[0], model.shuffle, model.order, self._put)

    def _put(self, order: np.ndarray):
        """``order`` in the one device buffer of orders (allocated on first use)."""
        if self.d_order is None:
            self.d_order = cuda.to_device(order)
        else:
            self.d_order.copy_to_device(order)
        return self.d_order

    def _launch(self, lr: float, d_sse) -> None:
        mu, reg, biased = self.hyper
        self.epochs.launch(*self.walks(), mu, self.dtype(lr), reg, biased, d_sse)

    def run(self, lr: float) -> float:
        """One epoch; synchronises; returns Σ e²."""
        d_sse = cuda.to_device(np.zeros(1, dtype=np.float64))
        self._launch(lr, d_sse)
        cuda.synchronize()
        return float(d_sse.copy_to_host()[0])

    def run_all(self, lrs) -> np.ndarray:
        """Every epoch back to back on the device, then one copy back; Σ e² per epoch."""
        d_sse = cuda.to_device(np.zeros(len(lrs), dtype=np.float64))
        for e, lr in enumerate(lrs):
            self._launch(lr, d_sse[e : e + 1])
        self.copy_out()
        return d_sse.copy_to_host()

    def copy_out(self) -> None:
        """Refresh the model's P, Q, bu, bi from the device."""
        self.epochs.copy_back()


class CudaMatrixFactorization(MatrixFactorization):
    """:class:`MatrixFactorization` trained by a ``numba.cuda`` Hogwild kernel.

    ``blocks × threads`` GPU threads share each epoch (``blocks=None``: see
    :func:`default_blocks`), ``lanes`` threads per rating (1: a thread, 32: a warp); the result
    varies with thread timing, like ``n_threads > 1``. ``order``: ``"host"`` (the fit's
    permutations, the reference's stream) or ``"device"`` (a walk of one permutation per epoch,
    drawn with no host work; see the module docstring); both draw from the fit's generator, so
    the result does not depend on the path. Without ``callback``, ``eval_set`` or ``tol`` the
    whole fit runs on the device with one copy back (:meth:`CudaRunner.run_all`); otherwise
    epoch by epoch, refreshing the host arrays after each.
    """

    def __init__(
        self,
        *,
        blocks: int | None = None,
        threads: int = 256,
        lanes: int = WARP,
        order: str = "host",
        **params,
    ) -> None:
        """``params``: those of :class:`MatrixFactorization`."""
        super().__init__(**params)
        if not devices.numba_cuda():
            raise ValueError("CudaMatrixFactorization needs a CUDA device; numba sees none")
        self.blocks = None if blocks is None else check_positive("blocks", blocks, integer=True)
        self.threads = check_positive("threads", threads, integer=True)
        if lanes not in LANE_KERNELS:
            raise ValueError(f"lanes must be 1 (thread per rating) or 32 (warp), got {lanes!r}")
        if threads % lanes or threads > MAX_THREADS:
            raise ValueError(
                f"threads={threads} must be a multiple of lanes={lanes} and <= {MAX_THREADS}"
            )
        self.lanes = lanes
        if order not in WALK_ORDERS:
            raise ValueError(f"order must be one of {WALK_ORDERS}, got {order!r}")
        self.order = order

    def _runs_on(self) -> str:
        per = "a warp" if self.lanes == 32 else "a thread"
        return f"numba.cuda Hogwild, {per} per rating, order drawn on the {self.order}"

    def _epoch_runner(self, u, i, r, rng) -> CudaRunner:
        """Epochs on the GPU (see :class:`CudaRunner`)."""
        return CudaRunner(self, u, i, r, rng)
