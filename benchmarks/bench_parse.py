"""Parse 25M ratings: a synthetic ml-25m-shaped ratings.csv, first parse and cached load.

Run: ``python benchmarks/bench_parse.py [--rows N]`` (``make bench`` runs it). Writes the file
and its parse cache under benchmarks/out/ (git-ignored) and prints medians as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from synthetic import format_rows  # run as a script: benchmarks/ is on sys.path

OUT = Path(__file__).resolve().parent / "out"


def make_file(path: Path, rows: int, seed: int = 0) -> None:
    """ml-25m's layout: header, then userId,movieId,rating,timestamp with half-star ratings."""
    marker = path.with_suffix(".rows")
    if path.is_file() and marker.is_file() and marker.read_text() == f"v2 {rows}":
        return
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        step = 1_000_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            # Like a release: users in blocks, sorted, and no (user, item) pair twice.
            lo = 1 + start // step * 6_500
            users = np.sort(rng.integers(lo, lo + 6_500, n))
            idx = np.arange(n)
            new_user = np.r_[True, users[1:] != users[:-1]]
            run_start = np.maximum.accumulate(np.where(new_user, idx, 0))
            items = (users * 104_729 + 7 * (idx - run_start)) % 209_171 + 1
            halves = rng.integers(1, 11, n)
            stamps = rng.integers(789_652_009, 1_574_327_703, n)
            f.write(format_rows(users, items, halves, stamps, ",", style=2))
    os.replace(tmp, path)
    marker.write_text(f"v2 {rows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ["MFREC_CACHE"] = str(OUT / "cache")
    path = OUT / f"ratings-{args.rows}.csv"
    t0 = time.perf_counter()
    make_file(path, args.rows)
    generate = time.perf_counter() - t0

    from mfrec.data.parse import read_ratings

    t0 = time.perf_counter()  # compile the kernels once, on a tiny file
    tiny = OUT / "tiny.csv"
    tiny.write_text("1,2,3.5,4\n")
    read_ratings(tiny, cache=False)
    compile_s = time.perf_counter() - t0

    first, first_cpu, cached = [], [], []
    for _ in range(args.repeats):
        for f in (OUT / "cache" / "parsed").glob("*.npz"):
            f.unlink()
        t0, c0 = time.perf_counter(), time.process_time()
        table = read_ratings(path)
        first.append(time.perf_counter() - t0)
        first_cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        again = read_ratings(path)
        cached.append(time.perf_counter() - t0)
        assert len(again) == len(table)
    result = {
        "rows_in_file": args.rows,
        "rows_parsed": len(table),
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "generate_s": round(generate, 2),
        "jit_compile_s": round(compile_s, 2),
        "first_parse_s_median": round(statistics.median(first), 2),
        "first_parse_cpu_s_median": round(statistics.median(first_cpu), 2),
        "cached_load_s_median": round(statistics.median(cached), 2),
        "repeats": args.repeats,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "numba_jit": os.environ.get("NUMBA_DISABLE_JIT") != "1",
    }
    print(json.dumps(result, indent=2))
    (OUT / "bench_parse.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
