"""The slides' neural extension: user and item embeddings (and their dot product) through an MLP.

r̂ = μ + bᵤ + bᵢ + MLP([Pᵤ, Qᵢ, Pᵤ·Qᵢ]), trained on minibatches with Adam and L2 (``reg``) on
the looked-up embeddings and biases. It keeps P, Q, bu, bi like a factor model, so predict,
recommend, clipping and the unknown-user fallback (μ + known biases) are shared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mfrec._internal import check_positive, check_ratings, check_size
from mfrec.data.splits import carve_validation
from mfrec.reference.early_stopping import EarlyStopping
from mfrec.reference.mf import FactorModel, SeededFactorModel, check_finite
from mfrec.reference.sampling import epoch_order, init_factors
from mfrec.torch_impl.model import TORCH_DTYPES, checked_device
from mfrec.torch_impl.networks import (
    NO_FOLD_IN,
    NO_SIMILAR,
    ScoredModule,
    TorchScored,
    restore_module,
)


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


class NeuralMF(TorchScored, SeededFactorModel):
    """The neural extension with the factor models' fit/predict/recommend API (see module doc).

    Its model file is a state record (:mod:`mfrec.modelstate`): the factors and the MLP's
    weights. Fold-in and similar items are refused (see ``refuses``).
    """

    factor_form = False
    refuses = {"fold-in": NO_FOLD_IN, "similar": NO_SIMILAR}

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
        self.n_epochs = check_positive("n_epochs", n_epochs, integer=True, allow_zero=True)
        self.lr = check_positive("lr", lr)
        self.reg = check_positive("reg", reg, allow_zero=True)
        self.hidden = tuple(check_positive("hidden", h, integer=True) for h in hidden)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.batch_size = check_positive("batch_size", batch_size, integer=True)
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.val_fraction = float(val_fraction)
        self.patience = check_positive("patience", patience, integer=True)
        self.device = checked_device(device)

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        callback: Callable[[int, NeuralMF], None] | None = None,
        eval_set: tuple | None = None,
        patience: int | None = None,
    ) -> NeuralMF:
        """Minibatch Adam on mean (r − r̂)² + reg·penalty; ``eval_set``/``patience`` as in SGD MF.

        Without ``eval_set``, ``val_fraction`` > 0 carves that share of the ratings out as the
        validation set (:func:`mfrec.data.splits.carve_validation`: its users and items absent
        from the rest are scored by the fallback, ``n_val_unknown_`` of them), trains on the
        rest and early-stops with ``self.patience``.
        """
        u_np, i_np, r_np = check_ratings(users, items, ratings, self.dtype)
        n_users = check_size("n_users", n_users, u_np)
        n_items = check_size("n_items", n_items, i_np)
        rng = np.random.default_rng(self.seed)
        seen = (u_np, i_np)  # every training rating counts as seen, validation ones too
        self._remember_scale(r_np)
        if eval_set is None and self.val_fraction:
            carved = carve_validation(u_np, i_np, r_np, self.val_fraction, rng)
            eval_set, keep, self.n_val_unknown_ = carved.val, carved.fit_rows, carved.n_unknown
            u_np, i_np, r_np = u_np[keep], i_np[keep], r_np[keep]
            patience = self.patience if patience is None else patience
        torch.manual_seed(self.seed)
        P0, Q0 = init_factors(rng, n_users, n_items, self.n_factors, self.init_std, self.dtype)
        self.mu = float(r_np.mean())
        self.module = NeuralModule(P0, Q0, self.mu, self.hidden, self.dropout).to(self.device)
        self._sync_numpy()
        self._remember_seen(*seen)
        stopper = None if eval_set is None else EarlyStopping(eval_set, patience)
        dev = self.device
        u, i, r = (torch.from_numpy(a).to(dev) for a in (u_np, i_np, r_np))
        optimizer = torch.optim.Adam(self.module.parameters(), lr=self.lr)
        self.history_: list[float] = []
        for epoch in range(self.n_epochs):
            order = torch.from_numpy(epoch_order(rng, r_np.shape[0], True)).to(dev)
            self.module.train()
            sse = torch.zeros((), dtype=torch.float64, device=dev)
            for start in range(0, order.shape[0], self.batch_size):
                idx = order[start : start + self.batch_size]  # (B,)
                err = r[idx] - self.module(u[idx], i[idx])  # (B,)
                loss = (err**2 + self.reg * self.module.penalty(u[idx], i[idx])).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sse += (err.detach().double() ** 2).sum()
            self.module.eval()
            train_mse = float(sse) / r_np.shape[0]
            check_finite(train_mse, epoch, self.lr)
            self.history_.append(train_mse)
            self._sync_numpy()
            if callback is not None:
                callback(epoch, self)
            if stopper is not None and stopper.update(epoch, self):
                break
        if stopper is not None:
            self.val_history_, self.best_epoch_ = stopper.history, stopper.best_epoch
            if patience is not None:
                stopper.restore(self)
        return self

    @classmethod
    def from_state(cls, base: FactorModel, params: dict, arrays: dict) -> NeuralMF:
        """The fitted model a model file holds (``base``: its validated factor part)."""
        model = cls(**params["ctor"])
        model.module = NeuralModule(base.P, base.Q, base.mu, model.hidden, model.dropout)
        return restore_module(model, base, params, arrays)
