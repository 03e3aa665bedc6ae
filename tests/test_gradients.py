"""The slides' analytic gradients against the package's own code: the torch model's autograd,
central differences of the loss on the Numba predictor, and one step of the Numba kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from naive import sgd_step, slide_gradients, slide_loss
from scipy.differentiate import jacobian

from mfrec.reference.kernels import _predict, _sgd_epoch
from mfrec.torch_impl import MFModule


def _random_case(seed: int, k: int = 8):
    """P (3, k), Q (4, k) and one observed rating (u, i, r)."""
    rng = np.random.default_rng(seed)
    P, Q = rng.normal(0, 0.5, (3, k)), rng.normal(0, 0.5, (4, k))
    return P, Q, int(rng.integers(3)), int(rng.integers(4)), float(rng.uniform(1, 5))


def _dense_grad(table: torch.nn.Embedding) -> np.ndarray:
    """The gradient autograd left on an embedding table, its sparse rows made dense: (n, k)."""
    grad = table.weight.grad
    assert grad is not None, "backward() left no gradient on the table"
    return grad.to_dense().numpy()


@pytest.mark.parametrize("seed", range(5))
def test_analytic_gradients_equal_autograd(seed):
    """The torch model's loss (MFModule.loss: ½e², reg = 0) through autograd is half the
    slides' gradient of (r − r')², on row Pᵤ and Qᵢ and nowhere else."""
    P, Q, u, i, r = _random_case(seed)
    module = MFModule(P, Q, biased=False, mu=0.0)
    r_t = torch.tensor([r], dtype=torch.float64)
    loss, _ = module.loss(torch.tensor([u]), torch.tensor([i]), r_t, 0.0)
    loss.sum().backward()
    ref_gP, ref_gQ = slide_gradients(P[u], Q[i], r)
    torch_gP = 2 * _dense_grad(module.P)  # (3, k)
    torch_gQ = 2 * _dense_grad(module.Q)  # (4, k)
    # float64 with one dot product of k=8 terms: only rounding separates the two (1e-12 relative).
    for ref, got in ((ref_gP, torch_gP[u]), (ref_gQ, torch_gQ[i])):
        assert np.max(np.abs(ref - got)) <= 1e-12 * np.max(np.abs(ref))
    assert not np.delete(torch_gP, u, axis=0).any() and not np.delete(torch_gQ, i, axis=0).any()
    assert abs(slide_loss(P[u], Q[i], r) - 2 * loss.item()) <= 1e-12 * slide_loss(P[u], Q[i], r)


@pytest.mark.parametrize("seed", range(5))
def test_analytic_gradients_equal_central_differences(seed):
    """Central differences of (r − r')², r' from the package's predictor (kernels._predict)."""
    P, Q, u, i, r = _random_case(seed)
    k = P.shape[1]
    ref_gP, ref_gQ = slide_gradients(P[u], Q[i], r)
    one_u, one_i, zeros = np.array([u]), np.array([i]), np.zeros(4)

    def loss_of(x):  # x: (2k, ...) batch of stacked [Pu; Qi] columns, as scipy vectorises
        columns = x.reshape(2 * k, -1)
        out = np.empty(columns.shape[1])
        for c in range(columns.shape[1]):
            P_c, Q_c = P.copy(), Q.copy()
            P_c[u], Q_c[i] = columns[:k, c], columns[k:, c]
            r_hat = _predict(one_u, one_i, P_c, Q_c, zeros, zeros, 0.0, False, np.empty(1))[0]
            out[c] = (r - r_hat) ** 2
        return out.reshape(x.shape[1:])

    res = jacobian(loss_of, np.concatenate([P[u], Q[i]]))
    fd_gP, fd_gQ = res.df[:k], res.df[k:]
    # Central differences with step refinement: truncation error far below 1e-6 for a quadratic.
    assert np.max(np.abs(fd_gP - ref_gP)) <= 1e-6
    assert np.max(np.abs(fd_gQ - ref_gQ)) <= 1e-6


def test_kernel_step_is_gradient_step_with_half_lr():
    """One kernel step = Pᵤ − (lr/2)·∂loss/∂Pᵤ: the slides' factor 2 is folded into lr."""
    rng = np.random.default_rng(7)
    P = rng.normal(0, 0.3, (3, 4))
    Q = rng.normal(0, 0.3, (2, 4))
    u, i, r, lr = 1, 0, 4.0, 0.05
    gP, gQ = slide_gradients(P[u], Q[i], r)
    want_Pu, want_Qi = P[u] - lr / 2 * gP, Q[i] - lr / 2 * gQ
    users, items = np.array([u]), np.array([i])
    zeros_u, zeros_i = np.zeros(3), np.zeros(2)
    _sgd_epoch(
        users, items, np.array([r]), np.array([0]), P, Q, zeros_u, zeros_i, 0.0, lr, 0.0, False
    )
    # The same floating-point operations in a different grouping: equal to a few ulps.
    np.testing.assert_allclose(P[u], want_Pu, rtol=0, atol=1e-15)
    np.testing.assert_allclose(Q[i], want_Qi, rtol=0, atol=1e-15)


def test_torch_exact_loss_gradient_matches_update_rule():
    """autograd of ½e² + ½·reg·(‖Pᵤ‖² + ‖Qᵢ‖²) gives −(e·Qᵢ − reg·Pᵤ): the kernel's step."""
    rng = np.random.default_rng(11)
    P = rng.normal(0, 0.3, (2, 5))
    Q = rng.normal(0, 0.3, (3, 5))
    u, i, r, lr, reg = 0, 2, 3.5, 0.1, 0.05
    module = MFModule(P, Q, biased=False, mu=0.0)
    loss, _ = module.loss(torch.tensor([u]), torch.tensor([i]), torch.tensor([r]), reg)
    loss.sum().backward()
    ref_Pu, ref_Qi = sgd_step(P[u], Q[i], r, lr, reg)
    torch_Pu = P[u] - lr * _dense_grad(module.P)[u]
    torch_Qi = Q[i] - lr * _dense_grad(module.Q)[i]
    np.testing.assert_allclose(torch_Pu, ref_Pu, rtol=0, atol=1e-15)
    np.testing.assert_allclose(torch_Qi, ref_Qi, rtol=0, atol=1e-15)
