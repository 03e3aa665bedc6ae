"""Batched ``recommend`` against a Python loop of single calls, on an ML-25M-sized item table.

    python benchmarks/bench_recommend.py [--users 10000] [--items 62423] [--factors 100] [--k 100]

A synthetic fitted model (random P, Q and biases; each user has ~150 training items, ML-25M's
mean) stands in for a trained one: the cost of ranking does not depend on the values. Prints
the seconds of one batched call for every user, of the loop of ``model.recommend(user, k)``,
and of the loop the CLI ran before batching (``top_k(score_all(u), seen, k)``), and counts the
users whose lists differ (float32 scores of a matrix product and of a matrix-vector product
may differ in the last bit and swap two near-tied items).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mfrec.reference.mf import FactorModel
from mfrec.reference.recommend import seen_items, top_k


def synthetic_model(n_users: int, n_items: int, k: int, seen_per_user: int, seed: int = 0):
    """A FactorModel with random float32 factors and ``seen_per_user`` rated items per user."""
    rng = np.random.default_rng(seed)
    m = FactorModel()
    m.P = rng.normal(0, 0.1, (n_users, k)).astype(np.float32)
    m.Q = rng.normal(0, 0.1, (n_items, k)).astype(np.float32)
    m.bu = rng.normal(0, 0.3, n_users).astype(np.float32)
    m.bi = rng.normal(0, 0.3, n_items).astype(np.float32)
    m.mu, m.biased = 3.5, True
    m.r_min, m.r_max, m.r_mean_ = 0.5, 5.0, 3.5
    users = np.repeat(np.arange(n_users), seen_per_user)
    items = rng.integers(0, n_items, users.shape[0])
    m._seen_indptr, m._seen_indices = seen_items(users, items, n_users)
    return m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--items", type=int, default=62_423)
    p.add_argument("--factors", type=int, default=100)
    p.add_argument("--k", type=int, default=100)
    a = p.parse_args()
    model = synthetic_model(a.users, a.items, a.factors, 150)
    users = np.arange(a.users)
    model.recommend(users[:10], a.k)  # compile the top-k kernel outside the timing

    start = time.perf_counter()
    batch, _ = model.recommend(users, a.k)
    t_batch = time.perf_counter() - start

    start = time.perf_counter()
    loop = [model.recommend(int(u), a.k)[0] for u in users]
    t_loop = time.perf_counter() - start

    start = time.perf_counter()
    ptr, seen = model._seen_indptr, model._seen_indices
    old = [top_k(model.score_all(int(u)), seen[ptr[u] : ptr[u + 1]], a.k) for u in users]
    t_old = time.perf_counter() - start

    differ = sum(b.tolist() != s.tolist() for b, s in zip(batch, loop, strict=True))
    differ_old = sum(b.tolist() != s.tolist() for b, s in zip(batch, old, strict=True))
    print(f"{a.users:,} users × {a.items:,} items, k={a.factors} factors, top {a.k}:")
    print(f"  batched recommend(users, k):        {t_batch:8.2f} s")
    print(f"  loop of recommend(user, k):         {t_loop:8.2f} s  ({t_loop / t_batch:.1f}×)")
    print(f"  loop of top_k(score_all(u), seen):  {t_old:8.2f} s  ({t_old / t_batch:.1f}×)")
    print(f"  lists that differ from the batch: {differ} (loop), {differ_old} (top_k loop)")


if __name__ == "__main__":
    main()
