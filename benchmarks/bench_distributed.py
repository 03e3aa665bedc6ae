"""Throughput of data-parallel training: 1 vs 2 processes (gloo, CPU) on MovieLens 100k.

``python benchmarks/bench_distributed.py`` (``make bench`` runs it too) times, per batch size,
the plain one-process torch minibatch model and the distributed model with 1 and 2 ranks, each
with the touched-row and the dense gradient all-reduce, one torch thread per process. It reports
rank 0's median epoch (the first dropped as warm-up) as wall seconds, ratings per second and CPU
seconds, the load average around the run, and the bytes all-reduced per step. ``--crossover``
instead times rows vs dense sync on one rank for growing synthetic tables (what
``sync="auto"`` is set from). Results go to ``benchmarks/out/distributed*.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
FACTORS = 50
PARAMS = dict(n_factors=FACTORS, lr=0.01, reg=0.05, biased=True)
# (ranks, gradient sync); 0 ranks: the plain one-process model without torch.distributed.
SETUPS = [(0, "-"), (1, "rows"), (2, "rows"), (1, "dense"), (2, "dense")]


def load_train():
    """The 80% training split of MovieLens 100k that ``mfrec train`` uses (seed 0)."""
    from mfrec.data import load_ml100k
    from mfrec.data.splits import train_test_split

    full = load_ml100k(None)
    train_idx, _ = train_test_split(len(full), 0.2, 0)
    return full.subset(train_idx)


def epoch_times(model, users, items, ratings, n_users, n_items) -> dict[str, list[float]]:
    """Fit ``model``; wall and CPU seconds of each epoch as this process saw them."""
    wall, cpu = [time.perf_counter()], [time.process_time()]

    def stamp(epoch, m) -> None:
        wall.append(time.perf_counter())
        cpu.append(time.process_time())

    model.fit(users, items, ratings, n_users, n_items, callback=stamp)
    return {"wall": np.diff(wall).tolist(), "cpu": np.diff(cpu).tolist()}


def worker(args) -> None:
    """One rank (or the plain model): train, and on rank 0 print the epoch times as JSON."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    from mfrec.torch_impl import TorchMatrixFactorization
    from mfrec.torch_impl.distributed import DistributedMatrixFactorization, init_distributed

    if args.crossover:
        init_distributed(timeout_s=120)
        print(json.dumps(crossover_rows(args.batch_size[0])))
        dist.destroy_process_group()
        return
    train = load_train()
    data = (train.users, train.items, train.ratings, train.n_users, train.n_items)
    B = args.batch_size[0]
    if args.sync == "-":
        model = TorchMatrixFactorization(
            **PARAMS, n_epochs=args.epochs, mode="minibatch", batch_size=B
        )
        print(json.dumps(epoch_times(model, *data)))
        return
    rank = init_distributed(timeout_s=120)
    model = DistributedMatrixFactorization(
        **PARAMS, n_epochs=args.epochs, batch_size=B, sync=args.sync
    )
    times = epoch_times(model, *data)
    if rank == 0:
        print(json.dumps(times))
    dist.destroy_process_group()


def crossover_rows(B: int) -> list[dict]:
    """ms per step of rows vs dense sync, one rank, for tables of 2B..128B rows (best of 2)."""
    from mfrec.torch_impl.distributed import DistributedMatrixFactorization

    rng = np.random.default_rng(0)
    n = 40 * B
    out = []
    for n_rows in (2 * B, 3 * B, 4 * B, 8 * B, 32 * B, 128 * B):
        n_users = n_rows // 2
        users = rng.integers(0, n_users, n)
        items = rng.integers(0, n_rows - n_users, n)
        ratings = rng.integers(1, 6, n).astype(np.float64)
        data = (users, items, ratings, n_users, n_rows - n_users)
        row = {"table_rows": n_rows}
        for sync in ("rows", "dense"):
            model = DistributedMatrixFactorization(**PARAMS, n_epochs=2, batch_size=B, sync=sync)
            best = min(epoch_times(model, *data)["wall"][1] for _ in range(2))
            row[f"{sync}_ms_per_step"] = 1000 * best / (n // B)
        out.append(row)
    return out


def launch(args, world_size: int, sync: str, batch_size: int):
    """Start the ranks (``world_size`` 0: one plain process) and return rank 0's JSON output."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    cmd = [sys.executable, __file__, "--worker", "--batch-size", str(batch_size)]
    cmd += ["--epochs", str(args.epochs), "--sync", sync] + ["--crossover"] * args.crossover
    procs = []
    for rank in range(max(world_size, 1)):
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=str(rank))
        env.update(LOCAL_RANK=str(rank), WORLD_SIZE=str(max(world_size, 1)))
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed (world size {world_size}, batch {batch_size})")
    return json.loads(outs[0].strip().splitlines()[-1])


def bytes_per_step(train, batch_size: int, itemsize: int = 8) -> float:
    """Mean touched-row message per step, (|U_b| + |I_b|)·(k + 1)·itemsize, over one epoch."""
    order = np.random.default_rng(0).permutation(len(train))
    sizes = []
    for start in range(0, order.shape[0], batch_size):
        idx = order[start : start + batch_size]
        touched = np.unique(train.users[idx]).size + np.unique(train.items[idx]).size
        sizes.append(touched * (FACTORS + 1) * itemsize)
    return float(np.mean(sizes))


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}, load avg {load}"


def main() -> None:
    """Run every configuration, print a table and write benchmarks/out/distributed*.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run (first dropped)")
    parser.add_argument("--crossover", action="store_true", help="rows vs dense on one rank")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sync", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"before: {machine()}")
    if args.crossover:
        rows = launch(args, 1, "auto", args.batch_size[0])
        print(f"batch {args.batch_size[0]}, one rank: ms per step")
        print(f"{'table rows':>10} {'rows sync':>10} {'dense sync':>10}")
        for row in rows:
            print(
                f"{row['table_rows']:>10,} {row['rows_ms_per_step']:>10.2f} "
                f"{row['dense_ms_per_step']:>10.2f}"
            )
        (OUT / "distributed_crossover.json").write_text(json.dumps(rows, indent=1))
        print(f"after: {machine()}")
        return
    train = load_train()
    n = len(train)
    runs = []
    print(f"{n:,} ratings, k={FACTORS}, biased, float64, one torch thread per process")
    print(f"{'batch':>6} {'ranks':>5} {'sync':>5} {'s/epoch':>8} {'ratings/s':>10} "
          f"{'vs 1 rank':>9} {'CPU s/epoch':>11}")  # fmt: skip
    print("('vs 1 rank': wall time of 1 rank over 2 ranks, same sync; CPU: rank 0's own)")
    for B in args.batch_size:
        one_rank = {}
        for world_size, sync in SETUPS:
            times = launch(args, world_size, sync, B)
            wall = statistics.median(times["wall"][1:])
            cpu = statistics.median(times["cpu"][1:])
            if world_size == 1:
                one_rank[sync] = wall
            ratio = f"{one_rank[sync] / wall:.2f}x" if world_size == 2 else ""
            ranks = world_size or "plain"
            print(f"{B:>6} {ranks:>5} {sync:>5} {wall:>8.3f} {n / wall:>10,.0f} {ratio:>9} "
                  f"{cpu:>11.3f}")  # fmt: skip
            runs.append(dict(batch_size=B, world_size=world_size, sync=sync, **times))
        dense = (train.n_users + train.n_items) * (FACTORS + 1) * 8
        print(f"{B:>6} all-reduce per step: touched rows {bytes_per_step(train, B):,.0f} bytes "
              f"(mean), dense {dense:,} bytes")  # fmt: skip
    print(f"after: {machine()}")
    (OUT / "distributed.json").write_text(json.dumps({"n_ratings": n, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
