"""The liked-or-not task in PyTorch: σ(μ + bᵤ + bᵢ + Pᵤ·Qᵢ) trained with ``BCEWithLogitsLoss``.

``mode="exact"`` is the reference (:class:`mfrec.reference.logistic.LogisticMF`) step for
step: one ``optim.SGD`` step per labelled pair in the reference's order, from the same P0, Q0.
``mode="minibatch"`` is the book's training: AdamW on the mean loss of ``batch_size`` pairs,
optionally with ``nn.Embedding(max_norm=...)`` as the book has it (max_norm=1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mfrec._internal import check_positive
from mfrec.reference.logistic import LogisticMF
from mfrec.reference.mf import EpochFunction, extends
from mfrec.reference.sampling import epoch_order
from mfrec.torch_impl.model import (
    TORCH_DTYPES,
    TorchMatrixFactorization,
    step_batches,
    torch_options,
)


def embedding(weight: torch.Tensor, sparse: bool, max_norm: float | None) -> nn.Embedding:
    """A trainable embedding holding a copy of ``weight`` (n, d)."""
    return nn.Embedding.from_pretrained(
        weight.clone(), freeze=False, sparse=sparse, max_norm=max_norm
    )


class LogisticModule(nn.Module):
    """z = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ): the logit of P(liked); the loss is BCE-with-logits on z."""

    def __init__(
        self, P: np.ndarray, Q: np.ndarray, biased: bool, mu: float, sparse: bool, max_norm
    ) -> None:
        super().__init__()
        dtype = TORCH_DTYPES[P.dtype.type]
        self.biased = biased
        self.P = embedding(torch.from_numpy(P), sparse, max_norm)
        self.Q = embedding(torch.from_numpy(Q), sparse, max_norm)
        if biased:
            self.bu = embedding(torch.zeros(P.shape[0], 1, dtype=dtype), sparse, None)
            self.bi = embedding(torch.zeros(Q.shape[0], 1, dtype=dtype), sparse, None)
        self.register_buffer("mu", torch.tensor(mu, dtype=dtype))
        self.bce = nn.BCEWithLogitsLoss(reduction="none")

    def loss(
        self, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor, reg: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample BCE(z, y) + ½·reg·(‖Pᵤ‖² + ‖Qᵢ‖² + bᵤ² + bᵢ²), and the BCE alone; (B,)."""
        Pu, Qi = self.P(u), self.Q(i)  # (B, k), (B, k)
        z = (Pu * Qi).sum(-1)  # (B,)
        penalty = (Pu**2).sum(-1) + (Qi**2).sum(-1)  # (B,)
        if self.biased:
            bu, bi = self.bu(u).squeeze(-1), self.bi(i).squeeze(-1)  # (B,), (B,)
            z = z + self.mu + bu + bi  # (B,)
            penalty = penalty + bu**2 + bi**2  # (B,)
        bce = self.bce(z, y)  # (B,)
        return bce + 0.5 * reg * penalty, bce


class TorchLogisticMF(LogisticMF):
    """:class:`LogisticMF` in PyTorch (see the module doc); ``fit`` is the reference's loop.

    ``weight_decay`` is AdamW's decoupled decay (minibatch only; ``reg`` is the L2 term of the
    loss in both modes). With ``max_norm`` every factor row is renormalised when looked up
    and, after each epoch, all rows are, so P and Q are what the forward pass uses.
    """

    @extends(LogisticMF)
    def __init__(
        self,
        *,
        mode: str = "exact",
        batch_size: int = 1024,
        weight_decay: float = 0.0,
        max_norm: float | None = None,
        device: str = "cpu",
        **params,
    ) -> None:
        super().__init__(**params)
        self.mode, self.batch_size, self.device = torch_options(mode, batch_size, device)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if mode == "exact" and weight_decay:
            raise ValueError("weight_decay is AdamW's: it needs mode='minibatch'")
        self.max_norm = None if max_norm is None else check_positive("max_norm", max_norm)
        if mode == "exact" and max_norm is not None:
            raise ValueError(
                "max_norm needs mode='minibatch': exact mode is the reference's SGD rule, "
                "which renormalises nothing"
            )

    def _runs_on(self) -> str:
        if self.mode == "exact":
            return f"torch exact (SGD, one pair per step) on {self.device}"
        norm = f", max_norm {self.max_norm}" if self.max_norm is not None else ""
        return f"torch minibatch (AdamW, batch {self.batch_size}{norm}) on {self.device}"

    def _start(self, u_np, i_np, y_np, P0, Q0, mu, rng):
        """The module from P0, Q0; each epoch steps SGD (exact) or AdamW in a fresh order."""
        super()._start(u_np, i_np, y_np, P0, Q0, mu, rng)  # checks labels, sets μ
        exact = self.mode == "exact"
        self.module = LogisticModule(P0, Q0, self.biased, self.mu, exact, self.max_norm)
        self.module.to(self.device)
        u, i, y = (torch.from_numpy(a).to(self.device) for a in (u_np, i_np, y_np))
        params = self.module.parameters()
        if exact:
            optimizer = torch.optim.SGD(params, lr=self.lr)
        else:
            optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        B = 1 if exact else self.batch_size

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.module.loss(u[idx], i[idx], y[idx], self.reg)  # loss, BCE: (B,), (B,)

        def run_epoch(lr: float) -> float:
            order = epoch_order(rng, y_np.shape[0], self.shuffle)
            order_t = torch.from_numpy(order).to(self.device)
            for group in optimizer.param_groups:
                group["lr"] = lr
            return step_batches(optimizer, order_t, B, batch_loss)

        return EpochFunction(run_epoch), 0

    def _epoch_done(self, epoch: int) -> None:
        if self.max_norm is not None:
            with torch.no_grad():
                for table in (self.module.P, self.module.Q):
                    rows = torch.arange(table.weight.shape[0], device=self.device)
                    torch.embedding_renorm_(table.weight, rows, self.max_norm, 2.0)
        self._sync_numpy()

    _sync_numpy = TorchMatrixFactorization._sync_numpy
    """P, Q, bu, bi as numpy copies of the module's weights (the same attributes as there)."""
