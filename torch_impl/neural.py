"""The slides' neural extension: user and item embeddings (and their dot product) through an MLP.

r̂ = μ + bᵤ + bᵢ + MLP([Pᵤ, Qᵢ, Pᵤ·Qᵢ]), trained on minibatches with Adam and L2 (``reg``) on
the looked-up embeddings and biases. It keeps P, Q, bu, bi like a factor model, so predict,
recommend, clipping and the unknown-user fallback (μ + known biases) are shared.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mfrec._internal import check_positive
from mfrec.reference.mf import SeededFactorModel
from mfrec.torch_impl.model import TORCH_DTYPES
from mfrec.torch_impl.networks import MinibatchNetwork, ScoredModule


class NeuralModule(ScoredModule):
    """Embeddings, biases and an MLP head: r̂ = μ + bᵤ + bᵢ + MLP([Pᵤ, Qᵢ, Pᵤ·Qᵢ])."""

    def __init__(self, P: np.ndarray, Q: np.ndarray, mu: float, hidden: tuple, dropout: float):
        super().__init__()
        dtype = TORCH_DTYPES[P.dtype.type]
        k = P.shape[1]
        self.P = nn.Embedding.from_pretrained(torch.from_numpy(P.copy()), freeze=False)
        self.Q = nn.Embedding.from_pretrained(torch.from_numpy(Q.copy()), freeze=False)
        self.bu = nn.Embedding.from_pretrained(
            torch.zeros(P.shape[0], 1, dtype=dtype), freeze=False
        )
        self.bi = nn.Embedding.from_pretrained(
            torch.zeros(Q.shape[0], 1, dtype=dtype), freeze=False
        )
        layers: list[nn.Module] = []
        width = 2 * k + 1
        for h in hidden:
            layers += [nn.Linear(width, h, dtype=dtype), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1, dtype=dtype))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("mu", torch.tensor(mu, dtype=dtype))

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        Pu = self.P(u)  # (B, k)
        Qi = self.Q(i)  # (B, k)
        dot = (Pu * Qi).sum(-1, keepdim=True)  # (B, 1)
        x = torch.cat([Pu, Qi, dot], dim=-1)  # (B, 2k + 1)
        out = self.mlp(x) + self.bu(u) + self.bi(i)  # (B, 1)
        return out.squeeze(-1) + self.mu  # (B,)

    def penalty(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """‖Pᵤ‖² + ‖Qᵢ‖² + bᵤ² + bᵢ² per sample, (B,)."""
        return (
            (self.P(u) ** 2).sum(-1)
            + (self.Q(i) ** 2).sum(-1)
            + self.bu(u).squeeze(-1) ** 2
            + self.bi(i).squeeze(-1) ** 2
        )


class NeuralMF(MinibatchNetwork, SeededFactorModel):
    """The neural extension with the factor models' fit/predict/recommend API (see module doc).

    ``fit`` (:class:`~mfrec.torch_impl.networks.MinibatchNetwork`'s) runs minibatch Adam on
    mean (r − r̂)² + reg·penalty. Its model file is a state record (:mod:`mfrec.modelstate`):
    the factors and the MLP's weights. Fold-in and similar items are refused (see
    ``refuses``).
    """

    # duplicates: NetworkMF's parameter list (the shared options, other defaults), checked once in
    # MinibatchNetwork._minibatch_options; the two classes keep their own signatures for help()
    def __init__(
        self,
        *,
        n_factors: int = 32,
        n_epochs: int = 20,
        lr: float = 1e-3,
        reg: float = 0.05,
        hidden: tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        batch_size: int = 512,
        val_fraction: float = 0.0,
        patience: int = 2,
        init_std: float = 0.1,
        seed: int = 0,
        dtype: str = "float32",
        device: str = "cpu",
    ) -> None:
        super().__init__(
            n_factors=n_factors, init_std=init_std, seed=seed, dtype=dtype, biased=True
        )
        self.hidden = tuple(check_positive("hidden", h, integer=True) for h in hidden)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self._minibatch_options(n_epochs, lr, reg, batch_size, val_fraction, patience, device)

    def _build(self, P: np.ndarray, Q: np.ndarray, mu: float) -> NeuralModule:
        return NeuralModule(P, Q, mu, self.hidden, self.dropout)

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.module.parameters(), lr=self.lr)

    def _batch_loss(self, u, i, r):
        err = r - self.module(u, i)  # (B,)
        loss = (err**2 + self.reg * self.module.penalty(u, i)).mean()
        return loss, (err.detach().double() ** 2).sum()
