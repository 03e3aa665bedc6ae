"""The numba.cuda kernel (on the CPU simulator) and both implementations on a real GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.sampling import epoch_order, init_factors
from mfrec.torch_impl.model import MFModule

from mfrec import devices

ROOT = Path(__file__).resolve().parents[1]

# Run under NUMBA_ENABLE_CUDASIM=1, which must be set before numba is imported: hence a
# subprocess. Tiny data: the simulator runs every GPU thread as a Python thread.
SIM_SCRIPT = """
import numpy as np
from mfrec import devices
from mfrec.reference import MatrixFactorization
from mfrec.reference.cuda import CudaMatrixFactorization, coprime_step
from mfrec.reference.fast import epoch_kernel
from mfrec.reference.sampling import epoch_order, init_factors

def same(a, b, atol=0.0):
    for x, y in zip((a.P, a.Q, a.bu, a.bi), (b.P, b.Q, b.bu, b.bi)):
        np.testing.assert_allclose(y, x, rtol=0, atol=atol)

if not devices.numba_cuda():
    raise SystemExit("the simulator is not seen as a device")
rng = np.random.default_rng(0)
u, i = rng.integers(0, 8, 60), rng.integers(0, 7, 60)
r = rng.integers(1, 6, 60).astype(float)
hyper = dict(n_factors=3, n_epochs=3, lr=0.01, reg=0.02, biased=True)
ref = MatrixFactorization(**hyper).fit(u, i, r)
# One GPU thread walks the order serially: the reference rule, bit for bit, both on the
# device loop (all epochs, one copy back) and epoch by epoch (a callback forces that path).
one = CudaMatrixFactorization(**hyper, blocks=1, threads=1, lanes=1).fit(u, i, r)
same(ref, one)
if one.history_ != ref.history_:
    raise SystemExit(f"history {one.history_} != {ref.history_}")
seen = []
step = CudaMatrixFactorization(**hyper, blocks=1, threads=1, lanes=1)
step.fit(u, i, r, callback=lambda e, m: seen.append(m.P.copy()))
same(ref, step)
if len(seen) != 3 or not np.array_equal(seen[-1], ref.P):
    raise SystemExit("the per-epoch path did not refresh P after each epoch")
# order="device": epoch e walks pi[(a*t + b) mod n]; one thread is the reference rule on it.
dev = CudaMatrixFactorization(**hyper, blocks=1, threads=1, lanes=1, order="device").fit(u, i, r)
g = np.random.default_rng(0)
P, Q = init_factors(g, 8, 7, 3, 0.1, np.float64)
bu, bi, mu = np.zeros(8), np.zeros(7), r.mean()
pi = epoch_order(g, 60, True)
t = np.arange(60)
for _ in range(3):
    a = coprime_step(g, 60)
    walk = pi[(a * t + int(g.integers(60))) % 60]
    if np.array_equal(np.sort(walk), t) is False:
        raise SystemExit("the walk is not a permutation")
    epoch_kernel("exact", 1)(u, i, r, walk, P, Q, bu, bi, mu, 0.01, 0.02, True)
np.testing.assert_array_equal(dev.P, P)
np.testing.assert_array_equal(dev.bi, bi)
# Every rating on its own user and item row: updates commute, so 2 x 4 threads must give the
# serial result (to rounding: Σe² is summed per thread) and visit every rating exactly once,
# for either order, on either path.
u, i = np.arange(24), np.arange(24)[::-1].copy()
r = rng.integers(1, 6, 24).astype(float)
ref = MatrixFactorization(**hyper).fit(u, i, r)
many = CudaMatrixFactorization(**hyper, blocks=2, threads=4, lanes=1).fit(u, i, r)
same(ref, many, atol=1e-15)
np.testing.assert_allclose(many.history_, ref.history_, rtol=1e-13)
warps = CudaMatrixFactorization(**hyper, blocks=2, threads=64, lanes=32).fit(u, i, r)
same(ref, warps, atol=1e-15)
for lanes, threads in ((1, 4), (32, 64)):
    dev = CudaMatrixFactorization(**hyper, blocks=2, threads=threads, lanes=lanes, order="device")
    ref_dev = CudaMatrixFactorization(**hyper, blocks=1, threads=1, lanes=1, order="device")
    same(ref_dev.fit(u, i, r), dev.fit(u, i, r), atol=1e-15)
# One warp walks the order serially; k=40 > 32, so lanes 0-7 each own two features. The lanes'
# partial dot products are added in another order than the reference's loop: equal to 1e-13.
u, i = rng.integers(0, 5, 40), rng.integers(0, 4, 40)
r = rng.integers(1, 6, 40).astype(float)
hyper = dict(hyper, n_factors=40)
ref = MatrixFactorization(**hyper).fit(u, i, r)
warp = CudaMatrixFactorization(**hyper, blocks=1, threads=32, lanes=32).fit(u, i, r)
same(ref, warp, atol=1e-13)
np.testing.assert_allclose(warp.history_, ref.history_, rtol=1e-13)
# float32: the kernels sum in the factors' dtype, as the reference does.
ref = MatrixFactorization(**hyper, dtype="float32").fit(u, i, r)
warp = CudaMatrixFactorization(**hyper, dtype="float32", blocks=1, threads=32).fit(u, i, r)
if warp.P.dtype != np.float32:
    raise SystemExit(f"float32 fit returned {warp.P.dtype}")
same(ref, warp, atol=1e-5)
print("ok")
"""


def test_cuda_kernel_logic_on_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SIM_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_torch_minibatch_gradients_are_sparse_rows():
    rng = np.random.default_rng(0)
    P, Q = rng.normal(0, 0.1, (50, 4)), rng.normal(0, 0.1, (30, 4))
    module = MFModule(P, Q, biased=True, mu=3.0)
    u = torch.tensor([1, 4, 4, 7])
    i = torch.tensor([0, 2, 9, 2])
    loss, _ = module.loss(u, i, torch.tensor([4.0, 3.0, 5.0, 1.0], dtype=torch.float64), 0.02)
    loss.mean().backward()
    for emb, rows in ((module.P, u), (module.Q, i), (module.bu, u), (module.bi, i)):
        grad = emb.weight.grad
        assert grad.is_sparse  # no dense (n, k) gradient of the table
        assert set(grad.coalesce().indices()[0].tolist()) == set(rows.tolist())


needs_gpu = pytest.mark.skipif(not devices.numba_cuda(), reason="no CUDA device visible to numba")
needs_torch_gpu = pytest.mark.skipif(
    not devices.torch_cuda(), reason="no CUDA device visible to torch"
)


def gpu_problem():
    rng = np.random.default_rng(0)
    n_users, n_items, n = 500, 300, 40_000
    P_true = rng.normal(0, 1, (n_users, 4))
    Q_true = rng.normal(0, 1, (n_items, 4))
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    r = np.einsum("nk,nk->n", P_true[u], Q_true[i]) + 3.0
    return u, i, r, n_users, n_items


GPU_HYPER = dict(n_factors=8, n_epochs=15, lr=0.01, reg=0.01, biased=True)


def hogwild_tolerance(serial_rmse: float) -> float:
    """How far a Hogwild GPU fit's RMSE may end from the serial fit's on :func:`gpu_problem`."""
    return 0.01 + 0.05 * serial_rmse


def hogwild_waves(u, i, r, n_users, n_items, W, n_epochs=GPU_HYPER["n_epochs"], stores=False):
    """A NumPy model of the CUDA kernels at their most concurrent: W workers take W ratings of
    the epoch's order at a time, all read Pᵤ, Qᵢ, bᵤ, bᵢ before any writes, then every step is
    added (the kernels' atomic adds), or with ``stores`` each worker stores its updated row and
    the last store wins (plain stores: steps lost). Returns the training RMSE."""
    lr, reg = GPU_HYPER["lr"], GPU_HYPER["reg"]
    rng = np.random.default_rng(0)  # the fit's stream (seed 0): P, Q, then an order per epoch
    P, Q = init_factors(rng, n_users, n_items, GPU_HYPER["n_factors"], 0.1, np.float64)
    bu, bi, mu = np.zeros(n_users), np.zeros(n_items), r.mean()
    for _ in range(n_epochs):
        order = epoch_order(rng, r.shape[0], True)
        for start in range(0, r.shape[0], W):
            j = order[start : start + W]
            uu, ii = u[j], i[j]
            Pu, Qi, b_u, b_i = P[uu], Q[ii], bu[uu], bi[ii]  # (W, k), (W, k), (W,), (W,)
            err = r[j] - (mu + b_u + b_i + np.einsum("wk,wk->w", Pu, Qi))  # (W,)
            steps = (
                (bu, uu, b_u, lr * (err - reg * b_u)),
                (bi, ii, b_i, lr * (err - reg * b_i)),
                (P, uu, Pu, lr * (err[:, None] * Qi - reg * Pu)),
                (Q, ii, Qi, lr * (err[:, None] * Pu - reg * Qi)),
            )
            for table, rows, before, step in steps:
                if stores:
                    table[rows] = before + step  # a repeated row keeps one store only
                else:
                    np.add.at(table, rows, step)
    return rmse(r, mu + bu[u] + bi[i] + np.einsum("nk,nk->n", P[u], Q[i]))


def test_gpu_tolerance_admits_hogwild_staleness():
    # The GPU test below runs up to 64 blocks x 128 threads = 8192 workers on 40k ratings.
    # Modelled as lock-step waves of 8192 (every read as stale as that concurrency allows),
    # the fit must still end within the test's tolerance, and plain stores, which lose steps
    # (the kernels' first version), must not: the GPU test can tell the two apart.
    u, i, r, n_users, n_items = gpu_problem()
    few = slice(0, 2000)  # one worker is the serial rule (checked on a slice: a call per rating)
    serial = MatrixFactorization(**{**GPU_HYPER, "n_epochs": 2})
    serial.fit(u[few], i[few], r[few], n_users, n_items)
    one = hogwild_waves(u[few], i[few], r[few], n_users, n_items, W=1, n_epochs=2)
    assert one == pytest.approx(rmse(r[few], serial.predict(u[few], i[few])), rel=1e-9)
    serial = MatrixFactorization(**GPU_HYPER).fit(u, i, r, n_users, n_items)
    serial_rmse = rmse(r, serial.predict(u, i))
    waves_rmse = hogwild_waves(u, i, r, n_users, n_items, W=64 * 128)
    assert waves_rmse > serial_rmse  # staleness costs something ...
    assert abs(waves_rmse - serial_rmse) <= hogwild_tolerance(serial_rmse)  # ... within bounds
    stores_rmse = hogwild_waves(u, i, r, n_users, n_items, W=64 * 128, stores=True)
    assert abs(stores_rmse - serial_rmse) > hogwild_tolerance(serial_rmse)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("blocks", [None, 64], ids=["default-grid", "64-blocks"])
@pytest.mark.parametrize("lanes", [1, 32])
def test_numba_cuda_fit_reaches_serial_rmse(lanes, blocks):
    from mfrec.reference.cuda import CudaMatrixFactorization

    u, i, r, n_users, n_items = gpu_problem()
    serial = MatrixFactorization(**GPU_HYPER).fit(u, i, r, n_users, n_items)
    # 64 blocks run on many multiprocessors, whose L1 caches are not coherent within a launch.
    # On an H200 the warp kernel with plain loads and stores reached RMSE 1.96-1.98 here (39
    # blocks) against the serial 0.04, though one warp alone matched the reference to 6e-17;
    # the thread kernel's default grid for this problem is one block, which would hide that.
    # test_gpu_tolerance_admits_hogwild_staleness backs the tolerance on the CPU.
    gpu = CudaMatrixFactorization(**GPU_HYPER, lanes=lanes, blocks=blocks).fit(
        u, i, r, n_users, n_items
    )
    serial_rmse = rmse(r, serial.predict(u, i))
    assert abs(rmse(r, gpu.predict(u, i)) - serial_rmse) <= hogwild_tolerance(serial_rmse)


@pytest.mark.gpu
@needs_torch_gpu
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_torch_minibatch_on_cuda_matches_cpu(compile):
    from mfrec.torch_impl.model import TorchMatrixFactorization

    u, i, r, n_users, n_items = gpu_problem()
    hyper = dict(n_factors=8, n_epochs=3, lr=0.01, reg=0.01, biased=True, mode="minibatch")
    cpu_model = TorchMatrixFactorization(**hyper).fit(u, i, r, n_users, n_items)
    cuda_model = TorchMatrixFactorization(**hyper, device="cuda", compile=compile).fit(
        u, i, r, n_users, n_items
    )
    # Same order and float64 math; only the order in which the device adds up repeated rows
    # and reductions differs (rounding).
    np.testing.assert_allclose(cuda_model.P, cpu_model.P, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cuda_model.history_, cpu_model.history_, rtol=1e-9)
