"""Time to accuracy: epochs and seconds each training path needs to come within TARGET of the
serial reference fit's test RMSE.

    python benchmarks/time_to_accuracy.py [--problem ml100k|synthetic] [--n N] [--gpu-only]

Problems. ``ml100k``: the seeded 80/20 split at scikit-surprise's defaults (k=100, lr=0.005,
reg=0.02, biased, float64, 20 epochs). ``synthetic``: N ratings from a known truth
r = μ + bᵤ + bᵢ + Pᵤ·Qᵢ (rank 16) plus N(0, NOISE²) noise on the ML-25M grid (162,541 × 59,047;
for N < 25M both sides scaled by N/25M, keeping its density), users and items drawn uniformly,
10% held out; fitted at k=32, lr=0.01, reg=0.02, biased, float32, 20
epochs. Its floor is NOISE (no model does better on the held-out ratings). ``make bench`` runs
ML-100k and a 1M-rating synthetic on the CPU (the 2-core VM: a few minutes); the 25M problem
runs in ``benchmarks/gpu_session.sh`` (``--n 25000000``), where the serial reference takes
about a minute of CPU.

Paths: numba exact (the reference, also the target; with ``--gpu-only`` the serial fast kernel
gives the target, untimed), blocked on 1 and 2 threads, and where a
GPU is present numba.cuda (warp per rating, ``order="device"``), Triton (tiles of 4,
``order="device"``), torch minibatch at three batch sizes (CUDA graph on the GPU). Learning
rate rule for the minibatch path: the model steps lr·B on the batch-mean loss, so every rating
moves its rows by the per-sample lr, as one reference step would (no other scaling).
Seconds are the fit's wall time up to that epoch, evaluation left out (each path's per-epoch
copy of the factors to the host, which its callback needs, is counted). Writes
``benchmarks/out/tta-<problem>.json``, ``.md`` and ``.png`` (test RMSE against seconds, every
path); ``benchmarks/report.py`` adds the ``.md`` tables to the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mfrec import devices
from mfrec._internal import atomic_write
from mfrec.reference import MatrixFactorization, rmse

TARGET = 0.005  # "within 0.005 of the serial reference fit's test RMSE"
SURPRISE = dict(n_factors=100, n_epochs=20, lr=0.005, reg=0.02, init_std=0.1, biased=True)
SYNTHETIC = dict(n_factors=32, n_epochs=20, lr=0.01, reg=0.02, biased=True, dtype="float32")
ML25M_USERS, ML25M_ITEMS = 162_541, 59_047
RANK, NOISE = 16, 0.5
OUT = Path("benchmarks/out")


def synthetic(n: int, seed: int = 0):
    """(train, test) of n ratings from a rank-RANK truth plus N(0, NOISE²) noise, 10% held out;
    each is (users, items, ratings float32); also (n_users, n_items)."""
    rng = np.random.default_rng(seed)
    scale = min(1.0, n / 25_000_000)
    n_users, n_items = int(ML25M_USERS * scale), int(ML25M_ITEMS * scale)
    sigma = RANK**-0.25  # Pᵤ·Qᵢ has variance RANK·σ⁴ = 1: the signal's std 1, the noise's 0.5
    P = rng.normal(0, sigma, (n_users, RANK)).astype(np.float32)
    Q = rng.normal(0, sigma, (n_items, RANK)).astype(np.float32)
    bu = rng.normal(0, 0.3, n_users).astype(np.float32)
    bi = rng.normal(0, 0.3, n_items).astype(np.float32)
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    r = 3.5 + bu[u] + bi[i] + np.einsum("nk,nk->n", P[u], Q[i]) + rng.normal(0, NOISE, n)
    r = r.astype(np.float32)
    test = rng.random(n) < 0.1
    split = [(u[m], i[m], r[m]) for m in (~test, test)]
    return split[0], split[1], (n_users, n_items)


def ml100k():
    from mfrec.data import load_ml100k, train_test_split

    data = load_ml100k(download=False)
    tr, te = train_test_split(len(data), test_size=0.2, seed=0)
    train, test = data.subset(tr), data.subset(te)
    as_tuple = [(s.users, s.items, s.ratings) for s in (train, test)]
    return as_tuple[0], as_tuple[1], (data.n_users, data.n_items)


def trace(model, train, test, shape) -> list[tuple[int, float, float]]:
    """Fit ``model`` with a per-epoch callback; [(epoch, training seconds so far, test RMSE)]."""
    points = []
    paused = 0.0
    start = time.perf_counter()

    def callback(epoch, m):
        nonlocal paused
        now = time.perf_counter()
        test_rmse = rmse(test[2], m.predict(test[0], test[1]))
        points.append((epoch + 1, now - start - paused, float(test_rmse)))
        paused += time.perf_counter() - now

    model.fit(*train, *shape, callback=callback)
    return points


def paths(problem: str, n_train: int, gpu_only: bool) -> list[tuple[str, str, object]]:
    """(name, device, unfitted model) for every path present here."""
    hyper = SURPRISE if problem == "ml100k" else SYNTHETIC
    out = []
    if not gpu_only:
        out += [
            ("numba exact (reference)", "cpu", MatrixFactorization(**hyper, kernel="exact")),
            ("numba blocked 1 thread", "cpu", MatrixFactorization(**hyper, kernel="blocked")),
            (
                "numba blocked 2 threads",
                "cpu",
                MatrixFactorization(**hyper, kernel="blocked", n_threads=2),
            ),
        ]
    from mfrec.torch_impl.model import TorchMatrixFactorization

    if devices.numba_cuda():
        from mfrec.reference.cuda import CudaMatrixFactorization

        model = CudaMatrixFactorization(**hyper, order="device")
        out.append(("numba.cuda warp/rating", "cuda", model))
    from mfrec.torch_impl.triton_sgd import TritonMatrixFactorization, available

    if available() == "cuda":
        out.append(("Triton tile 4", "cuda", TritonMatrixFactorization(**hyper, order="device")))
    gpu = devices.torch_cuda()
    if gpu:
        sizes = (16384, 1 << 16, 1 << 18) if problem != "ml100k" else (1024, 4096, 16384)
    else:
        # On the CPU the synthetic problem's minibatch fits take minutes each: ML-100k only.
        sizes = (256, 1024, 4096) if problem == "ml100k" and not gpu_only else ()
    for B in sizes:
        if B > n_train:
            continue
        kw = dict(mode="minibatch", batch_size=B, device="cuda" if gpu else "cpu", graph=gpu)
        name = f"torch minibatch B={B}" + (" CUDA graph" if gpu else "")
        out.append((name, "cuda" if gpu else "cpu", TorchMatrixFactorization(**hyper, **kw)))
    return out


def reached(points, goal: float):
    """The first (epoch, seconds, rmse) with test RMSE <= goal, or None."""
    return next((p for p in points if p[2] <= goal), None)


def render(problem: str, label: str, results: dict, goal: float, ref_rmse: float) -> str:
    lines = [
        f"## Time to accuracy: {label}",
        "",
        f"Target: test RMSE <= {goal:.4f} (the serial reference fit's final {ref_rmse:.4f} + "
        f"{TARGET}). Seconds: training wall time up to that epoch, evaluation excluded.",
        "",
        "| path | device | epochs to target | seconds to target | final test RMSE |",
        "|---|---|---|---|---|",
    ]
    for name, res in results.items():
        hit = reached(res["points"], goal)
        epochs, secs = ("not reached", "") if hit is None else (str(hit[0]), f"{hit[1]:.3f}")
        final = res["points"][-1][2] if res["points"] else float("nan")
        lines.append(f"| {name} | {res['device']} | {epochs} | {secs} | {final:.4f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, label: str, goal: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, res in results.items():
        pts = res["points"]
        if pts:
            ax.plot([p[1] for p in pts], [p[2] for p in pts], marker=".", label=name)
    ax.axhline(goal, color="grey", linestyle="--", label="target")
    ax.set_xscale("log")
    ax.set_xlabel("training seconds (log)")
    ax.set_ylabel("test RMSE")
    ax.set_title(f"time to accuracy: {label}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path, parents=True) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def write(slug: str, label: str, results: dict, goal: float, ref_rmse: float) -> None:
    """benchmarks/out/tta-<slug>.json, .md and .png from the paths so far."""
    text = render(slug, label, results, goal, ref_rmse)
    payload = dict(problem=label, target=goal, reference_rmse=ref_rmse, results=results)
    OUT.mkdir(parents=True, exist_ok=True)
    with atomic_write(OUT / f"tta-{slug}.json") as tmp:
        tmp.write_text(json.dumps(payload, indent=1))
    with atomic_write(OUT / f"tta-{slug}.md") as tmp:
        tmp.write_text(text)
    plot(results, label, goal, OUT / f"tta-{slug}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=("ml100k", "synthetic"), default="ml100k")
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic ratings")
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU paths but the target")
    args = parser.parse_args(argv)
    if args.problem == "ml100k":
        train, test, shape = ml100k()
        label, slug = "ML-100k 80k split, surprise defaults", "ml100k"
    else:
        train, test, shape = synthetic(args.n)
        label = f"synthetic {args.n:,} ratings, rank {RANK} + noise {NOISE} (floor {NOISE})"
        slug = f"synthetic-{args.n}"
    hyper = SURPRISE if slug == "ml100k" else SYNTHETIC
    results: dict[str, dict] = {}
    goal = ref_rmse = None
    if args.gpu_only:  # the target first (a time limit then costs paths, not the target): a
        # serial fit by the fast kernel (the exact kernel's rule and order, to rounding; the
        # exact kernel itself takes minutes at 25M)
        ref = trace(MatrixFactorization(**hyper, kernel="fast"), train, test, shape)
        ref_rmse = ref[-1][2]
    for name, device, model in paths(args.problem, len(train[2]), args.gpu_only):
        # JIT and torch.compile outside timing: one epoch of the same path on a slice.
        n_epochs, model.n_epochs = model.n_epochs, 1
        model.fit(*(a[:20_000] for a in train), *shape, callback=lambda e, m: None)
        model.n_epochs = n_epochs
        results[name] = {"device": device, "points": trace(model, train, test, shape)}
        print(name, device, results[name]["points"][-1], flush=True)
        if ref_rmse is None:  # the first path is the exact reference
            ref_rmse = results[name]["points"][-1][2]
        goal = ref_rmse + TARGET
        write(slug, label, results, goal, ref_rmse)  # after every path: a time limit keeps them
    if goal is None:
        print("no path ran", file=sys.stderr)
        return 1
    print(render(args.problem, label, results, goal, ref_rmse))
    return 0


if __name__ == "__main__":
    sys.exit(main())
