"""The Triton per-sample kernel: its logic on the CPU interpreter, its accuracy on a real GPU."""

from __future__ import annotations

import pytest
from child import run_python

from mfrec import devices
from mfrec.reference import MatrixFactorization, rmse

triton = pytest.importorskip("triton", reason="triton not installed (pip install 'mfrec[triton]')")

# TRITON_INTERPRET=1 must be set before triton is imported: hence a subprocess. The interpreter
# runs each program as Python (about 10 ms a tile step), so the data are tiny.
INTERPRET_SCRIPT = """
import numpy as np
from mfrec.reference import MatrixFactorization
from mfrec.torch_impl.triton_sgd import TritonMatrixFactorization, available
from replay import device_walk_fit, same

if available() != "cpu":
    raise SystemExit(f"the interpreter is not seen: available() = {available()!r}")
rng = np.random.default_rng(0)
u, i = rng.integers(0, 8, 60), rng.integers(0, 7, 60)
r = rng.integers(1, 6, 60).astype(float)
hyper = dict(n_factors=3, n_epochs=3, lr=0.01, reg=0.02, biased=True)
ref = MatrixFactorization(**hyper).fit(u, i, r)
# One program, one rating per tile, in order: the reference rule, bit for bit (float64).
one = TritonMatrixFactorization(**hyper, tile=1, programs=1).fit(u, i, r)
same(ref, one)
if one.history_ != ref.history_:
    raise SystemExit(f"history {one.history_} != {ref.history_}")
# order="device": epoch e walks pi[(a*t + b) mod n] (pi, (a, b) from the fit's generator,
# after P0 and Q0), on the all-on-device path and on the per-epoch one (a callback).
dev = TritonMatrixFactorization(**hyper, tile=1, programs=1, order="device").fit(u, i, r)
stepped = TritonMatrixFactorization(**hyper, tile=1, programs=1, order="device")
stepped.fit(u, i, r, callback=lambda e, m: None)
P, Q, bu, bi = device_walk_fit(u, i, r, 8, 7, 3, 3, 0.01, 0.02)
for model in (dev, stepped):
    for x, y in ((model.P, P), (model.Q, Q), (model.bu, bu), (model.bi, bi)):
        np.testing.assert_array_equal(x, y)
if dev.history_ != stepped.history_:
    raise SystemExit(f"a callback changed the history: {dev.history_} != {stepped.history_}")
# Unbiased, and a tile that straddles the end (60 = 7·8 + 4): masked ratings change nothing.
ref = MatrixFactorization(**dict(hyper, biased=False)).fit(u, i, r)
same(ref, TritonMatrixFactorization(**dict(hyper, biased=False), tile=1, programs=1).fit(u, i, r))
# Every rating on its own user and item row: updates commute, so tiles of 8 over 3 programs
# give the serial result and visit every rating exactly once (24 = 3 full tiles, 25: a part).
for n in (24, 25):
    u, i = np.arange(n), np.arange(n)[::-1].copy()
    r = rng.integers(1, 6, n).astype(float)
    ref = MatrixFactorization(**hyper).fit(u, i, r)
    tiles = TritonMatrixFactorization(**hyper, tile=8, programs=3).fit(u, i, r)
    same(ref, tiles, atol=1e-15)
    np.testing.assert_allclose(tiles.history_, ref.history_, rtol=1e-13)
# k=40 in a block of 64 (masked features), float32 beside float64.
u, i = rng.integers(0, 5, 40), rng.integers(0, 4, 40)
r = rng.integers(1, 6, 40).astype(float)
for dtype, atol in (("float64", 1e-13), ("float32", 1e-5)):
    h = dict(hyper, n_factors=40, dtype=dtype)
    ref = MatrixFactorization(**h).fit(u, i, r)
    tri = TritonMatrixFactorization(**h, tile=1, programs=1).fit(u, i, r)
    if tri.P.dtype != np.dtype(dtype):
        raise SystemExit(f"{dtype} fit returned {tri.P.dtype}")
    same(ref, tri, atol=atol)
print("ok")
"""


def test_triton_kernel_logic_on_interpreter():
    proc = run_python(INTERPRET_SCRIPT, timeout=600, TRITON_INTERPRET="1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


def test_triton_class_refuses_without_a_device(monkeypatch):
    from mfrec.torch_impl import triton_sgd

    monkeypatch.setattr(triton_sgd, "available", lambda: None)
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        triton_sgd.TritonMatrixFactorization()
    monkeypatch.setattr(triton_sgd, "available", lambda: "cpu")
    with pytest.raises(ValueError, match="order"):
        triton_sgd.TritonMatrixFactorization(order="gpu")


# ML-100k at scikit-surprise's defaults: the Triton fit's test RMSE within this of the serial
# fit's (the time-to-accuracy target of benchmarks/time_to_accuracy.py).
ML100K_TOLERANCE = 0.005


@pytest.mark.gpu
@pytest.mark.skipif(not devices.torch_cuda(), reason="no CUDA device visible to torch")
@pytest.mark.parametrize("order", ["host", "device"])
def test_triton_ml100k_within_hogwild_tolerance_of_serial(ml100k_split, order):
    from mfrec.torch_impl.triton_sgd import TritonMatrixFactorization

    train, test = ml100k_split
    hyper = dict(n_factors=100, n_epochs=20, lr=0.005, reg=0.02, biased=True)
    args = (train.users, train.items, train.ratings, train.n_users, train.n_items)
    serial = MatrixFactorization(**hyper).fit(*args)
    gpu = TritonMatrixFactorization(**hyper, order=order).fit(*args)
    serial_rmse = rmse(test.ratings, serial.predict(test.users, test.items))
    gpu_rmse = rmse(test.ratings, gpu.predict(test.users, test.items))
    assert abs(gpu_rmse - serial_rmse) <= ML100K_TOLERANCE
