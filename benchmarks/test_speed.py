"""``make bench``: ms/epoch and updates/s of every implementation and device present.

Tables (``extra_info["table"]``, read by ``benchmarks/report.py``):
``ml100k``: one epoch on the 80k ML-100k split at scikit-surprise SVD's defaults;
``fit``: the whole 20-epoch fit at those defaults, against scikit-surprise's (and cmfrec's
ALS at its own defaults);
``ml10m``: one epoch, k=64 float32, on 10M random ratings of the ML-10M shape;
``scale_n`` / ``scale_k``: the fast serial kernel over N (100k…10M) and k (16…256);
``memory``: peak traced memory of a one-epoch fit on the 10M case (fast and blocked kernels).
"""

from __future__ import annotations

import os
import tempfile
import time
import tracemalloc
from importlib.metadata import version

import numpy as np
import pytest
import torch
from harness import (
    ML10M_ITEMS,
    ML10M_N,
    ML10M_USERS,
    SURPRISE,
    cuda_epoch,
    numba_epoch,
    record,
    torch_epoch,
)

from mfrec import devices
from mfrec.reference import MatrixFactorization, rmse

GPU = devices.numba_cuda() and devices.torch_cuda()
needs_gpu = pytest.mark.skipif(not GPU, reason="no CUDA device: GPU rows not measured")
TORCH_EXACT_RATINGS = 2000  # torch exact mode is one Python-level step per rating
CPU_THREADS = 2


@pytest.fixture(autouse=True, scope="module")
def torch_one_thread():
    """Torch on one CPU thread, like the serial kernels (its spinning pool hurts on 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(benchmark, fn, rounds: int):
    """``rounds`` timed calls (warm-up done by the caller); also records the median CPU time.

    On a shared machine wall time includes waiting for a core; the process CPU time (all its
    threads) does not, so the report shows both.
    """
    cpu = []

    def timed():
        start = time.process_time()
        out = fn()
        cpu.append(time.process_time() - start)
        return out

    result = benchmark.pedantic(timed, rounds=rounds, iterations=1)
    benchmark.extra_info["cpu_s"] = float(np.median(cpu))
    return result


# --- ML-100k, one epoch at surprise's defaults (biased, k=100, float64) -------------------


def numba_kernels(exact_rounds: int, rounds: int) -> list:
    """Each CPU numba kernel as (row name, its keywords, timed rounds), named by its row."""
    kernels = [
        ("numba exact (reference)", dict(kernel="exact")),
        ("numba fast", dict(kernel="fast")),
        (f"numba Hogwild {CPU_THREADS} threads", dict(kernel="hogwild", n_threads=CPU_THREADS)),
        ("numba blocked", dict(kernel="blocked")),
        (f"numba blocked {CPU_THREADS} threads", dict(kernel="blocked", n_threads=CPU_THREADS)),
    ]
    return [
        pytest.param(impl, kw, exact_rounds if kw["kernel"] == "exact" else rounds, id=impl)
        for impl, kw in kernels
    ]


def ml100k_problem(ml100k) -> tuple:
    """The harness's epochs' first arguments for the ML-100k rows: the training part's
    (users, items, ratings, n_users, n_items), then k=100 and biased (surprise's defaults)."""
    train, _, n_users, n_items = ml100k
    return train.users, train.items, train.ratings, n_users, n_items, 100, True


def ml10m_problem(ml10m_shape, n: int | None = None, k: int = 64) -> tuple:
    """The same for the first ``n`` (default all) ratings of the ML-10M-shaped case, unbiased."""
    users, items, ratings = (a[:n] for a in ml10m_shape)
    return users, items, ratings, ML10M_USERS, ML10M_ITEMS, k, False


@pytest.mark.parametrize(("impl", "kw", "rounds"), numba_kernels(7, 15))
def test_ml100k_epoch_numba(benchmark, ml100k, impl, kw, rounds):
    fn = numba_epoch(*ml100k_problem(ml100k), **kw)
    record(benchmark, "ml100k", impl, "cpu", len(ml100k[0]))
    run(benchmark, fn, rounds)


TORCH_DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]


def torch_name(B: int, compile: bool, device: str) -> str:
    name = f"torch minibatch B={B}" + (", torch.compile" if compile else "")
    return name + (", 1 thread" if device == "cpu" else "")


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_ml100k_epoch_torch_minibatch(benchmark, ml100k, device, compile):
    fn = torch_epoch(
        *ml100k_problem(ml100k), mode="minibatch", batch_size=1024, device=device, compile=compile
    )
    record(benchmark, "ml100k", torch_name(1024, compile, device), device, len(ml100k[0]))
    run(benchmark, fn, 7)


def test_ml100k_epoch_torch_exact(benchmark, ml100k):
    fn = torch_epoch(
        *ml100k_problem(ml100k), TORCH_EXACT_RATINGS, mode="exact", batch_size=1, device="cpu"
    )
    impl = f"torch exact, 1 thread (timed on {TORCH_EXACT_RATINGS} ratings)"
    record(benchmark, "ml100k", impl, "cpu", TORCH_EXACT_RATINGS)
    run(benchmark, fn, 3)


CUDA_LANES = {1: "numba.cuda Hogwild, thread per rating", 32: "numba.cuda Hogwild, warp per rating"}


@needs_gpu
@pytest.mark.parametrize("lanes", CUDA_LANES)
def test_ml100k_epoch_numba_cuda(benchmark, ml100k, lanes):
    fn = cuda_epoch(*ml100k_problem(ml100k), lanes)
    record(benchmark, "ml100k", CUDA_LANES[lanes], "cuda", len(ml100k[0]))
    run(benchmark, fn, 15)


@pytest.fixture(scope="module")
def surprise_trainset(ml100k):
    surprise = pytest.importorskip("surprise", reason="scikit-surprise not installed")
    train = ml100k[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.tsv")
        np.savetxt(path, np.c_[train.users, train.items, train.ratings], fmt="%d\t%d\t%g")
        reader = surprise.Reader(line_format="user item rating", sep="\t", rating_scale=(1, 5))
        return surprise.Dataset.load_from_file(path, reader).build_full_trainset()


def test_ml100k_epoch_surprise(benchmark, ml100k, surprise_trainset):
    from surprise import SVD

    kw = dict(n_factors=100, lr_all=0.005, reg_all=0.02, random_state=0)
    record(benchmark, "ml100k", "scikit-surprise SVD (fit, n_epochs=1)", "cpu", len(ml100k[0]))
    run(benchmark, lambda: SVD(n_epochs=1, **kw).fit(surprise_trainset), 7)


# --- the whole 20-epoch fit at surprise's defaults, side by side ------------------------

# scikit-surprise visits the ratings user by user, in the same order every epoch (no
# shuffling); ``by_user`` gives mfrec that order too (``shuffle=False`` on user-grouped data).
FITS = [
    ("mfrec exact (reference)", dict(kernel="exact"), False, 3),
    ("mfrec fast", dict(kernel="fast"), False, 7),
    (
        f"mfrec Hogwild {CPU_THREADS} threads",
        dict(kernel="hogwild", n_threads=CPU_THREADS),
        False,
        7,
    ),
    (
        "mfrec fast, surprise's order (by user, no shuffle)",
        dict(kernel="fast", shuffle=False),
        True,
        7,
    ),
    ("mfrec blocked", dict(kernel="blocked"), False, 7),
    (
        f"mfrec blocked {CPU_THREADS} threads",
        dict(kernel="blocked", n_threads=CPU_THREADS),
        False,
        7,
    ),
]


@pytest.mark.parametrize(("impl", "kw", "by_user", "rounds"), FITS, ids=[c[0] for c in FITS])
def test_ml100k_fit_mfrec(benchmark, ml100k, impl, kw, by_user, rounds):
    train, test, n_users, n_items = ml100k
    if by_user:
        train = train.subset(np.argsort(train.users, kind="stable"))

    def fit():
        model = MatrixFactorization(**SURPRISE, **kw)
        return model.fit(train.users, train.items, train.ratings, n_users, n_items)

    fit()  # compile, outside timing
    model = run(benchmark, fit, rounds)
    test_rmse = rmse(test.ratings, model.predict(test.users, test.items))
    record(benchmark, "fit", impl, "cpu", 20 * len(train), test_rmse=test_rmse)


def test_ml100k_fit_surprise(benchmark, ml100k, surprise_trainset):
    from surprise import SVD

    test = ml100k[1]
    algo = run(benchmark, lambda: SVD(random_state=0).fit(surprise_trainset), 3)
    pred = [algo.predict(str(u), str(i)).est for u, i in zip(test.users, test.items, strict=True)]
    record(
        benchmark,
        "fit",
        "scikit-surprise SVD",
        "cpu",
        20 * len(ml100k[0]),
        test_rmse=rmse(test.ratings, pred),
        surprise_version=__import__("surprise").__version__,
    )


def test_ml100k_fit_cmfrec(benchmark, ml100k):
    """cmfrec's explicit ALS (conjugate gradient) at its defaults, beside the SGD fits."""
    pytest.importorskip("cmfrec", reason="cmfrec (extra 'peers') not installed")
    from accuracy import CmfrecALS

    train, test, n_users, n_items = ml100k

    def fit():
        model = CmfrecALS(seed=0, nthreads=CPU_THREADS)
        return model.fit(train.users, train.items, train.ratings, n_users, n_items)

    fit()  # load its BLAS and threads outside timing
    model = run(benchmark, fit, 7)
    record(
        benchmark,
        "fit",
        f"cmfrec ALS-CG, its defaults (k=40, λ=10, 10 iterations, {CPU_THREADS} threads)",
        "cpu",
        len(train),
        test_rmse=rmse(test.ratings, model.predict(test.users, test.items)),
        cmfrec_version=version("cmfrec"),
    )


PAIRS = 7


def test_ml100k_fit_interleaved(benchmark, ml100k, surprise_trainset):
    """surprise, mfrec blocked, mfrec blocked 2 threads, surprise, …: PAIRS rounds alternating.

    On a shared machine slow and fast phases come and go; alternating the fits puts each
    ratio's two sides in the same phases (the separate rows above time them minutes apart).
    """
    from surprise import SVD

    train, _, n_users, n_items = ml100k
    fits = {
        "scikit-surprise SVD": lambda: SVD(random_state=0).fit(surprise_trainset),
        "mfrec blocked": lambda: MatrixFactorization(**SURPRISE, kernel="blocked").fit(
            train.users, train.items, train.ratings, n_users, n_items
        ),
        f"mfrec blocked {CPU_THREADS} threads": lambda: MatrixFactorization(
            **SURPRISE, kernel="blocked", n_threads=CPU_THREADS
        ).fit(train.users, train.items, train.ratings, n_users, n_items),
    }
    for fit in list(fits.values())[1:]:
        fit()  # compile, outside timing
    times: dict[str, list[float]] = {name: [] for name in fits}

    def alternate():
        for _ in range(PAIRS):
            for name, fit in fits.items():
                start = time.perf_counter()
                fit()
                times[name].append(time.perf_counter() - start)

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    record(benchmark, "fit_interleaved", "interleaved fits", "cpu", PAIRS, times_s=times)


# --- 10M random ratings of the ML-10M shape, k=64 float32 (the LibMF comparison) ---------


@pytest.mark.parametrize(("impl", "kw", "rounds"), numba_kernels(1, 3))
def test_ml10m_epoch_numba(benchmark, ml10m_shape, impl, kw, rounds):
    fn = numba_epoch(*ml10m_problem(ml10m_shape), **kw)
    record(benchmark, "ml10m", impl, "cpu", ML10M_N)
    run(benchmark, fn, rounds)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_ml10m_epoch_torch_minibatch(benchmark, ml10m_shape, device, compile):
    B = 16384
    fn = torch_epoch(
        *ml10m_problem(ml10m_shape), mode="minibatch", batch_size=B, device=device, compile=compile
    )
    record(benchmark, "ml10m", torch_name(B, compile, device), device, ML10M_N)
    run(benchmark, fn, 1 if device == "cpu" else 5)


@needs_gpu
@pytest.mark.parametrize("lanes", CUDA_LANES)
def test_ml10m_epoch_numba_cuda(benchmark, ml10m_shape, lanes):
    fn = cuda_epoch(*ml10m_problem(ml10m_shape), lanes)
    record(benchmark, "ml10m", CUDA_LANES[lanes], "cuda", ML10M_N)
    run(benchmark, fn, 5)


# --- scaling: the fast serial kernel (and both numba.cuda kernels) over N and k ----------

SCALED = {
    "cpu": "numba fast",
    "cuda-thread": "numba.cuda, thread per rating",
    "cuda-warp": "numba.cuda, warp per rating",
}
IMPLS = ["cpu", *(pytest.param(name, marks=needs_gpu) for name in ("cuda-thread", "cuda-warp"))]


def scaled_epoch(impl, ml10m_shape, n, k):
    args = ml10m_problem(ml10m_shape, n, k)
    if impl == "cpu":
        return numba_epoch(*args)
    return cuda_epoch(*args, lanes=32 if impl == "cuda-warp" else 1)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", [100_000, 300_000, 1_000_000, 3_000_000, 10_000_000])
def test_scale_n(benchmark, ml10m_shape, n, impl):
    fn = scaled_epoch(impl, ml10m_shape, n, 64)
    record(benchmark, "scale_n", SCALED[impl], impl.split("-")[0], n, n=n, k=64)
    run(benchmark, fn, 5 if n < 3_000_000 else 3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("k", [16, 32, 64, 128, 256])
def test_scale_k(benchmark, ml10m_shape, k, impl):
    n = 1_000_000
    fn = scaled_epoch(impl, ml10m_shape, n, k)
    record(benchmark, "scale_k", SCALED[impl], impl.split("-")[0], n, n=n, k=k)
    run(benchmark, fn, 5)


# --- memory: what a one-epoch fit on the 10M case holds at its peak ----------------------


@pytest.mark.parametrize("kernel", ["fast", "blocked"])
def test_ml10m_fit_peak_memory(benchmark, ml10m_shape, kernel):
    users, items, ratings = ml10m_shape
    model = MatrixFactorization(
        n_factors=64, n_epochs=1, lr=0.005, reg=0.02, dtype="float32", kernel=kernel
    )
    model.fit(users[:1000], items[:1000], ratings[:1000])  # compile, outside tracing

    def traced_fit():
        tracemalloc.start()
        model.fit(users, items, ratings, ML10M_USERS, ML10M_ITEMS)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    peak = run(benchmark, traced_fit, 1)
    held = {
        "P, Q (float32)": model.P.nbytes + model.Q.nbytes,
        "users, items (int64)": users.nbytes + items.nbytes,
        "ratings (float32)": ratings.nbytes,
    }
    if kernel == "blocked":
        held["blocked layout: U, I (int32), R (float32)"] = 12 * ratings.shape[0]
    else:
        held["one permutation (int64)"] = 8 * ratings.shape[0]
    record(
        benchmark,
        "memory",
        f"mfrec {kernel} fit, 1 epoch",
        "cpu",
        ratings.shape[0],
        peak_bytes=peak,
        held_bytes=held,
    )
