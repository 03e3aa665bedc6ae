"""The deep-learning version: P and Q are ``nn.Embedding`` layers trained by autograd."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from mfrec._internal import check_positive
from mfrec.devices import torch_cuda
from mfrec.reference.mf import SGDModel, extends
from mfrec.reference.sampling import epoch_order
from mfrec.torch_impl.graphed import GraphedEpoch

TORCH_DTYPES = {np.float64: torch.float64, np.float32: torch.float32}


def checked_device(device: str) -> torch.device:
    """``torch.device(device)``; a CUDA one only where torch sees a CUDA device."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch_cuda():
        raise ValueError(f"device={device!r} but torch sees no CUDA device")
    return dev


def torch_options(mode: str, batch_size: int, device: str) -> tuple[str, int, torch.device]:
    """The options every torch SGD model takes, checked: ``mode`` ("exact": one sample per
    step, or "minibatch"), ``batch_size`` (minibatch mode) and the ``device`` to train on."""
    if mode not in ("exact", "minibatch"):
        raise ValueError(f"mode must be 'exact' or 'minibatch', got {mode!r}")
    return mode, check_positive("batch_size", batch_size, integer=True), checked_device(device)


def step_batches(
    optimizer: torch.optim.Optimizer,
    order: torch.Tensor,
    B: int,
    batch_loss: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """One pass over ``order`` in steps of ``B`` samples: ``batch_loss(idx)`` gives the batch's
    per-sample loss and a per-sample value to total, both (B,); ``optimizer`` steps the mean
    loss. Returns the float64 total of the values (each seen before its step)."""
    total = torch.zeros((), dtype=torch.float64, device=order.device)
    for start in range(0, order.shape[0], B):
        idx = order[start : start + B]  # (B,)
        optimizer.zero_grad(set_to_none=True)
        loss, value = batch_loss(idx)  # (B,), (B,)
        loss.mean().backward()
        optimizer.step()
        total += value.detach().double().sum()
    return float(total)


def predict_rows(rows: Sequence[torch.Tensor], mu: torch.Tensor) -> torch.Tensor:
    """r̂ = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ) from looked-up rows [Pᵤ, Qᵢ(, bᵤ, bᵢ)]; shape (B,)."""
    r_hat = (rows[0] * rows[1]).sum(dim=-1)  # (B,)
    if len(rows) == 4:
        r_hat = r_hat + mu + rows[2] + rows[3]  # (B,)
    return r_hat


def rows_loss(
    rows: Sequence[torch.Tensor], r: torch.Tensor, mu: torch.Tensor, reg: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ½(r − r̂)² + ½·reg·(‖Pᵤ‖² + ‖Qᵢ‖² + bᵤ² + bᵢ²), and e = r − r̂; both (B,)."""
    err = r - predict_rows(rows, mu)  # (B,)
    loss = 0.5 * err * err  # (B,)
    if reg:
        penalty = (rows[0] ** 2).sum(-1) + (rows[1] ** 2).sum(-1)  # (B,)
        for b in rows[2:]:
            penalty = penalty + b**2  # (B,)
        loss = loss + 0.5 * reg * penalty
    return loss, err


def _mean_loss(rows, r, mu, reg):
    loss, err = rows_loss(rows, r, mu, reg)
    return loss.mean(), err


def sparse_sgd_step(
    tables: Sequence[torch.Tensor],
    u: torch.Tensor,
    i: torch.Tensor,
    r: torch.Tensor,
    mu: torch.Tensor,
    lr: float,
    reg: float,
) -> torch.Tensor:
    """One minibatch step of ``optim.SGD`` over sparse embedding gradients, as one pure function.

    Looks up the rows of ``tables`` = [P (n, k), Q (m, k)(, bu (n,), bi (m,))], takes the
    autograd gradient (``torch.func.grad``) of the mean loss w.r.t. those rows, and adds
    −lr·grad into the touched rows in place (``index_add_``: repeated ids add up, as the sparse
    gradient's duplicates do). Returns Σ e² (float64) seen before the step.
    """
    index = (u, i, u, i)[: len(tables)]
    rows = tuple(t[ix] for t, ix in zip(tables, index, strict=True))  # (B, k), (B, k), (B,)…
    grads, err = torch.func.grad(_mean_loss, has_aux=True)(rows, r, mu, reg)
    for t, ix, g in zip(tables, index, grads, strict=True):
        t.index_add_(0, ix, g, alpha=-lr)
    return (err.double() ** 2).sum()


@lru_cache(maxsize=1)
def compiled_sgd_step() -> Callable:
    """:func:`sparse_sgd_step` under ``torch.compile`` (compiled on first call, per shape)."""
    return torch.compile(sparse_sgd_step, dynamic=False)


class TorchEpochs:
    """The :class:`~mfrec.reference.mf.EpochRunner` of :class:`TorchMatrixFactorization`: each
    epoch draws its order from the fit's generator and steps ``torch.optim.SGD`` over it at
    lr·B (B = 1 in exact mode, ``batch_size`` in minibatch mode)."""

    def __init__(self, model: TorchMatrixFactorization, u_np, i_np, r_np, rng) -> None:
        self.model, self.rng, self.n = model, rng, r_np.shape[0]
        self.u, self.i, self.r = model._to_device(u_np, i_np, r_np)  # (N,) each
        self.B = 1 if model.mode == "exact" else model.batch_size
        self.optimizer = torch.optim.SGD(model.module.parameters(), lr=model.lr * self.B)

    def run(self, lr: float) -> float:
        """One epoch in a fresh order at step size lr·B; returns Σ e²."""
        m = self.model
        order = torch.from_numpy(epoch_order(self.rng, self.n, m.shuffle)).to(m.device)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * self.B
        return m._epoch(self.u, self.i, self.r, order, self.optimizer, self.B)

    def copy_out(self) -> None:
        """The module's weights into the model's numpy P, Q, bu, bi."""
        self.model._sync_numpy()


class MFModule(nn.Module):
    """r̂ = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ): an embedding lookup per side and a row-wise dot product.

    An ``nn.Embedding`` of shape (n, k) *is* a factor matrix: ``embedding(u)`` is row Pᵤ, and
    with ``sparse=True`` its gradient touches only the looked-up rows, as the SGD rule does.
    """

    mu: torch.Tensor  # a registered buffer: moves with .to(device)

    def __init__(self, P: np.ndarray, Q: np.ndarray, biased: bool, mu: float) -> None:
        super().__init__()
        dtype = TORCH_DTYPES[P.dtype.type]
        self.biased = biased
        self.P = nn.Embedding.from_pretrained(torch.from_numpy(P.copy()), freeze=False, sparse=True)
        self.Q = nn.Embedding.from_pretrained(torch.from_numpy(Q.copy()), freeze=False, sparse=True)
        if biased:
            self.bu = nn.Embedding.from_pretrained(
                torch.zeros(P.shape[0], 1, dtype=dtype), freeze=False, sparse=True
            )
            self.bi = nn.Embedding.from_pretrained(
                torch.zeros(Q.shape[0], 1, dtype=dtype), freeze=False, sparse=True
            )
        self.register_buffer("mu", torch.tensor(mu, dtype=dtype))

    def lookup(self, u: torch.Tensor, i: torch.Tensor) -> list[torch.Tensor]:
        """The looked-up rows [Pᵤ (B, k), Qᵢ (B, k)] (+ [bᵤ (B,), bᵢ (B,)] when biased)."""
        rows = [self.P(u), self.Q(i)]  # (B, k), (B, k)
        if self.biased:
            rows += [self.bu(u).squeeze(-1), self.bi(i).squeeze(-1)]  # (B,), (B,)
        return rows

    def predict_rows(self, rows: list[torch.Tensor]) -> torch.Tensor:
        """r̂ from looked-up rows: Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ), shape (B,)."""
        return predict_rows(rows, self.mu)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.predict_rows(self.lookup(u, i))  # (B,)

    def loss(
        self, u: torch.Tensor, i: torch.Tensor, r: torch.Tensor, reg: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ½(r − r̂)² + ½·reg·(‖Pᵤ‖² + ‖Qᵢ‖² + bᵤ² + bᵢ²), and e = r − r̂; both (B,).

        Each row is looked up once, so each table gets one sparse gradient per step.
        """
        return rows_loss(self.lookup(u, i), r, self.mu, reg)


class TorchMatrixFactorization(SGDModel):
    """The same model and parameters as :class:`mfrec.reference.MatrixFactorization`, in PyTorch.

    ``mode="exact"``: one optimizer step per rating in the reference's order (equal to it to
    rounding). ``mode="minibatch"``: the mean loss over ``batch_size`` ratings, stepped with
    ``lr·batch_size`` so each rating moves the rows as far as one reference step would.
    ``compile=True`` (minibatch only) runs each full batch as :func:`sparse_sgd_step` under
    ``torch.compile`` (the same step, fused; compiling costs seconds on the first batch).
    ``fit`` is the reference's (:class:`mfrec.reference.mf.SGDModel`): ``lr_decay``,
    ``eval_set``, ``patience``, ``tol`` and ``callback`` work as there.
    ``graph=True`` (minibatch only) records an epoch's full batches as one CUDA graph and
    replays it each epoch (:class:`mfrec.torch_impl.graphed.GraphedEpoch`; with ``compile``,
    of the compiled step); on the CPU the same steps run as a loop.
    """

    @extends(SGDModel)
    def __init__(
        self,
        *,
        mode: str = "exact",
        batch_size: int = 1024,
        device: str = "cpu",
        compile: bool = False,
        graph: bool = False,
        **params,
    ) -> None:
        super().__init__(**params)
        self.mode, self.batch_size, self.device = torch_options(mode, batch_size, device)
        if compile and mode != "minibatch":
            raise ValueError("compile=True needs mode='minibatch' (exact mode steps one rating)")
        self.compile = bool(compile)
        if graph and mode != "minibatch":
            raise ValueError("graph=True needs mode='minibatch' (exact mode steps one rating)")
        self.graph = bool(graph)
        self._graphed: tuple[MFModule, int, float, GraphedEpoch] | None = None

    def _runs_on(self) -> str:
        how = "".join(
            f", {w}" for w, on in (("compiled", self.compile), ("CUDA graph", self.graph)) if on
        )
        batch = f" (batch {self.batch_size}{how})"
        return f"torch {self.mode}{batch if self.mode == 'minibatch' else ''} on {self.device}"

    def _start(self, u_np, i_np, r_np, P0, Q0, mu, rng):
        """Build the module from P0, Q0; each epoch steps ``torch.optim.SGD`` in a fresh order."""
        self._build_module(P0, Q0, mu)
        return TorchEpochs(self, u_np, i_np, r_np, rng), 0

    def _build_module(self, P0: np.ndarray, Q0: np.ndarray, mu: float) -> None:
        """The module (P0, Q0 copied, zero biases) on ``device``; P, Q, bu, bi as numpy."""
        self.module = MFModule(P0, Q0, self.biased, mu).to(self.device)
        self.mu = mu
        self._sync_numpy()

    def _to_device(self, *arrays: np.ndarray) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(a).to(self.device) for a in arrays)

    def _epoch(self, u, i, r, order, optimizer, B: int) -> float:
        """One pass over ``order`` in steps of B ratings at the optimizer's learning rate;
        returns Σ e² seen before each step."""
        if self.graph:
            return self._graphed_epoch(u, i, r, order, B, optimizer.param_groups[0]["lr"])
        if self.compile:
            return self._compiled_epoch(u, i, r, order, B, optimizer.param_groups[0]["lr"])

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            loss, err = self.module.loss(u[idx], i[idx], r[idx], self.reg)  # (B,), (B,)
            return loss, err.detach().double() ** 2

        return step_batches(optimizer, order, B, batch_loss)

    def _compiled_epoch(self, u, i, r, order, B: int, step_lr: float) -> float:
        """:meth:`_epoch` by :func:`sparse_sgd_step`: compiled for full batches, eager for the
        shorter last one (so one compiled shape serves every epoch)."""
        m = self.module
        tables = self._tables()
        step = compiled_sgd_step()
        sse = torch.zeros((), dtype=torch.float64, device=self.device)
        for start in range(0, order.shape[0], B):
            idx = order[start : start + B]  # (B,)
            fn = step if idx.shape[0] == B else sparse_sgd_step
            sse += fn(tables, u[idx], i[idx], r[idx], m.mu, step_lr, self.reg)
        return float(sse)

    def _tables(self) -> list[torch.Tensor]:
        """[P (n, k), Q (m, k)(, bu (n,), bi (m,))]: the module's weights, shared storage."""
        m = self.module
        tables = [m.P.weight.detach(), m.Q.weight.detach()]
        if self.biased:
            tables += [m.bu.weight.detach()[:, 0], m.bi.weight.detach()[:, 0]]
        return tables

    def _graphed_epoch(self, u, i, r, order, B: int, lr: float) -> float:
        """:meth:`_epoch` by a :class:`GraphedEpoch` of this fit's module, this order's length
        and step size ``lr`` (built on first use; an ``lr_decay`` schedule records a new graph
        for each epoch's step size), then the short last batch by the eager step."""
        m = self.module
        if self._graphed is None or self._graphed[:3] != (m, order.shape[0], lr):
            step = compiled_sgd_step() if self.compile else sparse_sgd_step
            epoch = GraphedEpoch(
                step, self._tables(), (u, i, r), order.shape[0], B, m.mu, lr, self.reg
            )
            self._graphed = (m, order.shape[0], lr, epoch)
        epoch = self._graphed[3]
        sse = epoch(order)
        tail = order[epoch.n_batches * B :]  # (< B,)
        if tail.shape[0]:
            sse = sse + sparse_sgd_step(epoch.tables, u[tail], i[tail], r[tail], m.mu, lr, self.reg)
        return float(sse)

    def _sync_numpy(self) -> None:
        m = self.module
        self.P = m.P.weight.detach().cpu().numpy().copy()
        self.Q = m.Q.weight.detach().cpu().numpy().copy()
        if self.biased:
            self.bu = m.bu.weight.detach().cpu().numpy()[:, 0].copy()
            self.bi = m.bi.weight.detach().cpu().numpy()[:, 0].copy()
        else:
            self.bu = np.zeros(self.P.shape[0], dtype=self.P.dtype)
            self.bi = np.zeros(self.Q.shape[0], dtype=self.Q.dtype)

    def raw_predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Unclipped r̂ from the torch module's forward pass, as a numpy array."""
        u_t = torch.from_numpy(u).to(self.device)  # (n,)
        i_t = torch.from_numpy(i).to(self.device)  # (n,)
        with torch.no_grad():
            return self.module(u_t, i_t).cpu().numpy()
