"""The slides' analytic gradients against torch autograd and central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from naive import sgd_step, slide_gradients, slide_loss
from scipy.differentiate import jacobian

from mfrec.reference.kernels import _sgd_epoch
from mfrec.torch_impl import MFModule


def _random_case(seed: int, k: int = 8):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.5, k), rng.normal(0, 0.5, k), float(rng.uniform(1, 5))


@pytest.mark.parametrize("seed", range(5))
def test_analytic_gradients_equal_autograd(seed):
    Pu, Qi, r = _random_case(seed)
    ref_gP, ref_gQ = slide_gradients(Pu, Qi, r)
    torch_Pu = torch.tensor(Pu, requires_grad=True)
    torch_Qi = torch.tensor(Qi, requires_grad=True)
    loss = (r - (torch_Pu * torch_Qi).sum()) ** 2
    loss.backward()
    # float64 with one dot product of k=8 terms: only rounding separates the two (1e-12 relative).
    for ref, got in ((ref_gP, torch_Pu.grad.numpy()), (ref_gQ, torch_Qi.grad.numpy())):
        assert np.max(np.abs(ref - got)) <= 1e-12 * np.max(np.abs(ref))
    assert abs(slide_loss(Pu, Qi, r) - loss.item()) <= 1e-12 * loss.item()


@pytest.mark.parametrize("seed", range(5))
def test_analytic_gradients_equal_central_differences(seed):
    Pu, Qi, r = _random_case(seed)
    k = Pu.shape[0]
    ref_gP, ref_gQ = slide_gradients(Pu, Qi, r)

    def loss_of(x):  # x: (2k, m) batch of stacked [Pu; Qi] columns, as scipy vectorises
        return (r - np.sum(x[:k] * x[k:], axis=0)) ** 2

    res = jacobian(loss_of, np.concatenate([Pu, Qi]))
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
    torch_Pu = P[u] - lr * module.P.weight.grad.to_dense()[u].numpy()
    torch_Qi = Q[i] - lr * module.Q.weight.grad.to_dense()[i].numpy()
    np.testing.assert_allclose(torch_Pu, ref_Pu, rtol=0, atol=1e-15)
    np.testing.assert_allclose(torch_Qi, ref_Qi, rtol=0, atol=1e-15)
