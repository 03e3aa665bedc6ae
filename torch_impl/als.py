"""ALS in PyTorch: every row's ridge system built by scatter-adds and solved in one batch.

The same model, objective and half-steps as :class:`mfrec.reference.als.ALS`; ``device="cuda"``
builds and solves the (n, d, d) batch on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mfrec.reference.als import ALS
from mfrec.torch_impl.model import TORCH_DTYPES, checked_device

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

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        init: tuple[np.ndarray, np.ndarray] | None = None,
        callback: Callable[[int, TorchALS], None] | None = None,
    ) -> TorchALS:
        """Same arguments, initialisation and half-step order as the reference ALS."""
        u_np, i_np, r_np, P0, Q0, mu, _ = self._setup(users, items, ratings, n_users, n_items, init)
        n_users, n_items = int(P0.shape[0]), int(Q0.shape[0])  # the validated sizes
        dtype = TORCH_DTYPES[self.dtype]
        dev = self.device
        u = torch.from_numpy(u_np).to(dev)
        i = torch.from_numpy(i_np).to(dev)
        r = torch.from_numpy(r_np).to(dev)
        P = torch.from_numpy(P0).to(dev)
        Q = torch.from_numpy(Q0).to(dev)
        bu = torch.zeros(n_users, dtype=dtype, device=dev)
        bi = torch.zeros(n_items, dtype=dtype, device=dev)
        self.mu = mu
        self._set(P, Q, bu, bi)
        self._remember_seen(u_np, i_np)
        self._remember_scale(r_np)
        args = (mu, self.reg, self.weighted, self.biased)
        self.history_: list[float] = []
        for it in range(self.n_iters):
            P, bu = solve_rows_batched(u, i, r, n_users, Q, bi, *args)
            Q, bi = solve_rows_batched(i, u, r, n_items, P, bu, *args)
            r_hat = (P[u] * Q[i]).sum(-1) + (mu + bu[u] + bi[i])  # (nnz,)
            self.history_.append(float(((r - r_hat) ** 2).mean()))
            self._set(P, Q, bu, bi)
            if callback is not None:
                callback(it, self)
        return self

    def _set(self, P, Q, bu, bi) -> None:
        self.P, self.Q = P.cpu().numpy().copy(), Q.cpu().numpy().copy()
        self.bu, self.bi = bu.cpu().numpy().copy(), bi.cpu().numpy().copy()
