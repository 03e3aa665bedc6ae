"""Every GPU throughput figure of issue 11 in one pass (``benchmarks/gpu_session.sh`` runs it).

    python benchmarks/gpu_figures.py [--out benchmarks/out/gpu_figures.json] [--quick]

Rows (one epoch, data and order already on the device, JIT/compile/capture before timing,
median of ``ROUNDS`` synchronised calls): numba.cuda (warp and thread per rating), Triton
(tiles of 4 and 16) and torch minibatch (eager, compiled, CUDA graph, graph of the compiled
step; B from 2¹⁴ to 2²⁰) on uniformly random ratings of the ML-10M grid (10M on 69,878 ×
10,677) and the ML-25M grid (25M on 162,541 × 59,047), k=64 float32, with k=128, biased and
float64 variants; scaling over N (1M…25M) and k (16…256); and the whole 20-epoch ML-100k fit
at scikit-surprise's defaults by numba.cuda (copies back included). Prints a Markdown table as
it goes and writes the rows as JSON. Needs a CUDA device (exits 2 without one).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from statistics import median

import numpy as np
import torch

from mfrec import devices
from mfrec._internal import atomic_write
from mfrec.reference import rmse

GRIDS = {"ML-10M": (69_878, 10_677, 10_000_000), "ML-25M": (162_541, 59_047, 25_000_000)}
ROUNDS = 5
DEVICE = "cuda"  # the torch device of the Triton and torch rows
SURPRISE = dict(n_factors=100, n_epochs=20, lr=0.005, reg=0.02, init_std=0.1, biased=True)
HEADER = "| section | implementation | grid | N | k | dtype | biased | ms/epoch | M updates/s |"


def random_ratings(n_users: int, n_items: int, n: int, seed: int = 0):
    """n uniformly random (user, item, rating 1…5) triples, ratings float32."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    return users, items, rng.integers(1, 6, n).astype(np.float32)


def median_s(fn, rounds: int = ROUNDS) -> float:
    """Median wall seconds of ``rounds`` calls of ``fn`` (which synchronises)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


class Rows:
    """Collects rows, prints each as a Markdown table line, writes JSON on every row."""

    def __init__(self, out: Path) -> None:
        self.out, self.rows = out, []
        print(HEADER + "\n|" + "---|" * 9, flush=True)

    def add(self, section, impl, grid, n, k, dtype, biased, seconds, **extra) -> None:
        row = dict(section=section, impl=impl, grid=grid, n=n, k=k, dtype=dtype, biased=biased)
        row.update(seconds=seconds, updates_per_s=n / seconds, **extra)
        self.rows.append(row)
        cells = [section, impl, grid, f"{n:,}", str(k), dtype, str(biased)]
        cells += [f"{seconds * 1e3:.2f}", f"{n / seconds / 1e6:.0f}"]
        note = " ".join(f"{key}={value}" for key, value in extra.items())
        print("| " + " | ".join(cells) + " |" + (f" {note}" if note else ""), flush=True)
        meta = dict(
            device=torch.cuda.get_device_name(0),
            torch=torch.__version__,
            python=platform.python_version(),
            date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        text = json.dumps({"meta": meta, "rows": self.rows}, indent=1)
        with atomic_write(self.out, parents=True) as tmp:
            tmp.write_text(text)

    def skip(self, what: str, error: Exception) -> None:
        print(f"| {what} | not measured: {type(error).__name__}: {str(error)[:160]} |", flush=True)


def factors(n_users, n_items, k, dtype, seed=0):
    from mfrec.reference.sampling import init_factors

    P, Q = init_factors(np.random.default_rng(seed), n_users, n_items, k, 0.1, dtype)
    return P, Q, np.zeros(n_users, dtype), np.zeros(n_items, dtype)


def numba_cuda_epoch(data, shape, k, dtype, biased, lanes=32, threads=256):
    from numba import cuda

    from mfrec.reference.cuda import CudaEpochs

    u, i, r = data
    r = r.astype(dtype, copy=False)
    epochs = CudaEpochs(u, i, r, *factors(*shape, k, dtype), None, threads, lanes)
    d_order = cuda.to_device(np.random.default_rng(1).permutation(r.shape[0]))
    hyper = (dtype(r.mean()), dtype(0.005), dtype(0.02), biased)
    epochs.run(d_order[:1000], *hyper)  # compile, outside timing
    return lambda: epochs.run(d_order, *hyper)


def triton_epoch(data, shape, k, dtype, biased, tile):
    from mfrec.torch_impl.triton_sgd import TritonEpochs

    u, i, r = data
    r = r.astype(dtype, copy=False)
    epochs = TritonEpochs((u, i, r), factors(*shape, k, dtype), DEVICE, tile)
    order = torch.randperm(r.shape[0], device=DEVICE)
    hyper = (float(r.mean()), 0.005, 0.02, biased)
    epochs.run(order, *hyper)  # compile, outside timing
    return lambda: epochs.run(order, *hyper)


def torch_epoch(tensors, shape, k, B, compile, graph):
    from mfrec.torch_impl.model import TorchMatrixFactorization

    u, i, r = tensors
    model = TorchMatrixFactorization(
        n_factors=k,
        n_epochs=0,
        lr=0.005,
        reg=0.02,
        dtype="float32",
        mode="minibatch",
        batch_size=B,
        device=DEVICE,
    )
    model.compile, model.graph = compile, graph
    few = slice(0, 2 * B + 1)  # builds the module (0 epochs) on the full grid
    model.fit(u[few].cpu().numpy(), i[few].cpu().numpy(), r[few].cpu().numpy(), *shape)
    optimizer = torch.optim.SGD(model.module.parameters(), lr=model.lr * B)
    order = torch.randperm(r.shape[0], device=DEVICE)
    model._epoch(u, i, r, order, optimizer, B)  # compile and capture, outside timing
    return lambda: model._epoch(u, i, r, order, optimizer, B)


def attempt(
    rows: Rows,
    section: str,
    impl: str,
    grid: str,
    k,
    dtype,
    biased,
    make,
    *args,
    rounds: int = ROUNDS,
) -> None:
    """Time ``make(*args)()`` as one row (``args[0]`` the data); a failure skips the row only."""
    n = len(args[0][2])
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    try:
        rows.add(section, impl, grid, n, k, name, biased, median_s(make(*args), rounds))
    except Exception as e:  # one failing path must not cost the others' rows
        rows.skip(f"{section} {impl} {grid} N={n} k={k} {name}", e)


def kernel_rows(rows: Rows, section: str, grid: str, data, shape, k, dtype, biased) -> None:
    """numba.cuda (warp per rating) and Triton (tiles of 4 and 16) on one configuration."""
    attempt(
        rows,
        section,
        "numba.cuda warp/rating",
        grid,
        k,
        dtype,
        biased,
        numba_cuda_epoch,
        data,
        shape,
        k,
        dtype,
        biased,
    )
    for tile in (4, 16) if section == "epoch" else (4,):
        attempt(
            rows,
            section,
            f"Triton tile {tile}",
            grid,
            k,
            dtype,
            biased,
            triton_epoch,
            data,
            shape,
            k,
            dtype,
            biased,
            tile,
        )


TORCH_CASES = [(16384, False, False), (16384, True, False), (16384, False, True)]
TORCH_CASES += [(16384, True, True), (1 << 16, False, True), (1 << 18, False, True)]
TORCH_CASES += [(1 << 20, False, True)]


def measure(rows: Rows, quick: bool) -> None:
    """The kernels' rows on both grids first, then torch's (compiles are slow), then scaling:
    a time limit takes the least needed rows."""
    grids = {"ML-10M": GRIDS["ML-10M"]} if quick else GRIDS
    problems = {}
    for grid, (n_users, n_items, n) in grids.items():
        problems[grid] = (random_ratings(n_users, n_items, n), (n_users, n_items))
    variants = [(64, np.float32, False), (128, np.float32, False)]
    variants += [(64, np.float32, True), (64, np.float64, False)]
    for grid, (data, shape) in problems.items():
        for k, dtype, biased in variants:
            kernel_rows(rows, "epoch", grid, data, shape, k, dtype, biased)
    data, shape = problems["ML-10M"]
    attempt(
        rows,
        "epoch",
        "numba.cuda thread/rating",
        "ML-10M",
        64,
        np.float32,
        False,
        numba_cuda_epoch,
        data,
        shape,
        64,
        np.float32,
        False,
        1,
    )
    for grid, (data, shape) in problems.items():
        tensors = tuple(torch.from_numpy(a).cuda() for a in data)
        # On the larger grid one compile (of its table shapes) is enough: graph + compiled.
        cases = [c for c in TORCH_CASES if grid == "ML-10M" or not (c[1] and not c[2])]
        for B, compile, graph in cases:
            impl = f"torch minibatch B={B}" + (" compiled" if compile else "")
            impl += " CUDA graph" if graph else ""
            attempt(
                rows,
                "epoch",
                impl,
                grid,
                64,
                "float32",
                False,
                torch_epoch,
                tensors,
                shape,
                64,
                B,
                compile,
                graph,
                rounds=3,
            )
        del tensors
    grid = list(problems)[-1]
    data, shape = problems[grid]
    for n_sub in (1_000_000, 3_000_000, 10_000_000, 25_000_000):
        if n_sub <= len(data[2]):
            sub = tuple(a[:n_sub] for a in data)
            kernel_rows(rows, "scale_n", grid, sub, shape, 64, np.float32, False)
    for k in (16, 32, 64, 128, 256):
        kernel_rows(rows, "scale_k", grid, data, shape, k, np.float32, False)


def ml100k_fit(rows: Rows) -> None:
    """The whole 20-epoch fit at surprise's defaults, JIT excluded, copies back included."""
    from mfrec.data import load_ml100k, train_test_split
    from mfrec.reference.cuda import CudaMatrixFactorization

    data = load_ml100k(download=False)
    tr, te = train_test_split(len(data), test_size=0.2, seed=0)
    train, test = data.subset(tr), data.subset(te)
    args = (train.users, train.items, train.ratings, data.n_users, data.n_items)
    # Default grid: >= 256 ratings per warp (39 blocks of 8 warps here); larger grids finish an
    # epoch sooner but put more ratings of one user or item in flight at once (Hogwild).
    for order, blocks in (("device", None), ("device", 156), ("device", 625), ("host", None)):
        fit = CudaMatrixFactorization(**SURPRISE, order=order, blocks=blocks).fit
        model = fit(*args)  # compile, outside timing
        seconds = median_s(lambda fit=fit: fit(*args), 7)
        test_rmse = rmse(test.ratings, model.predict(test.users, test.items))
        rows.add(
            "ml100k_fit",
            f"numba.cuda warp/rating, order={order}, blocks={blocks or 'default'}",
            "ML-100k",
            20 * len(train),
            100,
            "float64",
            True,
            seconds,
            fit_ms=round(seconds * 1e3, 2),
            test_rmse=round(test_rmse, 4),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/gpu_figures.json"))
    parser.add_argument("--quick", action="store_true", help="the ML-10M grid only")
    args = parser.parse_args(argv)
    if not (devices.numba_cuda() and devices.torch_cuda()):
        print("gpu_figures: no CUDA device (numba and torch must both see one)", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = Rows(args.out)
    try:
        ml100k_fit(rows)
    except Exception as e:
        rows.skip("ML-100k fit", e)
    measure(rows, args.quick)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
