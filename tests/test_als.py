"""True ALS: each half-step is an exact block minimiser; torch's batched solve agrees."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec import devices
from mfrec.reference.als import ALS, als_objective, als_penalty_weights, csr_by_row
from mfrec.torch_impl.als import TorchALS

N_USERS, N_ITEMS = 15, 11


def synthetic(seed: int, n: int = 80):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS - 1, n)  # the last user has no ratings
    items = rng.integers(0, N_ITEMS, n)
    ratings = rng.integers(1, 6, n).astype(np.float64)
    return users, items, ratings


def row_gradients(model, rows, cols, ratings, X, bx, n_rows):
    """∂objective/∂[bxₐ, Xₐ] for every row a: −2 Σ e·y + 2 λₐ x (bias column only if biased)."""
    err = ratings - model.raw_predict(*((rows, cols) if X is model.P else (cols, rows)))
    Y = model.Q if X is model.P else model.P
    lam = als_penalty_weights(np.bincount(rows, minlength=n_rows), model.reg, model.weighted)
    gX = 2 * lam[:, None] * X
    np.add.at(gX, rows, -2 * err[:, None] * Y[cols])
    gb = 2 * lam * bx
    np.add.at(gb, rows, -2 * err)
    return gX, gb


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("biased", [True, False])
def test_half_steps_zero_the_gradient_and_never_increase_the_objective(weighted, biased):
    users, items, ratings = synthetic(1)
    model = ALS(n_factors=3, n_iters=1, reg=0.3, weighted=weighted, biased=biased, seed=2)
    model.fit(users, items, ratings, N_USERS, N_ITEMS)  # sets P, Q, μ and a first iteration
    by_user = csr_by_row(users, items, ratings, N_USERS)
    by_item = csr_by_row(items, users, ratings, N_ITEMS)
    objective = [als_objective(model, users, items, ratings)]
    for _ in range(4):
        model.solve_users(by_user)
        gP, gbu = row_gradients(model, users, items, ratings, model.P, model.bu, N_USERS)
        objective.append(als_objective(model, users, items, ratings))
        model.solve_items(by_item)
        gQ, gbi = row_gradients(model, items, users, ratings, model.Q, model.bi, N_ITEMS)
        objective.append(als_objective(model, users, items, ratings))
        # float64 Cholesky solves of 3x3 / 4x4 systems: residuals are ~1e-14, far below 1e-8.
        assert np.abs(gP).max() <= 1e-8
        assert np.abs(gQ).max() <= 1e-8
        if biased:
            assert np.abs(gbu).max() <= 1e-8 and np.abs(gbi).max() <= 1e-8
    steps = np.diff(objective)
    # An exact block minimisation cannot increase the objective; allow rounding of the sum only.
    assert np.all(steps <= 1e-10 * objective[0]), steps
    assert objective[-1] < objective[0]
    assert np.all(model.P[N_USERS - 1] == 0.0), "a user without ratings gets the zero row"
    if not biased:
        assert np.all(model.bu == 0) and np.all(model.bi == 0)


def test_als_fits_a_low_rank_matrix():
    rng = np.random.default_rng(5)
    P_true = rng.normal(0, 1, (30, 2))
    Q_true = rng.normal(0, 1, (20, 2))
    u, i = np.divmod(np.arange(600), 20)
    keep = rng.random(600) < 0.6
    model = ALS(n_factors=2, n_iters=30, reg=1e-6, weighted=False).fit(
        u[keep], i[keep], (P_true @ Q_true.T)[u, i][keep], 30, 20
    )
    r_hat = model.raw_predict(u, i)
    # A rank-2 matrix observed at 60%: the held-out 40% is recovered too.
    np.testing.assert_allclose(r_hat, (P_true @ Q_true.T)[u, i], atol=1e-3)


@pytest.mark.parametrize("biased", [True, False])
def test_torch_als_equals_reference(biased):
    users, items, ratings = synthetic(9)
    kw = dict(n_factors=4, n_iters=5, reg=0.2, weighted=True, biased=biased, seed=4)
    ref = ALS(**kw).fit(users, items, ratings, N_USERS, N_ITEMS)
    tm = TorchALS(**kw).fit(users, items, ratings, N_USERS, N_ITEMS)
    # Cholesky (reference) vs LU (torch.linalg.solve) on well-conditioned float64 systems.
    np.testing.assert_allclose(tm.P, ref.P, rtol=0, atol=1e-10)
    np.testing.assert_allclose(tm.Q, ref.Q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(tm.bu, ref.bu, rtol=0, atol=1e-10)
    np.testing.assert_allclose(tm.bi, ref.bi, rtol=0, atol=1e-10)
    np.testing.assert_allclose(tm.history_, ref.history_, rtol=1e-10)


def test_als_rejects_zero_reg():
    with pytest.raises(ValueError, match="reg must be > 0"):
        ALS(reg=0.0)


@pytest.mark.gpu
def test_torch_als_on_cuda_equals_reference():
    if not devices.torch_cuda():
        pytest.skip("no CUDA device: the batched solve on the GPU cannot be checked here")
    users, items, ratings = synthetic(9)
    kw = dict(n_factors=4, n_iters=5, reg=0.2, weighted=True, biased=True, seed=4)
    ref = ALS(**kw).fit(users, items, ratings, N_USERS, N_ITEMS)
    gpu = TorchALS(**kw, device="cuda").fit(users, items, ratings, N_USERS, N_ITEMS)
    # float64 on the GPU: cuSOLVER's LU vs Cholesky, same tolerance as on the CPU.
    np.testing.assert_allclose(gpu.P, ref.P, rtol=0, atol=1e-10)
    np.testing.assert_allclose(gpu.Q, ref.Q, rtol=0, atol=1e-10)
