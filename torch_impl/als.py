"""ALS in PyTorch: every row's ridge system built by scatter-adds and solved in one batch.

The same model, objective and half-steps as :class:`mfrec.reference.als.ALS`; ``device="cuda"``
builds and solves the (n, d, d) batch on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mfrec.reference.als import ALS
from mfrec.torch_impl.model import checked_device

CHUNK = 8192
"""Ratings per scatter-add of outer products (bounds the (chunk, d, d) temporary)."""


def solve_rows_batched(
    rows: torch.Tensor,
    cols: torch.Tensor,
    vals: torch.Tensor,
    n_rows: int,
    Y: torch.Tensor,
    by: torch.Tensor,
    mu: float,
    reg: float,
    weighted: bool,
    biased: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, bx) minimising Σ (t − y·x)² + λₐ‖x‖² per row: (Σ y·yᵀ + λₐI)·xₐ = Σ t·y, batched."""
    ones = torch.ones(Y.shape[0], 1, dtype=Y.dtype, device=Y.device)  # (n_other, 1)
    feats = torch.cat([ones, Y], dim=1) if biased else Y  # (n_other, d)
    d = feats.shape[1]
    target = vals - (mu + by[cols]) if biased else vals  # (nnz,)
    A = torch.zeros(n_rows, d, d, dtype=Y.dtype, device=Y.device)  # (n, d, d)
    rhs = torch.zeros(n_rows, d, dtype=Y.dtype, device=Y.device)  # (n, d)
    for start in range(0, rows.shape[0], CHUNK):
        r = rows[start : start + CHUNK]  # (c,)
        y = feats[cols[start : start + CHUNK]]  # (c, d)
        A.index_add_(0, r, y[:, :, None] * y[:, None, :])  # (c, d, d) into (n, d, d)
        rhs.index_add_(0, r, target[start : start + CHUNK, None] * y)  # (c, d) into (n, d)
    counts = torch.bincount(rows, minlength=n_rows).to(Y.dtype)  # (n,)
    lam = reg * counts if weighted else torch.full_like(counts, reg)  # (n,)
    lam = torch.where(counts > 0, lam, torch.ones_like(lam))  # empty rows: A = I, rhs = 0 → x = 0
    A = A + lam[:, None, None] * torch.eye(d, dtype=Y.dtype, device=Y.device)  # (n, d, d)
    x = torch.linalg.solve(A, rhs)  # (n, d)
    if biased:
        return x[:, 1:].contiguous(), x[:, 0].contiguous()
    return x, torch.zeros(n_rows, dtype=Y.dtype, device=Y.device)


class TorchALS(ALS):
    """:class:`mfrec.reference.als.ALS` with batched ``torch.linalg.solve`` (CPU or CUDA)."""

    def __init__(self, *, device: str = "cpu", **params) -> None:
        """``params``: those of :class:`mfrec.reference.als.ALS`."""
        super().__init__(**params)
        self.device = checked_device(device)

    def _iteration(self, u_np, i_np, r_np) -> Callable[[], float]:
        """The reference ALS's iteration (same initialisation and half-step order), each
        half-step one batched solve on ``device``; the model's arrays are copied back after."""
        dev = self.device
        u, i, r = (torch.from_numpy(a).to(dev) for a in (u_np, i_np, r_np))
        Q, bi = torch.from_numpy(self.Q).to(dev), torch.from_numpy(self.bi).to(dev)
        n_users, n_items = self.n_users, self.n_items
        args = (self.mu, self.reg, self.weighted, self.biased)

        def iterate() -> float:
            nonlocal Q, bi
            P, bu = solve_rows_batched(u, i, r, n_users, Q, bi, *args)
            Q, bi = solve_rows_batched(i, u, r, n_items, P, bu, *args)
            r_hat = (P[u] * Q[i]).sum(-1) + (self.mu + bu[u] + bi[i])  # (nnz,)
            self._set(P, Q, bu, bi)
            return float(((r - r_hat) ** 2).mean())

        return iterate

    def _set(self, P, Q, bu, bi) -> None:
        self.P, self.Q = P.cpu().numpy().copy(), Q.cpu().numpy().copy()
        self.bu, self.bi = bu.cpu().numpy().copy(), bi.cpu().numpy().copy()
