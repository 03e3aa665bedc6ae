"""Every SGD kernel against the naive epoch of the biased rule with L2 (tests/naive.py).

One small problem (8 users, 7 items, 60 ratings, k = 3, float64, 3 epochs, biases and reg on),
fitted by each kernel through its public class, and by ``naive.sgd_epoch_biased`` (plain Python
loops) from the same start (P, then Q, drawn from ``default_rng(seed)``) in the same visiting
order: a fresh permutation per epoch from the same generator, or, for the blocked kernel, its
own block order, rebuilt here from its documented schedule. The CUDA kernel runs on Numba's
simulator and the Triton kernel on Triton's interpreter, each in a subprocess (their switches
must be set before numba or triton is imported), one GPU thread (program) at a time.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import numpy as np
import pytest
from child import run_python
from naive import sgd_epoch_biased
from problems import random_ratings

from mfrec.reference.blocked import balanced_blocks, n_blocks_for

N_USERS, N_ITEMS, N = 8, 7, 60
HYPER: dict[str, Any] = dict(
    n_factors=3, n_epochs=3, lr=0.02, reg=0.05, init_std=0.1, biased=True, seed=4
)
# float64, 180 steps over rows of 3 features: the kernels differ from the naive loop only in
# rounding (SIMD and FMA reassociation in "fast"/"hogwild", lr·reg folded in "blocked"), about
# 1e-16 a step; 1e-12 leaves four orders of magnitude and still catches any wrong term
# (a missing reg·Pᵤ moves P by ~1e-4 here).
TOL = 1e-12

# (class, its keyword arguments, whether it needs a subprocess with this environment switch)
KERNELS = {
    "exact": ("mfrec.reference:MatrixFactorization", dict(kernel="exact"), None),
    "fast": ("mfrec.reference:MatrixFactorization", dict(kernel="fast"), None),
    "hogwild": ("mfrec.reference:MatrixFactorization", dict(kernel="hogwild", n_threads=1), None),
    "blocked": (
        "mfrec.reference:MatrixFactorization",
        dict(kernel="blocked", n_threads=1, shuffle=False),
        None,
    ),
    "cuda-simulator": (
        "mfrec.reference.cuda:CudaMatrixFactorization",
        dict(blocks=1, threads=1, lanes=1),
        "NUMBA_ENABLE_CUDASIM",
    ),
    "triton-interpreter": (
        "mfrec.torch_impl.triton_sgd:TritonMatrixFactorization",
        dict(tile=1, programs=1),
        "TRITON_INTERPRET",
    ),
    "torch-exact": ("mfrec.torch_impl:TorchMatrixFactorization", dict(mode="exact"), None),
}

FIT_SCRIPT = """
import importlib, json, sys
import numpy as np
module, name = sys.argv[1].split(":")
cls = getattr(importlib.import_module(module), name)
data = np.load(sys.argv[3])
m = cls(**json.loads(sys.argv[2])).fit(
    data["users"], data["items"], data["ratings"], n_users=int(data["n_users"]),
    n_items=int(data["n_items"]))
np.savez(sys.argv[4], P=m.P, Q=m.Q, bu=m.bu, bi=m.bi, history=np.array(m.history_))
"""


def _problem():
    return random_ratings(np.random.default_rng(0), N, N_USERS, N_ITEMS)


def blocked_order(users, items) -> np.ndarray:
    """The blocked kernel's visiting order on one thread with ``shuffle=False``, from its
    documented schedule (reference/blocked.py): a B×B grid of id-range blocks cut into G×G
    super-blocks (G = 2 for one thread, m = B/G blocks a side); for each step s, super-blocks
    (a, (a + s) mod G) for a = 0…G−1, their m×m blocks row by row, each block's ratings in
    input order."""
    G = 2
    B = n_blocks_for(N_USERS, N_ITEMS, HYPER["n_factors"], 8, G)
    user_block, item_block = balanced_blocks(users, N_USERS, B), balanced_blocks(items, N_ITEMS, B)
    block = user_block[users] * B + item_block[items]  # (N,) block index of each rating
    m = B // G
    order = []
    for s in range(G):
        for a in range(G):
            c = (a + s) % G
            for x in range(m):
                for y in range(m):
                    order.extend(np.flatnonzero(block == (a * m + x) * B + c * m + y))
    return np.array(order)


def naive_fit(users, items, ratings, fixed_order=None) -> dict[str, np.ndarray]:
    """The naive epochs from the models' start: P, then Q, from ``default_rng(seed)``, then
    one permutation per epoch from it (or ``fixed_order`` every epoch)."""
    k, lr, reg = HYPER["n_factors"], HYPER["lr"], HYPER["reg"]
    rng = np.random.default_rng(HYPER["seed"])
    P = rng.normal(0.0, HYPER["init_std"], size=(N_USERS, k))
    Q = rng.normal(0.0, HYPER["init_std"], size=(N_ITEMS, k))
    bu, bi, mu = np.zeros(N_USERS), np.zeros(N_ITEMS), float(ratings.mean())
    history = []
    for _ in range(HYPER["n_epochs"]):
        order = rng.permutation(N) if fixed_order is None else fixed_order
        history.append(sgd_epoch_biased(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg))
    return dict(P=P, Q=Q, bu=bu, bi=bi, history=np.array(history) / N)


def fit_in_subprocess(target, kwargs, switch, users, items, ratings, tmp_path):
    data, out = tmp_path / "data.npz", tmp_path / "out.npz"
    np.savez(data, users=users, items=items, ratings=ratings, n_users=N_USERS, n_items=N_ITEMS)
    argv = (target, json.dumps(kwargs), str(data), str(out))
    proc = run_python(FIT_SCRIPT, *argv, timeout=600, **{switch: "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(out) as fitted:
        return {name: fitted[name] for name in fitted.files}


def _skip_unless_available(name: str) -> None:
    if name == "cuda-simulator":
        pytest.importorskip("numba.cuda", reason="numba.cuda (the simulator) not importable")
    if name == "triton-interpreter":
        pytest.importorskip("triton", reason="triton not installed (pip install 'mfrec[triton]')")


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_equals_naive_epochs(name, tmp_path):
    _skip_unless_available(name)
    target, extra, switch = KERNELS[name]
    users, items, ratings = _problem()
    kwargs = {**HYPER, "dtype": "float64", **extra}
    if switch is None:
        module, cls_name = target.split(":")
        model = getattr(importlib.import_module(module), cls_name)(**kwargs)
        m = model.fit(users, items, ratings, n_users=N_USERS, n_items=N_ITEMS)
        got = dict(P=m.P, Q=m.Q, bu=m.bu, bi=m.bi, history=np.array(m.history_))
    else:
        got = fit_in_subprocess(target, kwargs, switch, users, items, ratings, tmp_path)
    fixed = blocked_order(users, items) if name == "blocked" else None
    want = naive_fit(users, items, ratings, fixed)
    for key in ("P", "Q", "bu", "bi"):
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=TOL, err_msg=key)
    np.testing.assert_allclose(got["history"], want["history"], rtol=TOL, err_msg="history")
    assert np.abs(want["bi"]).max() > 1e-3  # the biases moved: comparing them tests something


def test_blocked_order_visits_every_rating_once():
    users, items, _ = _problem()
    assert np.array_equal(np.sort(blocked_order(users, items)), np.arange(N))
