"""The functional minibatch step (``sparse_sgd_step``) against ``optim.SGD``, eager and compiled."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mfrec.torch_impl.model import MFModule, TorchMatrixFactorization, sparse_sgd_step


@pytest.mark.parametrize("biased", [False, True])
def test_sparse_sgd_step_equals_optimizer_step(biased):
    rng = np.random.default_rng(3)
    P, Q = rng.normal(0, 0.1, (40, 6)), rng.normal(0, 0.1, (30, 6))
    u = torch.from_numpy(rng.integers(0, 20, 64))  # users 20…39 untouched; ids repeat
    i = torch.from_numpy(rng.integers(0, 30, 64))
    r = torch.from_numpy(rng.integers(1, 6, 64).astype(np.float64))
    lr, reg = 0.5, 0.05

    module = MFModule(P, Q, biased, mu=3.0)
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    loss, optim_err = module.loss(u, i, r, reg)
    loss.mean().backward()
    optimizer.step()

    step_module = MFModule(P, Q, biased, mu=3.0)
    tables = [step_module.P.weight.detach(), step_module.Q.weight.detach()]
    if biased:
        tables += [step_module.bu.weight.detach()[:, 0], step_module.bi.weight.detach()[:, 0]]
    sse = sparse_sgd_step(tables, u, i, r, step_module.mu, lr, reg)

    # float64, same per-row gradients; only the order in which repeated rows' terms are summed
    # may differ, so agreement is to a few ulps.
    for optim_w, step_w in zip(module.parameters(), step_module.parameters(), strict=True):
        np.testing.assert_allclose(step_w.detach().numpy(), optim_w.detach().numpy(), atol=1e-15)
    assert float(sse) == pytest.approx(float((optim_err.detach() ** 2).sum()), rel=1e-14)
    # Only looked-up rows move.
    np.testing.assert_array_equal(step_module.P.weight.detach().numpy()[20:], P[20:])
    assert not np.allclose(step_module.P.weight.detach().numpy()[:20], P[:20])


# graph=True on the CPU runs the steps it would capture as a loop: the same full batches over a
# static order buffer, the short last batch outside.
VARIANTS = [dict(compile=True), dict(graph=True), dict(graph=True, compile=True)]


@pytest.mark.parametrize("variant", VARIANTS, ids=["compiled", "graph", "graph-compiled"])
@pytest.mark.parametrize("biased", [False, True])
def test_compiled_minibatch_equals_eager(biased, variant):
    rng = np.random.default_rng(4)
    n_users, n_items, n = 120, 90, 3000
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    r = rng.integers(1, 6, n).astype(np.float64)
    hyper: dict[str, Any] = dict(
        n_factors=8, n_epochs=3, lr=0.01, reg=0.02, biased=biased, mode="minibatch", batch_size=256
    )
    eager = TorchMatrixFactorization(**hyper).fit(u, i, r, n_users, n_items)
    compiled = TorchMatrixFactorization(**hyper, **variant).fit(u, i, r, n_users, n_items)
    # float64 and the same step; the compiled kernels fuse and reorder sums (a few ulps/step).
    np.testing.assert_allclose(compiled.P, eager.P, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled.Q, eager.Q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled.bu, eager.bu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled.history_, eager.history_, rtol=1e-12)
    assert n % hyper["batch_size"]  # the last batch is short: the eager tail path ran too


def test_compile_needs_minibatch():
    with pytest.raises(ValueError, match="compile=True needs mode='minibatch'"):
        TorchMatrixFactorization(mode="exact", compile=True)


def test_graph_needs_minibatch():
    with pytest.raises(ValueError, match="graph=True"):
        TorchMatrixFactorization(mode="exact", graph=True)
