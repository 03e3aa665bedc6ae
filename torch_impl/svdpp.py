"""SVD++ with feature embeddings as an embedding model: the bags are ``nn.EmbeddingBag`` sums.

    zᵤ = Pᵤ + EmbeddingBag_Y(A(u), weights cₐ),   wᵢ = Qᵢ + EmbeddingBag_Z(G(i), weights c_g)
    r̂ = μ + bᵤ + bᵢ + wᵢ·zᵤ

``mode="exact"`` is :func:`mfrec.reference.svdpp._svdpp_epoch`'s rule step for step, by
autograd: per rating, one ``optim.SGD`` step on P, Q, b, Z with the user's bag sum s held as a
leaf tensor whose gradient accumulates over the user's block; at the block's end that gradient
is pushed through the EmbeddingBag into Y (one more SGD step). ``mode="minibatch"``: the mean
loss over ``batch_size`` ratings in a plain shuffled order, stepped with lr·batch_size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfrec.reference.mf import EpochFunction, extends
from mfrec.reference.sampling import epoch_order
from mfrec.reference.svdpp import SVDpp, user_block_order
from mfrec.torch_impl.model import TORCH_DTYPES, torch_options
from mfrec.torch_impl.networks import host_copy, module_factors


def gather_bags(
    ptr: torch.Tensor, idx: torch.Tensor, wt: torch.Tensor, entities: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input, offsets, per_sample_weights) of ``entities``' bags for ``nn.EmbeddingBag``."""
    starts = ptr[entities]  # (B,)
    counts = ptr[entities + 1] - starts  # (B,)
    offsets = torch.cumsum(counts, 0) - counts  # (B,)
    total = int(counts.sum())
    pos = torch.repeat_interleave(starts - offsets, counts) + torch.arange(
        total, device=ptr.device
    )  # (nnz,)
    return idx[pos], offsets, wt[pos]


def _table(weight: np.ndarray) -> nn.Embedding:
    return nn.Embedding.from_pretrained(torch.from_numpy(weight.copy()), freeze=False)


def _bag_table(weight: np.ndarray) -> nn.EmbeddingBag:
    w = torch.from_numpy(weight.copy())
    return nn.EmbeddingBag.from_pretrained(w, freeze=False, mode="sum")


class SVDppModule(nn.Module):
    """P, Q, bᵤ, bᵢ as ``nn.Embedding``; Y, Z as ``nn.EmbeddingBag`` (weighted sums).

    Gradients are dense: the loss penalises only looked-up rows, so every other row's gradient
    is zero and plain SGD leaves it as it was, as a sparse gradient would; on the CPU the dense
    backward of ``embedding_bag`` measured ~10× faster than the sparse one on ML-100k batches.
    """

    mu: torch.Tensor  # () buffer

    def __init__(self, P, Q, Y, Z, mu: float) -> None:
        super().__init__()
        dtype = TORCH_DTYPES[P.dtype.type]
        self.P, self.Q = _table(P), _table(Q)
        self.bu = _table(np.zeros((P.shape[0], 1), dtype=P.dtype))
        self.bi = _table(np.zeros((Q.shape[0], 1), dtype=P.dtype))
        # A table needs a row to exist; an empty one gets a zero row no bag points at.
        self.Y = _bag_table(Y if Y.shape[0] else np.zeros((1, P.shape[1]), P.dtype))
        self.Z = _bag_table(Z if Z.shape[0] else np.zeros((1, P.shape[1]), P.dtype))
        self.register_buffer("mu", torch.tensor(mu, dtype=dtype))

    def bag_sum(self, table: nn.EmbeddingBag, bag: tuple) -> torch.Tensor:
        """Σ c·row over each bag: (B, k)."""
        inp, offsets, weights = bag
        return table(inp, offsets, per_sample_weights=weights)  # (B, k)

    def sample_loss(
        self,
        u: torch.Tensor,
        i: torch.Tensor,
        r: torch.Tensor,
        s: torch.Tensor,
        item_bag: tuple,
        reg: float,
        user_bag: tuple | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ½e² + ½·reg·(bᵤ² + bᵢ² + ‖Pᵤ‖² + ‖Qᵢ‖² + Σ_g‖Z_g‖² (+ Σₐ‖Yₐ‖² when
        ``user_bag`` is given)), summed over the batch, and e; ``s`` is Σ cₐYₐ per sample."""
        Pu, Qi = self.P(u), self.Q(i)  # (B, k), (B, k)
        bu, bi = self.bu(u)[:, 0], self.bi(i)[:, 0]  # (B,), (B,)
        w = Qi + self.bag_sum(self.Z, item_bag)  # (B, k)
        z = Pu + s  # (B, k)
        err = r - (self.mu + bu + bi + (w * z).sum(-1))  # (B,)
        Zg = F.embedding(item_bag[0], self.Z.weight)  # (nnz_G, k)
        penalty = (bu**2).sum() + (bi**2).sum() + (Pu**2).sum() + (Qi**2).sum() + (Zg**2).sum()
        if user_bag is not None:
            penalty = penalty + (F.embedding(user_bag[0], self.Y.weight) ** 2).sum()
        return 0.5 * (err**2).sum() + 0.5 * reg * penalty, err


def _sample_loss(rows, s, c_g, r, mu, reg):
    """½e² + ½·reg·(bᵤ² + bᵢ² + ‖Pᵤ‖² + ‖Qᵢ‖² + Σ_g‖Z_g‖²) from looked-up rows, and e."""
    Pu, Qi, bu, bi, Zg = rows  # (k,), (k,), (), (), (|G(i)|, k)
    w = Qi + (c_g[:, None] * Zg).sum(0)  # (k,)
    err = r - (mu + bu + bi + (w * (Pu + s)).sum())  # ()
    penalty = bu**2 + bi**2 + (Pu**2).sum() + (Qi**2).sum() + (Zg**2).sum()
    return 0.5 * err**2 + 0.5 * reg * penalty, err


def exact_block(
    tables: list[torch.Tensor],
    block: tuple[int, list[int], list[float]],
    user_bag: tuple[torch.Tensor, torch.Tensor],
    item_bags: list[tuple[torch.Tensor, torch.Tensor]],
    mu: torch.Tensor,
    lr: float,
    reg: float,
) -> float:
    """One user block of the Numba kernel's rule, by autograd on looked-up rows, in place.

    ``tables`` = [P, Q, bu (n, 1), bi (m, 1), Y, Z]; ``block`` = (u, its items, its ratings) in
    visiting order; the bags are (rows, weights). s = Σ cₐYₐ is a leaf tensor for the whole
    block: each rating takes ``torch.autograd.grad`` of its loss with respect to its rows
    (Pᵤ, Qᵢ, bᵤ, bᵢ, Z_G(i)) and s, subtracts lr·gradient from the rows, and sums s's gradient;
    at the end Y's rows take −lr·(the gradient of s·Σ∂loss/∂s + ½·|B|·reg·Σₐ‖Yₐ‖²).
    Returns Σ e².
    """
    P, Q, bu, bi, Y, Z = tables
    u, items, ratings = block
    a_idx, c_a = user_bag
    Ya = Y[a_idx].requires_grad_(True)  # (|A(u)|, k)
    s_graph = (c_a[:, None] * Ya).sum(0)  # (k,)
    s = s_graph.detach().requires_grad_(True)  # Y fixed during the block
    grad_s = torch.zeros_like(s)  # (k,)
    sse = 0.0
    for it, rating, (g_idx, c_g) in zip(items, ratings, item_bags, strict=True):
        rows = [P[u], Q[it], bu[u, 0], bi[it, 0], Z[g_idx]]
        rows = [x.clone().requires_grad_(True) for x in rows]
        loss, err = _sample_loss(rows, s, c_g, rating, mu, reg)
        *grads, g_s = torch.autograd.grad(loss, [*rows, s])
        with torch.no_grad():
            P[u] -= lr * grads[0]
            Q[it] -= lr * grads[1]
            bu[u, 0] -= lr * grads[2]
            bi[it, 0] -= lr * grads[3]
            Z.index_add_(0, g_idx, grads[4], alpha=-lr)
            grad_s += g_s
        sse += float(err.detach()) ** 2
    y_loss = (s_graph * grad_s).sum() + 0.5 * len(items) * reg * (Ya**2).sum()
    (g_Y,) = torch.autograd.grad(y_loss, [Ya])
    with torch.no_grad():
        Y.index_add_(0, a_idx, g_Y, alpha=-lr)
    return sse


class TorchSVDpp(SVDpp):
    """:class:`mfrec.reference.svdpp.SVDpp` in PyTorch: same parameters, init and orders.

    ``mode="exact"`` equals the Numba kernel step for step (float64: to rounding).
    ``mode="minibatch"`` visits the ratings in a fresh permutation each epoch (not in user
    blocks) and steps the mean loss of ``batch_size`` of them with lr·batch_size, Y included
    at every step.
    """

    @extends(SVDpp)
    def __init__(
        self, *, mode: str = "exact", batch_size: int = 1024, device: str = "cpu", **params
    ) -> None:
        super().__init__(**params)
        self.mode, self.batch_size, self.device = torch_options(mode, batch_size, device)

    def _runs_on(self) -> str:
        batch = f" (batch {self.batch_size})" if self.mode == "minibatch" else ""
        return f"torch {self.mode}{batch} on {self.device}"

    def _start(self, u_np, i_np, r_np, P, Q, mu, rng):
        self._take_parameters(u_np, i_np, P, Q, mu, rng)
        self.module = SVDppModule(self.P_free, self.Q_free, self.Y, self.Z, mu).to(self.device)
        dev = self.device
        A = [torch.from_numpy(a).to(dev) for a in self.A]
        G = [torch.from_numpy(a).to(dev) for a in self.G]
        u, i, r = (torch.from_numpy(a).to(dev) for a in (u_np, i_np, r_np))
        m = self.module
        B = 1 if self.mode == "exact" else self.batch_size
        opt = torch.optim.SGD(m.parameters())

        def run_epoch(lr: float) -> float:
            if self.mode == "exact":
                order = user_block_order(rng, u_np, P.shape[0], self.shuffle)
                return self._exact_epoch(u, i, r, order, A, G, lr)
            opt.param_groups[0]["lr"] = lr * B
            order = epoch_order(rng, r_np.shape[0], self.shuffle)
            return self._minibatch_epoch(u, i, r, torch.from_numpy(order).to(dev), A, G, opt)

        return EpochFunction(run_epoch), 0

    def _exact_epoch(self, u, i, r, order: np.ndarray, A, G, lr: float) -> float:
        """The Numba kernel's rule by autograd, user block by user block (see
        :func:`exact_block`), on the module's weights in place."""
        m = self.module
        tables = [t.weight.detach() for t in (m.P, m.Q, m.bu, m.bi, m.Y, m.Z)]
        A_ptr, G_ptr = A[0].tolist(), G[0].tolist()
        users, items = u.cpu().numpy()[order], i.cpu().numpy()[order]
        ratings = r.cpu().numpy()[order]
        cuts = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True]).tolist()
        sse = 0.0
        for start, end in zip(cuts[:-1], cuts[1:], strict=True):
            user = int(users[start])
            user_bag = (A[1][A_ptr[user] : A_ptr[user + 1]], A[2][A_ptr[user] : A_ptr[user + 1]])
            item_bags = [
                (G[1][G_ptr[it] : G_ptr[it + 1]], G[2][G_ptr[it] : G_ptr[it + 1]])
                for it in items[start:end].tolist()
            ]
            block = (user, items[start:end].tolist(), ratings[start:end].tolist())
            sse += exact_block(tables, block, user_bag, item_bags, m.mu, lr, self.reg)
        return sse

    def _minibatch_epoch(self, u, i, r, order: torch.Tensor, A, G, opt) -> float:
        """Mean loss of each batch (Y's penalty per sample over its bag), one SGD step each."""
        m = self.module
        sse = torch.zeros((), dtype=torch.float64, device=self.device)
        for start in range(0, order.shape[0], self.batch_size):
            idx = order[start : start + self.batch_size]  # (B,)
            opt.zero_grad(set_to_none=True)
            user_bag = gather_bags(A[0], A[1], A[2], u[idx])
            s = m.bag_sum(m.Y, user_bag)  # (B, k)
            item_bag = gather_bags(G[0], G[1], G[2], i[idx])
            loss, err = m.sample_loss(u[idx], i[idx], r[idx], s, item_bag, self.reg, user_bag)
            (loss / idx.shape[0]).backward()
            opt.step()
            sse += (err.detach().double() ** 2).sum()
        return float(sse)

    def _epoch_done(self, epoch: int) -> None:
        if hasattr(self, "module") and epoch >= 0:
            self._sync_numpy()
        else:
            super()._epoch_done(epoch)

    def _sync_numpy(self) -> None:
        """The module's weights into P_free, Q_free, bu, bi, Y, Z, then the effective P, Q."""
        m = self.module
        self.P_free, self.Q_free, self.bu, self.bi = module_factors(m)
        self.Y = host_copy(m.Y.weight[: self.Y.shape[0]])
        self.Z = host_copy(m.Z.weight[: self.Z.shape[0]])
        super()._epoch_done(0)
