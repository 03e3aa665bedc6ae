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
epoch needs no host work or copy. :meth:`CudaEpochs.fit` runs all epochs back to back on the
device and synchronises once. The logic runs on the CPU under ``NUMBA_ENABLE_CUDASIM=1`` (see
``tests/test_gpu.py``), where :func:`_load`/:func:`_store` index plainly.
"""

from __future__ import annotations

import numpy as np
from numba import config, cuda

from mfrec import devices
from mfrec._internal import check_positive, cuda_device, cuda_jit
from mfrec.reference.mf import MatrixFactorization, check_finite
from mfrec.reference.sampling import epoch_order, walk_step

RATINGS_PER_WORKER = 256  # the least ratings each worker (thread or warp) walks per epoch
BLOCKS_PER_SM = 8  # resident blocks per multiprocessor that the default grid aims at
FALLBACK_SMS = 132  # an H100's or H200's multiprocessors, when the device cannot be asked
WARP = 32
MAX_THREADS = 1024  # CUDA's most threads per block (and the simulator's warp-sum scratch)
ORDERS = ("host", "device")

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


KERNELS = {1: _sgd_epoch_cuda, WARP: _sgd_epoch_cuda_warp}


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
    """Ratings and factors resident on the GPU; runs epochs of one kernel over them.

    ``__call__`` is one epoch for a host ``order`` that refreshes the host P, Q, bu, bi in place
    (the fit loop's per-epoch path, so callbacks see current values); :meth:`fit` runs many
    epochs on the device with one synchronisation and one copy back.
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
        self.copy_back()
        return sse

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

    def fit(self, walks, lrs, mu, reg, biased: bool) -> np.ndarray:
        """Every epoch back to back on the device, then one copy back; returns Σ e² per epoch.

        ``walks[e] = (d_order, a, b)``: epoch e's order on the device and its walk (see
        :meth:`launch`); ``lrs[e]``: its learning rate.
        """
        d_sse = cuda.to_device(np.zeros(len(lrs), dtype=np.float64))
        for e, ((d_order, a, b), lr) in enumerate(zip(walks, lrs, strict=True)):
            self.launch(d_order, a, b, mu, lr, reg, biased, d_sse[e : e + 1])
        self.copy_back()  # synchronises
        return d_sse.copy_to_host()

    def copy_back(self) -> None:
        """Refresh the host P, Q, bu, bi from the device."""
        for d, h in zip(self.factors, self.host, strict=True):
            d.copy_to_host(h)


class CudaMatrixFactorization(MatrixFactorization):
    """:class:`MatrixFactorization` trained by a ``numba.cuda`` Hogwild kernel.

    ``blocks × threads`` GPU threads share each epoch (``blocks=None``: see
    :func:`default_blocks`), ``lanes`` threads per rating (1: a thread, 32: a warp); the result
    varies with thread timing, like ``n_threads > 1``. ``order``: ``"host"`` (the fit's
    permutations, the reference's stream) or ``"device"`` (a walk of one permutation per epoch,
    drawn with no host work; see the module docstring). Without ``callback``, ``eval_set`` or
    ``tol`` the whole fit runs on the device with one copy back (:meth:`CudaEpochs.fit`);
    otherwise epoch by epoch, refreshing the host arrays after each.
    """

    def __init__(
        self,
        *args,
        blocks: int | None = None,
        threads: int = 256,
        lanes: int = WARP,
        order: str = "host",
        **kw,
    ) -> None:
        super().__init__(*args, **kw)
        if not devices.numba_cuda():
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
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.order = order

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        init: tuple[np.ndarray, np.ndarray] | None = None,
        callback=None,
        eval_set: tuple | None = None,
        patience: int | None = None,
    ) -> CudaMatrixFactorization:
        """As :meth:`MatrixFactorization.fit`; on the device in one go when nothing needs the
        host between epochs (no ``callback``, ``eval_set``, ``patience`` or ``tol``)."""
        if (
            callback is not None
            or eval_set is not None
            or patience is not None
            or self.tol is not None
        ):
            return super().fit(
                users,
                items,
                ratings,
                n_users,
                n_items,
                init=init,
                callback=callback,
                eval_set=eval_set,
                patience=patience,
            )
        u, i, r, P, Q, mu, rng = self._setup(users, items, ratings, n_users, n_items, init)
        bu = np.zeros(P.shape[0], dtype=self.dtype)
        bi = np.zeros(Q.shape[0], dtype=self.dtype)
        self.P, self.Q, self.bu, self.bi, self.mu = P, Q, bu, bi, mu
        self._remember_seen(u, i)
        self._remember_scale(r)
        epochs = CudaEpochs(u, i, r, P, Q, bu, bi, self.blocks, self.threads, self.lanes)
        lrs = [self.dtype(self.lr * self.lr_decay**e) for e in range(self.n_epochs)]
        walks = self._walks(rng, r.shape[0])
        sse = epochs.fit(walks, lrs, self.dtype(mu), self.dtype(self.reg), self.biased)
        self.history_ = [float(x) / r.shape[0] for x in sse]
        for epoch, train_mse in enumerate(self.history_):
            check_finite(train_mse, epoch, self.lr)
        return self

    def _walks(self, rng: np.random.Generator, n: int) -> list[tuple]:
        """(d_order, a, b) for every epoch: the fit's permutations, uploaded in one copy, or
        one permutation walked by a fresh (a, b) per epoch."""
        if self.order == "host":
            orders = np.stack([epoch_order(rng, n, self.shuffle) for _ in range(self.n_epochs)])
            d_orders = cuda.to_device(orders)
            return [(d_orders[e], 1, 0) for e in range(self.n_epochs)]
        d_order = cuda.to_device(epoch_order(rng, n, self.shuffle))
        if not self.shuffle:
            return [(d_order, 1, 0)] * self.n_epochs
        return [(d_order, *walk_step(rng, n)) for _ in range(self.n_epochs)]

    def _runs_on(self) -> str:
        per = "a warp" if self.lanes == 32 else "a thread"
        return f"numba.cuda Hogwild, {per} per rating, order drawn on the {self.order}"

    def _epoch_runner(self, u, i, r, rng):
        """Epochs on the GPU, one launch each (the fit loop's per-epoch path): ``order="host"``
        draws each epoch's order from ``rng`` as the CPU kernels do; ``order="device"`` walks
        one uploaded permutation by a fresh (a, b) per epoch."""
        host = (self.P, self.Q, self.bu, self.bi)
        epochs = CudaEpochs(u, i, r, *host, self.blocks, self.threads, self.lanes)
        n = r.shape[0]
        if self.order == "host":

            def run_epoch(P, Q, bu, bi, mu, lr, reg, biased):
                return epochs(epoch_order(rng, n, self.shuffle), mu, lr, reg, biased)

            return run_epoch
        walk_rng = np.random.default_rng((self.seed, 2))  # the device walks' own stream
        d_order = cuda.to_device(epoch_order(walk_rng, n, self.shuffle))

        def run_epoch(P, Q, bu, bi, mu, lr, reg, biased):
            a, b = walk_step(walk_rng, n) if self.shuffle else (1, 0)
            sse = epochs.run(d_order, mu, lr, reg, biased, a, b)
            epochs.copy_back()
            return sse

        return run_epoch
