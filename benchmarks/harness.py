"""Helpers for the benchmarks: machine names, problem set-up and JIT warm-up outside timing."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mfrec import devices
from mfrec.reference.blocked import BlockedEpochs
from mfrec.reference.fast import OrderedEpochs
from mfrec.reference.sampling import init_factors

# The ML-10M shape of the LibMF comparison.
ML10M_USERS, ML10M_ITEMS, ML10M_N = 69_878, 10_677, 10_000_000
# scikit-surprise SVD's defaults; every timed epoch takes its step size and regularisation.
SURPRISE = dict(n_factors=100, n_epochs=20, lr=0.005, reg=0.02, init_std=0.1, biased=True)
LR, REG = SURPRISE["lr"], SURPRISE["reg"]


def cpu_model() -> str:
    """``model name`` and AVX-512 from /proc/cpuinfo, with the core count."""
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    avx = ", AVX-512" if "avx512f" in fields.get("flags", "").split() else ""
    return f"{name} ({os.cpu_count()} cores{avx})"


def gpu_model() -> str | None:
    """The CUDA device torch sees, or None."""
    return torch.cuda.get_device_name(0) if devices.torch_cuda() else None


def record(benchmark, table: str, impl: str, device: str, updates: int, **extra) -> None:
    """Tag a benchmark for ``benchmarks/report.py``: its table, row and ratings per call."""
    benchmark.extra_info.update(table=table, impl=impl, device=device, updates=updates, **extra)


def factors(rng, n_users: int, n_items: int, k: int, dtype):
    """Fresh N(0, 0.1²) factor tables (as a fit draws them, cache-line aligned) and zero biases."""
    P, Q = init_factors(rng, n_users, n_items, k, 0.1, dtype)
    return P, Q, np.zeros(n_users, dtype), np.zeros(n_items, dtype)


def start(ratings, n_users: int, n_items: int, k: int, biased: bool, seed: int) -> tuple:
    """What a numba epoch starts from: (rng, its factor tables, its hyper-parameters), the
    tables drawn first, in ``ratings``' dtype."""
    dtype = ratings.dtype.type
    rng = np.random.default_rng(seed)
    hyper = (dtype(ratings.mean()), dtype(LR), dtype(REG), biased)
    return rng, factors(rng, n_users, n_items, k, dtype), hyper


def numba_epoch(
    users, items, ratings, n_users, n_items, k, biased, kernel="fast", n_threads=1, seed=0
) -> Callable[[], float]:
    """One epoch of a CPU kernel as a zero-argument call, compiled and warmed up."""
    rng, arrays, hyper = start(ratings, n_users, n_items, k, biased, seed)
    order = rng.permutation(ratings.shape[0])
    if kernel == "blocked":  # the layout is built once per fit, outside timing
        blocked = BlockedEpochs(users, items, ratings, n_users, n_items, k, rng, True, n_threads)
        blocked(*arrays, *hyper)  # compile, outside timing
        return lambda: blocked(*arrays, *hyper)
    epochs = OrderedEpochs(kernel, users, items, ratings, rng, True, n_threads)
    epochs.run(order[:1000], *arrays, *hyper)  # compile, outside timing
    return lambda: epochs.run(order, *arrays, *hyper)


def cuda_epoch(
    users, items, ratings, n_users, n_items, k, biased, lanes=1, seed=0
) -> Callable[[], float]:
    """One ``numba.cuda`` epoch (``lanes`` threads per rating), data and order already on the
    device, synchronised."""
    from numba import cuda

    from mfrec.reference.cuda import CudaEpochs

    rng, arrays, hyper = start(ratings, n_users, n_items, k, biased, seed)
    epochs = CudaEpochs(users, items, ratings, *arrays, None, 256 if lanes > 1 else 128, lanes)
    d_order = cuda.to_device(rng.permutation(ratings.shape[0]))
    epochs.run(d_order[:1000], *hyper)  # compile and CUDA init, outside timing
    return lambda: epochs.run(d_order, *hyper)


def torch_epoch(
    users, items, ratings, n_users, n_items, k, biased, n_ratings=None, **params
) -> Callable[[], float]:
    """One torch epoch (``_epoch`` of the model) over ``n_ratings`` of the data (default all);
    ``params``: the model's ``mode``, ``batch_size``, ``device`` and ``compile`` (the
    ``torch.compile`` step, compiled by the warm-up)."""
    from mfrec.torch_impl.model import TorchMatrixFactorization

    model = TorchMatrixFactorization(
        n_factors=k, n_epochs=0, lr=LR, reg=REG, dtype=ratings.dtype.name, biased=biased, **params
    ).fit(users, items, ratings, n_users, n_items)
    dev = model.device
    u, i, r = (torch.from_numpy(np.ascontiguousarray(a)).to(dev) for a in (users, items, ratings))
    B = 1 if model.mode == "exact" else model.batch_size
    optimizer = torch.optim.SGD(model.module.parameters(), lr=model.lr * B)
    order = torch.randperm(ratings.shape[0], device=dev)[:n_ratings]
    # Warm-up (CUDA init, allocator, compilation): two full batches and a short one.
    model._epoch(u, i, r, order[: 2 * B + 1], optimizer, B)
    return lambda: model._epoch(u, i, r, order, optimizer, B)  # float(sse) synchronises
