"""Data-parallel training of the minibatch model on ``torch.distributed`` (gloo/CPU, NCCL/GPU).

Launch one process per rank with torchrun, which sets RANK, WORLD_SIZE, MASTER_ADDR, ...::

    torchrun --nproc_per_node=2 -m mfrec train --backend torch --distributed --checkpoint ck.npz

Design (numbers in docs/scaling.md):

* Every rank holds a replica of P, Q (bu, bi) and draws the same seeded global order as the
  single-process model (:func:`mfrec.reference.sampling.epoch_order`). Each global batch of B
  ratings is cut into N contiguous slices and rank r trains on slice r (its shard). Its loss is
  the sum over its slice divided by the *global* batch length, so the ranks' gradients sum to
  the gradient of the single-process mean loss: N ranks equal
  ``TorchMatrixFactorization(mode="minibatch")`` with the same ``batch_size`` to rounding, for
  any N.
* Gradients are combined by one all-reduce (SUM) per step of only the rows the global batch
  touches: every rank knows the whole global batch, hence those row indices, without exchanging
  them. That sends (|U_b| + |I_b|)·(k + β) numbers per step, independent of the table sizes.
  Not DistributedDataParallel: with dense gradients DDP reduces whole tables, (n_users + n_items)·k
  numbers per step; with sparse ones it needs gloo (NCCL has no sparse all-reduce) and gathers
  indices and values from every rank. The touched-row all-reduce works on both backends. For
  small tables, where finding the rows costs more than the bytes it saves, ``sync="auto"``
  all-reduces whole tables instead (``DENSE_ROWS_PER_RATING``).
* Faults: the process group has a timeout, so a collective whose peer died or hangs raises
  :class:`DistributedError` instead of waiting forever. Rank 0 writes a checkpoint atomically after
  every epoch; ``resume=True`` restarts from it (rank 0 reads it and broadcasts it), reaching the
  same model as an uninterrupted run. Rank 0 alone evaluates (``callback``), logs and saves.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from mfrec._internal import check_positive
from mfrec.modelio import read_record, write_record
from mfrec.reference.sampling import epoch_order
from mfrec.torch_impl.model import TorchMatrixFactorization

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

log = logging.getLogger("mfrec.distributed")

CHECKPOINT_FORMAT = "mfrec-checkpoint"
CHECKPOINT_VERSION = 1
DEFAULT_TIMEOUT_S = 60.0
# sync="auto" all-reduces whole tables up to this many rows per rating of a batch: a batch of B
# touches at most 2·B rows, and at or below that size the row search does not pay (measured).
DENSE_ROWS_PER_RATING = 2
# Hyper-parameters a checkpoint must share with the run that resumes it (n_epochs may grow).
RESUME_KEYS = (
    "n_factors", "lr", "lr_decay", "reg", "init_std", "shuffle", "seed", "dtype", "biased",
)  # fmt: skip


class DistributedError(RuntimeError):
    """A rank died, hung past the timeout or never joined; the surviving ranks stop with this."""


def init_distributed(timeout_s: float = DEFAULT_TIMEOUT_S, device: str = "cpu") -> int:
    """Join the process group torchrun describes in the environment; returns this rank.

    gloo on CPU, NCCL on CUDA. ``timeout_s`` bounds the wait for every rank to join and for
    every collective afterwards.
    """
    timeout_s = check_positive("dist_timeout", timeout_s)
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    missing = [v for v in needed if v not in os.environ]
    if missing:
        raise ValueError(
            f"--distributed runs under torchrun (e.g. torchrun --nproc_per_node=2 -m mfrec "
            f"train ...): {', '.join(missing)} not set"
        )
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed")
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:  # the store raises these when a rank never joins
        raise DistributedError(
            f"rank {os.environ['RANK']}: could not form the process group of "
            f"{os.environ['WORLD_SIZE']} ranks within {timeout_s:g} s ({_first_line(e)})"
        ) from None
    return dist.get_rank()


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of rank ``rank``'s contiguous slice of a global batch of ``n`` ratings."""
    return n * rank // world_size, n * (rank + 1) // world_size


class DistributedMatrixFactorization(TorchMatrixFactorization):
    """The torch minibatch model trained data-parallel by every rank of the process group.

    Call :func:`init_distributed` first (or run under ``mfrec train --distributed``). After
    ``fit`` every rank holds the same model. ``checkpoint`` is rewritten atomically by rank 0
    after every epoch; with ``resume=True`` an existing checkpoint is continued.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
        sync: str = "auto",
        **params,
    ) -> None:
        """``params``: those of :class:`TorchMatrixFactorization` (``mode`` is "minibatch").

        ``sync="rows"`` all-reduces the gradient rows the batch touches, ``"dense"`` whole tables
        (what DDP does with dense gradients); ``"auto"`` picks dense for small tables (see
        :meth:`_dense_sync`).
        """
        super().__init__(**params, mode="minibatch")
        if resume and checkpoint is None:
            raise ValueError("resume needs a checkpoint path (--checkpoint)")
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.resume = bool(resume)
        if sync not in ("auto", "rows", "dense"):
            raise ValueError(f"sync must be 'auto', 'rows' or 'dense', got {sync!r}")
        self.sync = sync

    def _fit(self, start: tuple, callback, **kw) -> Self:
        """Train on this rank's shard of every batch; ``callback`` runs on rank 0 only.

        Every rank holds the same model after each epoch, so each evaluates ``eval_set`` alike
        and all stop at the same epoch.
        """
        if not dist.is_initialized():
            raise ValueError("no process group: call init_distributed() (or run under torchrun)")
        if self.device.type == "cuda":
            self.device = torch.device("cuda", torch.cuda.current_device())
        return super()._fit(start, callback if dist.get_rank() == 0 else None, **kw)

    def _start(self, u_np, i_np, r_np, P0, Q0, mu, rng):
        """Build the replica, resume from the checkpoint if asked, and start every rank from
        rank 0's replica; each epoch trains this rank's shard of every global batch."""
        rank = dist.get_rank()
        self._build_module(P0, Q0, mu)
        self._checkpoint_config = self._config(u_np, i_np, r_np)
        self._rng = rng
        first_epoch = self._resume(self._checkpoint_config, rng, rank) if self.resume else 0
        for param in self.module.parameters():  # every rank starts from rank 0's replica
            _collective(dist.broadcast, param.data, 0, what="broadcasting the initial model")
        self._sync_numpy()
        return DistributedEpochs(self, u_np, i_np, r_np, rng, first_epoch), first_epoch

    def _epoch_done(self, epoch: int) -> None:
        """Rank 0 rewrites the checkpoint."""
        if self.checkpoint is not None and dist.get_rank() == 0:
            self._save_checkpoint(self._checkpoint_config, epoch + 1, self._rng)

    def _epoch_dp(self, u, i, r, order, rank: int, world_size: int, epoch: int, lr: float) -> float:
        """One epoch: per global batch, backprop my slice, all-reduce the touched rows, step.

        With ``ĝ`` the summed rows and B = ``batch_size``: Pᵤ ← Pᵤ − lr·B·ĝᵤ for each touched
        user u (likewise Qᵢ, bᵤ, bᵢ), the step ``torch.optim.SGD(lr·B)`` takes in one process.
        Returns Σ e² over all ranks, each e taken before its step.
        """
        m, B = self.module, self.batch_size
        users_tables = [m.P, m.bu] if self.biased else [m.P]
        items_tables = [m.Q, m.bi] if self.biased else [m.Q]
        width = self.n_factors + int(self.biased)
        dense = self._dense_sync()  # then rows_u = rows_i = None: every row
        rows_u = rows_i = None
        sse = torch.zeros(1, dtype=torch.float64, device=self.device)
        for step, begin in enumerate(range(0, order.shape[0], B)):
            idx = order[begin : begin + B]  # (B,) the global batch
            lo, hi = shard_bounds(idx.shape[0], rank, world_size)
            mine = idx[lo:hi]  # (≈B/N,) my shard of it
            if not dense:
                rows_u = torch.unique(u[idx])  # (|U_b|,) sorted
                rows_i = torch.unique(i[idx])  # (|I_b|,) sorted
            for p in m.parameters():
                p.grad = None
            if mine.numel():
                loss, err = m.loss(u[mine], i[mine], r[mine], self.reg)  # (B/N,), (B/N,)
                (loss.sum() / idx.shape[0]).backward()
                sse += (err.detach().double() ** 2).sum()
            grad_u = _touched_rows(users_tables, rows_u, width)  # (|U_b|, k + β)
            grad_i = _touched_rows(items_tables, rows_i, width)  # (|I_b|, k + β)
            flat = torch.cat([grad_u.reshape(-1), grad_i.reshape(-1)])  # ((|U_b|+|I_b|)(k+β),)
            _collective(dist.all_reduce, flat, what=f"epoch {epoch + 1}, step {step + 1}")
            grad_u, grad_i = flat.split([grad_u.numel(), grad_i.numel()])
            with torch.no_grad():
                _step(users_tables, rows_u, grad_u.view(-1, width), lr * B)
                _step(items_tables, rows_i, grad_i.view(-1, width), lr * B)
        _collective(dist.all_reduce, sse, what=f"the end of epoch {epoch + 1}")
        return float(sse)

    def _dense_sync(self) -> bool:
        """Whole tables or touched rows: ``auto`` goes dense while the tables hold at most
        DENSE_ROWS_PER_RATING·B rows, where finding the touched rows costs more than it saves."""
        if self.sync == "auto":
            return self.n_users + self.n_items <= DENSE_ROWS_PER_RATING * self.batch_size
        return self.sync == "dense"

    def _config(self, u_np, i_np, r_np) -> dict:
        """What a checkpoint must match to be resumed: hyper-parameters and the data's digest."""
        digest = hashlib.sha256()
        for a in (u_np, i_np, r_np):
            digest.update(np.ascontiguousarray(a).tobytes())
        config = {k: getattr(self, k) for k in RESUME_KEYS}
        config["dtype"] = np.dtype(self.dtype).name
        config["batch_size"] = self.batch_size
        config.update(n_users=self.n_users, n_items=self.n_items, data_sha256=digest.hexdigest())
        return config

    def _save_checkpoint(self, config: dict, epochs_done: int, rng: np.random.Generator) -> None:
        meta = {
            "config": config,
            "epochs_done": epochs_done,
            "rng_state": rng.bit_generator.state,
            "history": self.history_,
        }
        arrays = {"P": self.P, "Q": self.Q, "bu": self.bu, "bi": self.bi}
        write_checkpoint(self.checkpoint, meta, arrays)  # pyright: ignore[reportArgumentType]  (set)

    def _resume(self, config: dict, rng: np.random.Generator, rank: int) -> int:
        """Rank 0 reads the checkpoint and broadcasts it; returns the number of epochs done."""
        box: list = [None]
        if rank == 0:
            try:
                box[0] = read_checkpoint(self.checkpoint, config)  # pyright: ignore[reportArgumentType]
            except ValueError as e:
                box[0] = e
        _collective(dist.broadcast_object_list, box, 0, what="sharing the checkpoint")
        loaded = box[0]
        if isinstance(loaded, ValueError):
            raise ValueError(str(loaded))
        if loaded is None:
            if rank == 0:
                log.info("no checkpoint at %s yet: starting from epoch 1", self.checkpoint)
            return 0
        meta, arrays = loaded
        rng.bit_generator.state = meta["rng_state"]
        self.history_ = list(meta["history"])
        m = self.module
        tables = [("P", m.P), ("Q", m.Q)]
        if self.biased:
            tables += [("bu", m.bu), ("bi", m.bi)]
        with torch.no_grad():
            for name, table in tables:
                value = torch.from_numpy(arrays[name]).to(self.device)
                table.weight.copy_(value.view_as(table.weight))
        if rank == 0:
            log.info("resumed from %s after epoch %d", self.checkpoint, meta["epochs_done"])
        return int(meta["epochs_done"])


class DistributedEpochs:
    """The :class:`~mfrec.reference.mf.EpochRunner` of a rank: each epoch draws the global
    order from the fit's generator (the same on every rank) and trains this rank's shard of
    every global batch (:meth:`DistributedMatrixFactorization._epoch_dp`)."""

    def __init__(self, model: DistributedMatrixFactorization, u_np, i_np, r_np, rng, epoch: int):
        self.model, self.rng, self.n, self.epoch = model, rng, r_np.shape[0], epoch
        self.u, self.i, self.r = model._to_device(u_np, i_np, r_np)  # (N,) each
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def run(self, lr: float) -> float:
        """One data-parallel epoch at ``lr``; returns Σ e² over all ranks."""
        m = self.model
        order = torch.from_numpy(epoch_order(self.rng, self.n, m.shuffle)).to(m.device)
        sse = m._epoch_dp(self.u, self.i, self.r, order, self.rank, self.world_size, self.epoch, lr)
        self.epoch += 1
        return sse

    def copy_out(self) -> None:
        """The replica's weights into the model's numpy P, Q, bu, bi."""
        self.model._sync_numpy()


def _touched_rows(tables: list[torch.nn.Embedding], rows: torch.Tensor | None, width: int):
    """This rank's gradient of each table at ``rows`` (None: all rows), side by side.

    Returns a (len(rows), width) tensor; the tables' columns sit one after the other.
    """
    weight = tables[0].weight
    n = weight.shape[0] if rows is None else rows.shape[0]
    out = torch.zeros(n, width, dtype=weight.dtype, device=weight.device)
    col = 0
    for table in tables:
        cols = table.weight.shape[1]
        grad = table.weight.grad
        if grad is not None:  # sparse, uncoalesced: index_add_ sums its repeated rows
            pos = grad._indices()[0]  # (nnz,) the rows I touched
            if rows is not None:
                pos = torch.searchsorted(rows, pos)  # (nnz,) their places in rows ⊇ them
            out[:, col : col + cols].index_add_(0, pos, grad._values())  # (nnz, cols) summed
        col += cols
    return out


def _step(tables: list[torch.nn.Embedding], rows: torch.Tensor | None, grad, lr: float) -> None:
    """W[rows] ← W[rows] − lr·grad (rows None: all of W) for each table's columns of ``grad``."""
    col = 0
    for table in tables:
        cols = table.weight.shape[1]
        if rows is None:
            table.weight.add_(grad[:, col : col + cols], alpha=-lr)
        else:
            table.weight.index_add_(0, rows, grad[:, col : col + cols], alpha=-lr)
        col += cols


def _collective(op, *args, what: str):
    """Run a torch.distributed collective; a dead or hung peer becomes a DistributedError."""
    try:
        return op(*args)
    except RuntimeError as e:
        rank = dist.get_rank() if dist.is_initialized() else "?"
        raise DistributedError(
            f"rank {rank} lost contact with the other ranks while {what}: a rank died or "
            f"hung ({_first_line(e)})"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def write_checkpoint(path: str | os.PathLike, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write a checkpoint in mfrec's file format (:func:`mfrec.modelio.write_record`):
    ``meta`` and ``arrays`` in one .npz, atomically, creating missing folders."""
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    return write_record(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, meta, arrays, parents=True)


def read_checkpoint(path: str | os.PathLike, config: dict) -> tuple[dict, dict] | None:
    """(meta, arrays) of a checkpoint made with ``config``; None when there is none yet.

    Read by :func:`mfrec.modelio.read_record`, so a damaged, foreign or newer file is a
    :class:`mfrec.modelio.ModelFileError` (a ``ValueError``) naming it.
    """
    path = Path(path)
    if not path.exists():
        return None
    meta, arrays = read_record(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    for key, want in config.items():
        have = meta["config"].get(key)
        if have != want:
            raise ValueError(
                f"{path}: cannot resume, the checkpoint has {key}={have!r} but this run "
                f"has {key}={want!r}"
            )
    return meta, arrays
