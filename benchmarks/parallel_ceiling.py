"""How much two threads can gain on this machine at best: a compute-only loop, 1 vs 2 threads.

Each thread sums sin() over its own range (no shared data, no memory traffic), so the speed-up
is what the cores themselves give (two SMT siblings give ~1.5×, two real cores ~2×). Run:
``python benchmarks/parallel_ceiling.py``.
"""

from __future__ import annotations

import time

import numba
import numpy as np

N = 20_000_000


@numba.njit(parallel=True)
def _work(n_units: int, n: int) -> np.ndarray:
    out = np.zeros(n_units)
    for t in numba.prange(n_units):
        s = 0.0
        for j in range(n):
            s += np.sin(j * 1e-3 + t)
        out[t] = s
    return out


def seconds(n_threads: int) -> float:
    """Median wall time of ``n_threads`` units of work on ``n_threads`` threads."""
    numba.set_num_threads(n_threads)
    _work(n_threads, 10)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        _work(n_threads, N)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    """Print the two-thread speed-up of the compute-only loop (2 units in the time of 1)."""
    one, two = seconds(1), seconds(2)
    print(f"1 thread {one:.3f} s, 2 threads (twice the work) {two:.3f} s: {2 * one / two:.2f}x")


if __name__ == "__main__":
    main()
