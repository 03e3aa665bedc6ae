"""The Numba reference and the torch model walk the same trajectory, step for step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from naive import sgd_epoch_biased, sgd_epoch_literal
from problems import random_ratings

from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.kernels import _sgd_epoch
from mfrec.torch_impl import TorchMatrixFactorization


def _fit_pair(users, items, ratings, n_users, n_items, **params: Any):
    ref = MatrixFactorization(**params).fit(users, items, ratings, n_users, n_items)
    torch_ = TorchMatrixFactorization(**params, mode="exact").fit(
        users, items, ratings, n_users, n_items
    )
    return ref, torch_


# The torch exact mode takes one optimizer step per rating (about 0.6 ms on a quiet 2-core CPU;
# all 80,000 training ratings took this test 154 s), so the ML-100k trajectory runs on a seeded
# slice of the training part: 3 epochs of 5,000 ratings, P and Q of the full 943 x 1,682 shape.
# README states the claim at this size.
ML100K_SLICE = 5_000


def test_trajectory_numba_vs_torch_exact_on_ml100k(ml100k_split):
    train, test = ml100k_split
    part = train.subset(np.random.default_rng(0).choice(len(train), ML100K_SLICE, replace=False))
    ref, torch_ = _fit_pair(
        part.users,
        part.items,
        part.ratings,
        train.n_users,
        train.n_items,
        n_factors=10,
        n_epochs=3,
        lr=0.01,
        seed=0,
        dtype="float64",
    )
    ref_P, ref_Q, torch_P, torch_Q = ref.P, ref.Q, torch_.P, torch_.Q
    # 15,000 float64 steps; both apply the same operations, so only summation order in
    # the dot product differs: 1e-9 leaves six orders of magnitude above the ~1e-15 drift seen.
    assert np.max(np.abs(ref_P - torch_P)) <= 1e-9
    assert np.max(np.abs(ref_Q - torch_Q)) <= 1e-9
    ref_rmse = rmse(test.ratings, ref.predict(test.users, test.items))
    torch_rmse = rmse(test.ratings, torch_.predict(test.users, test.items))
    assert abs(ref_rmse - torch_rmse) <= 1e-9
    np.testing.assert_allclose(torch_.history_, ref.history_, rtol=1e-12)
    assert ref.history_[-1] < ref.history_[0]  # it trained: the comparison is of moving factors


@pytest.mark.parametrize("biased, reg, shuffle", [(False, 0.0, True), (True, 0.05, False)])
def test_small_trajectory_numba_vs_torch_exact(biased, reg, shuffle):
    rng = np.random.default_rng(3)
    n, n_users, n_items = 400, 30, 40
    users, items, ratings = random_ratings(rng, n, n_users, n_items)
    ref, torch_ = _fit_pair(
        users,
        items,
        ratings,
        n_users,
        n_items,
        n_factors=6,
        n_epochs=4,
        lr=0.02,
        reg=reg,
        biased=biased,
        shuffle=shuffle,
        seed=5,
    )
    # float64, 1,600 steps: rounding only (see the ML-100k test for the tolerance's margin).
    assert np.max(np.abs(ref.P - torch_.P)) <= 1e-12
    assert np.max(np.abs(ref.Q - torch_.Q)) <= 1e-12
    assert np.max(np.abs(ref.bu - torch_.bu)) <= 1e-12
    assert np.max(np.abs(ref.bi - torch_.bi)) <= 1e-12


def test_kernel_equals_naive_epoch_compiled_and_as_python():
    """The kernel, compiled and as its Python source (what NUMBA_DISABLE_JIT=1 runs), against
    the naive epoch of tests/naive.py, written independently of it; and the two equal bit for
    bit when the kernel is compiled (under NUMBA_DISABLE_JIT=1 there is only the source)."""
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 20, 300), rng.integers(0, 25, 300)
    ratings = rng.uniform(1, 5, 300)
    order = rng.permutation(300)
    P0, Q0 = rng.normal(0, 0.1, (20, 5)), rng.normal(0, 0.1, (25, 5))
    args = (users, items, ratings, order)
    runs = {}
    kernels = {"compiled": _sgd_epoch, "python": getattr(_sgd_epoch, "py_func", None)}
    for name, kernel in kernels.items():
        if kernel is not None:
            P, Q, bu, bi = P0.copy(), Q0.copy(), np.zeros(20), np.zeros(25)
            sse = kernel(*args, P, Q, bu, bi, 3.0, 0.01, 0.02, True)
            runs[name] = (P, Q, bu, bi, sse)
    naive_P, naive_Q, naive_bu, naive_bi = P0.copy(), Q0.copy(), np.zeros(20), np.zeros(25)
    naive_sse = sgd_epoch_biased(*args, naive_P, naive_Q, naive_bu, naive_bi, 3.0, 0.01, 0.02)
    assert np.abs(naive_bi).max() > 1e-3  # the item biases moved, so comparing them tests something
    for P, Q, bu, bi, sse in runs.values():
        # float64, the same operations in the same order: equal to rounding (1e-13 allows an
        # FMA contraction; nothing else may differ).
        for got, want in ((P, naive_P), (Q, naive_Q), (bu, naive_bu), (bi, naive_bi)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
        assert abs(sse - naive_sse) <= 1e-12 * naive_sse
    if "python" in runs:  # compiled: Numba must not change the arithmetic at all
        for got, want in zip(runs["compiled"], runs["python"], strict=True):
            np.testing.assert_array_equal(got, want)


def test_one_step_by_hand():
    """2 users × 2 items, one rating (u=0, i=1, r=5), lr=0.1, worked on paper.

    P₀ = [1, 0], Q₁ = [0.5, 1]: r' = 0.5, e = 4.5;
    P₀ ← [1, 0] + 0.1·4.5·[0.5, 1] = [1.225, 0.45];
    Q₁ ← [0.5, 1] + 0.1·4.5·[1, 0] = [0.95, 1]   (with the old P₀).
    """
    P0 = np.array([[1.0, 0.0], [0.2, 0.3]])
    Q0 = np.array([[0.1, 0.4], [0.5, 1.0]])
    model = MatrixFactorization(n_factors=2, n_epochs=1, lr=0.1, shuffle=False)
    model.fit([0], [1], [5.0], n_users=2, n_items=2, init=(P0, Q0))
    np.testing.assert_allclose(model.P, [[1.225, 0.45], [0.2, 0.3]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(model.Q, [[0.1, 0.4], [0.95, 1.0]], rtol=0, atol=1e-15)
    assert model.history_ == [pytest.approx(4.5**2, abs=1e-15)]
    torch_model = TorchMatrixFactorization(n_factors=2, n_epochs=1, lr=0.1, shuffle=False)
    torch_model.fit([0], [1], [5.0], n_users=2, n_items=2, init=(P0, Q0))
    np.testing.assert_allclose(torch_model.P, model.P, rtol=0, atol=1e-15)
    np.testing.assert_allclose(torch_model.Q, model.Q, rtol=0, atol=1e-15)
    assert P0[0, 0] == 1.0, "init arrays must be copied, not trained in place"


def test_literal_reading_differs_by_lr2_e2_Qi_at_every_step():
    """Updating Qᵢ with the new Pᵤ is another algorithm: per step (reg = 0) its Qᵢ exceeds the
    gradient step's by exactly lr²·e²·Qᵢ (docs/derivation.md §6), and Pᵤ is the same."""
    rng = np.random.default_rng(7)
    users, items, ratings = random_ratings(rng, 40, 6, 5)
    P, Q = rng.normal(0, 0.5, (6, 3)), rng.normal(0, 0.5, (5, 3))
    lr = 0.05
    zu, zi = np.zeros(6), np.zeros(5)
    for j in range(40):  # step by step from the gradient step's state
        u, i, one = users[j], items[j], np.array([j])
        e = ratings[j] - P[u] @ Q[i]
        want = lr**2 * e**2 * Q[i]
        lit_P, lit_Q = P.copy(), Q.copy()
        sgd_epoch_literal(users, items, ratings, one, lit_P, lit_Q, lr, 0.0, np.zeros_like(Q))
        _sgd_epoch(users, items, ratings, one, P, Q, zu, zi, 0.0, lr, 0.0, False)
        np.testing.assert_array_equal(lit_P, P)
        np.testing.assert_allclose(lit_Q[i] - Q[i], want, rtol=1e-9, atol=1e-16)
        others = np.arange(5) != i
        np.testing.assert_array_equal(lit_Q[others], Q[others])


def _epoch_drift(train, lr: float) -> tuple[float, float]:
    """(max |ΔQ|, ‖ΔQ − Σ lr²·e²·Qᵢ‖ / ‖Σ lr²·e²·Qᵢ‖) of one literal vs one gradient epoch."""
    rng = np.random.default_rng(0)
    k = 10
    P0 = rng.normal(0, 0.1, (train.n_users, k))
    Q0 = rng.normal(0, 0.1, (train.n_items, k))
    order = rng.permutation(len(train))
    grad_P, grad_Q = P0.copy(), Q0.copy()
    lit_P, lit_Q = P0.copy(), Q0.copy()
    predicted = np.zeros_like(Q0)  # Σ over the epoch's steps of lr²·e²·Qᵢ, row by row
    zu, zi = np.zeros(train.n_users), np.zeros(train.n_items)
    args = (train.users, train.items, train.ratings, order)
    _sgd_epoch(*args, grad_P, grad_Q, zu, zi, 0.0, lr, 0.0, False)
    sgd_epoch_literal(*args, lit_P, lit_Q, lr, 0.0, predicted)
    drift = lit_Q - grad_Q
    rel = np.linalg.norm(drift - predicted) / np.linalg.norm(predicted)
    return float(np.abs(drift).max()), float(rel)


def test_literal_reading_drift_over_an_epoch_is_the_summed_step_term(ml100k_split):
    """Over an ML-100k epoch the drift is the steps' lr²·e²·Qᵢ summed (first order; the
    second-order coupling through the drifted rows adds < 3% at lr ≤ 0.002, measured 1.9%)
    and it scales as lr²: halving lr quarters it."""
    train, _ = ml100k_split
    drift_2, rel_2 = _epoch_drift(train, 0.002)
    drift_1, rel_1 = _epoch_drift(train, 0.001)
    assert rel_2 <= 0.03 and rel_1 <= 0.01, (rel_2, rel_1)
    assert 3.6 <= drift_2 / drift_1 <= 4.4, (drift_2, drift_1)  # second order in lr
    assert drift_1 > 1e-3  # far above rounding (1e-15): a real, measurable difference


def test_minibatch_reaches_reference_rmse(ml100k_split):
    train, test = ml100k_split
    params: dict[str, Any] = dict(n_factors=20, n_epochs=20, lr=0.01, reg=0.05, biased=True, seed=0)
    ref = MatrixFactorization(**params).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items
    )
    mb = TorchMatrixFactorization(**params, mode="minibatch", batch_size=1024).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items
    )
    ref_rmse = rmse(test.ratings, ref.predict(test.users, test.items))
    mb_rmse = rmse(test.ratings, mb.predict(test.users, test.items))
    assert abs(mb_rmse - ref_rmse) <= 0.01, (ref_rmse, mb_rmse)
