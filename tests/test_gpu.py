"""The numba.cuda kernel (on the CPU simulator) and both implementations on a real GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from child import run_python

from mfrec import devices
from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.sampling import epoch_order, init_factors
from mfrec.torch_impl.model import MFModule

# Run under NUMBA_ENABLE_CUDASIM=1, which must be set before numba is imported: hence a
# subprocess. Tiny data: the simulator runs every GPU thread as a Python thread.
SIM_SCRIPT = """
import numpy as np
from mfrec import devices
from mfrec.reference import MatrixFactorization
from mfrec.reference.cuda import CudaMatrixFactorization
from replay import device_walk_fit, same

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
P, Q, bu, bi = device_walk_fit(u, i, r, 8, 7, 3, 3, 0.01, 0.02)
np.testing.assert_array_equal(dev.P, P)
np.testing.assert_array_equal(dev.bi, bi)
# One stream for the walks: the per-epoch path (a callback, eval_set or tol forces it) visits
# the ratings as the all-on-device path does, for either order and either kernel.
for lanes, threads in ((1, 1), (32, 32)):
    for order in ("host", "device"):
        kw = dict(hyper, blocks=1, threads=threads, lanes=lanes, order=order)
        solo = CudaMatrixFactorization(**kw).fit(u, i, r)
        stepped = CudaMatrixFactorization(**kw).fit(u, i, r, callback=lambda e, m: None)
        same(solo, stepped)
        if solo.history_ != stepped.history_:
            raise SystemExit(f"{order} lanes={lanes}: a callback changed the history")
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
    proc = run_python(SIM_SCRIPT, timeout=300, NUMBA_ENABLE_CUDASIM="1")
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


# The GPU test's grids, (lanes, blocks, threads) -> at most GPU_WORKERS workers on the device at
# once: threads 64 per block (default grid: 2 blocks) or 16 blocks of 8; warps 256 per block
# (default grid: 19 blocks, 152 warps) or 32 blocks of 4 warps.
GPU_GRIDS = [(1, None, 64), (1, 16, 8), (32, None, 256), (32, 32, 128)]
GPU_WORKERS = 152
MULTIPROCESSORS = 16  # the model's multiprocessors (each with its own L1) for the stale reads


def hogwild_waves(u, i, r, n_users, n_items, W, n_epochs=GPU_HYPER["n_epochs"], stale=False):
    """A NumPy model of the CUDA kernels at their most concurrent; returns the training RMSE.

    W workers take W ratings of the epoch's order at a time; all read Pᵤ, Qᵢ, bᵤ, bᵢ before any
    writes, then each stores its updated rows and, where workers share a row, the last store
    wins (the kernels' loads and stores through L2: steps of concurrent workers lost). With
    ``stale`` each read comes instead from the worker's multiprocessor's L1 (worker w on
    multiprocessor w mod MULTIPROCESSORS), which keeps every row it has read or stored since
    the launch began (plain loads: other multiprocessors' steps unseen, then undone).
    """
    lr, reg = GPU_HYPER["lr"], GPU_HYPER["reg"]
    rng = np.random.default_rng(0)  # the fit's stream (seed 0): P, Q, then an order per epoch
    P, Q = init_factors(rng, n_users, n_items, GPU_HYPER["n_factors"], 0.1, np.float64)
    bu, bi, mu = np.zeros(n_users), np.zeros(n_items), r.mean()
    tables = (bu, bi, P, Q)
    S = min(W, MULTIPROCESSORS)
    for _ in range(n_epochs):
        order = epoch_order(rng, r.shape[0], True)
        l1 = [np.zeros((S, *t.shape)) for t in tables]  # each launch starts with empty L1s
        held = [np.zeros((S, t.shape[0]), dtype=bool) for t in tables]
        for start in range(0, r.shape[0], W):
            j = order[start : start + W]
            uu, ii = u[j], i[j]
            sm = np.arange(j.shape[0]) % S  # (W,)
            rows = (uu, ii, uu, ii)
            before = []
            for t, ix, cache, has in zip(tables, rows, l1, held, strict=True):
                if stale:
                    miss = ~has[sm, ix]  # (W,): not in this multiprocessor's L1 yet
                    cache[sm[miss], ix[miss]] = t[ix[miss]]
                    has[sm[miss], ix[miss]] = True
                    before.append(cache[sm, ix])
                else:
                    before.append(t[ix])
            b_u, b_i, Pu, Qi = before  # (W,), (W,), (W, k), (W, k)
            err = r[j] - (mu + b_u + b_i + np.einsum("wk,wk->w", Pu, Qi))  # (W,)
            steps = (
                lr * (err - reg * b_u),
                lr * (err - reg * b_i),
                lr * (err[:, None] * Qi - reg * Pu),
                lr * (err[:, None] * Pu - reg * Qi),
            )
            for t, ix, cache, old, step in zip(tables, rows, l1, before, steps, strict=True):
                t[ix] = old + step  # a repeated row keeps one store only
                cache[sm, ix] = old + step  # a store also lands in the storer's L1
    return rmse(r, mu + bu[u] + bi[i] + np.einsum("nk,nk->n", P[u], Q[i]))


def test_gpu_workers_match_the_grids():
    from mfrec.reference.cuda import WARP, default_blocks

    u = gpu_problem()[0]
    for lanes, blocks, threads in GPU_GRIDS:
        grid = default_blocks(u.shape[0], threads, lanes) if blocks is None else blocks
        assert grid * threads // lanes <= GPU_WORKERS
    assert default_blocks(u.shape[0], 256, WARP) * 256 // WARP == GPU_WORKERS


def test_gpu_tolerance_admits_hogwild_staleness():
    # The GPU test below runs up to GPU_WORKERS workers on 40k ratings. Modelled as lock-step
    # waves of that many (every read as stale as that concurrency allows, every collision a
    # lost step), the fit must still end within the test's tolerance; reads from stale L1
    # lines (plain loads, the warp kernel's first version) must not: on an H200 that kernel
    # ended at RMSE 1.96-1.98, as this model does. So the GPU test tells the two apart.
    u, i, r, n_users, n_items = gpu_problem()
    few = slice(0, 2000)  # one worker is the serial rule (checked on a slice: a call per rating)
    serial = MatrixFactorization(**{**GPU_HYPER, "n_epochs": 2})
    serial.fit(u[few], i[few], r[few], n_users, n_items)
    serial_few = rmse(r[few], serial.predict(u[few], i[few]))
    for stale in (False, True):
        one = hogwild_waves(u[few], i[few], r[few], n_users, n_items, 1, n_epochs=2, stale=stale)
        assert one == pytest.approx(serial_few, rel=1e-9)
    serial = MatrixFactorization(**GPU_HYPER).fit(u, i, r, n_users, n_items)
    serial_rmse = rmse(r, serial.predict(u, i))
    waves_rmse = hogwild_waves(u, i, r, n_users, n_items, W=GPU_WORKERS)
    assert waves_rmse > serial_rmse  # lost steps cost something ...
    assert abs(waves_rmse - serial_rmse) <= hogwild_tolerance(serial_rmse)  # ... within bounds
    stale_rmse = hogwild_waves(u, i, r, n_users, n_items, W=GPU_WORKERS, stale=True)
    assert abs(stale_rmse - serial_rmse) > hogwild_tolerance(serial_rmse)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize(("lanes", "blocks", "threads"), GPU_GRIDS)
@pytest.mark.parametrize("order", ["host", "device"])
def test_numba_cuda_fit_reaches_serial_rmse(lanes, blocks, threads, order):
    from mfrec.reference.cuda import CudaMatrixFactorization

    u, i, r, n_users, n_items = gpu_problem()
    serial = MatrixFactorization(**GPU_HYPER).fit(u, i, r, n_users, n_items)
    # Several blocks run on several multiprocessors, whose L1 caches are not coherent within a
    # launch: on an H200 the warp kernel with plain loads and stores reached RMSE 1.96-1.98
    # here (39 blocks) against the serial 0.04, though one warp alone matched the reference to
    # 6e-17. test_gpu_tolerance_admits_hogwild_staleness backs the tolerance on the CPU.
    gpu = CudaMatrixFactorization(
        **GPU_HYPER, lanes=lanes, blocks=blocks, threads=threads, order=order
    ).fit(u, i, r, n_users, n_items)
    serial_rmse = rmse(r, serial.predict(u, i))
    assert abs(rmse(r, gpu.predict(u, i)) - serial_rmse) <= hogwild_tolerance(serial_rmse)


@pytest.mark.gpu
@needs_torch_gpu
@pytest.mark.parametrize(
    ("compile", "graph"),
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["eager", "compiled", "graph", "graph-compiled"],
)
def test_torch_minibatch_on_cuda_matches_cpu(compile, graph):
    from mfrec.torch_impl.model import TorchMatrixFactorization

    u, i, r, n_users, n_items = gpu_problem()
    hyper = dict(n_factors=8, n_epochs=3, lr=0.01, reg=0.01, biased=True, mode="minibatch")
    cpu_model = TorchMatrixFactorization(**hyper).fit(u, i, r, n_users, n_items)
    cuda_model = TorchMatrixFactorization(**hyper, device="cuda", compile=compile, graph=graph)
    cuda_model.fit(u, i, r, n_users, n_items)
    # Same order and float64 math; only the order in which the device adds up repeated rows
    # and reductions differs (rounding).
    np.testing.assert_allclose(cuda_model.P, cpu_model.P, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cuda_model.history_, cpu_model.history_, rtol=1e-9)
