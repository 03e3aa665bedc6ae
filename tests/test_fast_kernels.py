"""The fast and Hogwild kernels against the exact reference ``_sgd_epoch``."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from child import run_python
from problems import random_problem, random_ratings

from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.fast import _sgd_epoch_fast, _sgd_epoch_hogwild
from mfrec.reference.kernels import _sgd_epoch

# (kernel, dtype, atol); the Hogwild kernel with one thread is this kernel bit for bit (below).
# float64: the fast kernels reassociate the k-term dot product
# (SIMD lanes, FMA), a few ulps per step, and SGD at lr=0.01 does not amplify them over 3
# epochs (measured max 6e-16). float32: the fast kernels compute in float32 where the reference
# accumulates the dot product and the update in float64: a few float32 ulps of values ~1
# (measured max 2.4e-7).
CASES = [
    (_sgd_epoch_fast, np.float64, 1e-12),
    (_sgd_epoch_fast, np.float32, 1e-5),
]


@pytest.mark.parametrize("biased", [False, True])
@pytest.mark.parametrize(("kernel", "dtype", "atol"), CASES)
def test_fast_kernel_matches_reference(kernel, dtype, atol, biased):
    rng = np.random.default_rng(7)
    users, items, ratings, arrays = random_problem(rng, dtype)
    ref_arrays = [a.copy() for a in arrays]
    fast_arrays = [a.copy() for a in arrays]
    hyper = (dtype(ratings.mean()), dtype(0.01), dtype(0.02), biased)
    for _ in range(3):
        order = rng.permutation(ratings.shape[0])
        ref_sse = _sgd_epoch(users, items, ratings, order, *ref_arrays, *hyper)
        fast_sse = kernel(users, items, ratings, order, *fast_arrays, *hyper)
        assert fast_sse == pytest.approx(ref_sse, rel=1e-6)
    for ref_a, fast_a in zip(ref_arrays, fast_arrays, strict=True):
        np.testing.assert_allclose(fast_a, ref_a, rtol=0, atol=atol)
    for ref_a, start in zip(ref_arrays[:2], arrays[:2], strict=True):
        assert np.abs(ref_a - start).max() > 100 * atol  # training moved P and Q


def test_one_thread_hogwild_is_the_serial_fast_kernel_bit_for_bit():
    rng = np.random.default_rng(3)
    users, items, ratings, arrays = random_problem(rng, np.float32)
    serial_arrays = [a.copy() for a in arrays]
    hog_arrays = [a.copy() for a in arrays]
    order = rng.permutation(ratings.shape[0])
    hyper = (np.float32(3.0), np.float32(0.01), np.float32(0.02), True)
    serial_sse = _sgd_epoch_fast(users, items, ratings, order, *serial_arrays, *hyper)
    hog_sse = _sgd_epoch_hogwild(users, items, ratings, order, *hog_arrays, *hyper, 1)
    assert hog_sse == serial_sse
    for serial_a, hog_a in zip(serial_arrays, hog_arrays, strict=True):
        np.testing.assert_array_equal(hog_a, serial_a)


def fast_kernels_equal_reference() -> None:
    """The fast and two-thread Hogwild epochs against the reference epoch, bit for bit (the test
    below runs this in a child under NUMBA_DISABLE_JIT=1)."""
    rng = np.random.default_rng(0)
    u, i, r = random_ratings(rng, 200, 9, 7, float)
    P0, Q0 = rng.normal(0, 0.1, (9, 4)), rng.normal(0, 0.1, (7, 4))
    order = rng.permutation(200)
    runs = []
    for run in (_sgd_epoch, _sgd_epoch_fast, lambda *a: _sgd_epoch_hogwild(*a, 2)):
        A = [P0.copy(), Q0.copy(), np.zeros(9), np.zeros(7)]
        runs.append((run(u, i, r, order, *A, 3.5, 0.01, 0.02, True), A))
    (ref_sse, ref_A), (fast_sse, fast_A), (hog_sse, hog_A) = runs
    if not (fast_sse == ref_sse and all(map(np.array_equal, fast_A, ref_A))):
        raise SystemExit("fast kernel differs from the reference")
    if not all(map(np.array_equal, hog_A, ref_A)):
        raise SystemExit("Hogwild kernel differs from the reference")
    if not np.isclose(hog_sse, ref_sse, rtol=1e-14):  # Σe² summed as two partial sums
        raise SystemExit(f"Hogwild sse {hog_sse} != {ref_sse}")


def test_pure_python_fast_kernels_equal_reference_bit_for_bit():
    # Under NUMBA_DISABLE_JIT=1 nothing reassociates: float64 arithmetic is then identical,
    # and prange runs the Hogwild spans one after another, i.e. in the serial order.
    code = "from test_fast_kernels import fast_kernels_equal_reference as check; check()"
    proc = run_python(code, NUMBA_DISABLE_JIT="1")
    assert proc.returncode == 0, proc.stderr


def test_unknown_kernel_is_rejected():
    with pytest.raises(ValueError, match="kernel must be one of"):
        MatrixFactorization(kernel="turbo")
    with pytest.raises(ValueError, match="n_threads"):
        MatrixFactorization(n_threads=0)


@pytest.mark.parametrize("kernel", ["exact", "fast"])
def test_serial_kernel_with_threads_is_an_error_not_hogwild(kernel):
    # Threads run only under a kernel that says so: "hogwild" (lock-free) or "blocked".
    with pytest.raises(ValueError, match="runs on one thread.*hogwild"):
        MatrixFactorization(kernel=kernel, n_threads=2)


def test_hogwild_runs_the_hogwild_kernel(monkeypatch):
    import mfrec.reference.fast as fast

    calls = []
    real = fast._sgd_epoch_hogwild

    def spy(*args):
        calls.append(args[-1])  # the thread count
        return real(*args)

    monkeypatch.setattr(fast, "_sgd_epoch_hogwild", spy)
    rng = np.random.default_rng(0)
    u, i, r = rng.integers(0, 9, 300), rng.integers(0, 7, 300), rng.integers(1, 6, 300) * 1.0
    MatrixFactorization(n_epochs=2, kernel="hogwild", n_threads=2).fit(u, i, r)
    assert calls == [min(2, numba.config.NUMBA_NUM_THREADS)] * 2  # pyright: ignore[reportPrivateImportUsage]


def test_two_thread_hogwild_keeps_ml100k_test_rmse(ml100k_split):
    train, test = ml100k_split  # tests/conftest.py: the seed-0 80/20 split
    n_users, n_items = train.n_users, train.n_items
    hyper = dict(n_factors=20, n_epochs=20, lr=0.01, reg=0.05, biased=True, seed=0)
    rmses = {}
    for n_threads in (1, 2):
        kernel = "exact" if n_threads == 1 else "hogwild"
        model = MatrixFactorization(**hyper, kernel=kernel, n_threads=n_threads)
        model.fit(train.users, train.items, train.ratings, n_users, n_items)
        rmses[n_threads] = rmse(test.ratings, model.predict(test.users, test.items))
    assert rmses[1] < 1.0  # the serial model learned something
    assert abs(rmses[2] - rmses[1]) <= 0.003, rmses


def test_models_describe_what_trains():
    from mfrec.torch_impl import TorchMatrixFactorization

    plain = MatrixFactorization(biased=False).describe()
    assert "biased" not in plain.replace("no biases", "") and "numba kernel exact" in plain
    hog = MatrixFactorization(biased=True, kernel="hogwild", n_threads=2).describe()
    assert hog.startswith("biased SGD MF") and hog.endswith("numba kernel hogwild on 2 threads")
    torch_ = TorchMatrixFactorization(mode="minibatch", batch_size=64).describe()
    assert torch_.startswith("SGD MF (no biases)") and "torch minibatch (batch 64) on cpu" in torch_
