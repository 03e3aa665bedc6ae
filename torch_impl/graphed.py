"""A whole minibatch epoch as one CUDA graph: every full batch's autograd step, replayed at once.

A Python loop of small launches leaves the GPU idle between steps (an H200 ran the compiled step
at B=16384 at 58M updates/s, most of it launch and guard overhead). :class:`GraphedEpoch` records
the epoch's full-batch steps (:func:`mfrec.torch_impl.model.sparse_sgd_step`, autograd by
``torch.func.grad``, eager or under ``torch.compile``) once into a ``torch.cuda.CUDAGraph`` over
a static order buffer; each epoch copies its order in and replays the graph. The short last
batch runs outside the graph. On the CPU the same steps run as a plain loop (what the tests
check against the eager epoch); the graph is for CUDA only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def full_batch_steps(
    step: Callable,
    tables: Sequence[torch.Tensor],
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    order: torch.Tensor,
    n_batches: int,
    B: int,
    mu: torch.Tensor,
    lr: float,
    reg: float,
    sse: torch.Tensor,
) -> None:
    """``n_batches`` steps of ``step`` over order[0 : n_batches·B], Σ e² added into ``sse``."""
    u, i, r = data
    for start in range(0, n_batches * B, B):
        idx = order[start : start + B]  # (B,)
        sse += step(tables, u[idx], i[idx], r[idx], mu, lr, reg)


class GraphedEpoch:
    """The full batches of an epoch of ``n`` ratings in steps of ``B``, captured on first call.

    ``step`` is :func:`sparse_sgd_step` or its compiled form; ``tables`` the factor tensors
    (updated in place, so the graph sees their fixed storage). Call with the epoch's order; it
    returns the Σ e² tensor of the full batches (the caller adds the last, short batch).
    """

    WARMUP = 3  # steps run before capture (cuBLAS/compile set-up), then undone

    def __init__(self, step, tables, data, n: int, B: int, mu, lr: float, reg: float) -> None:
        self.step, self.tables, self.data = step, list(tables), data
        self.n_batches, self.B = n // B, B
        self.hyper = (mu, lr, reg)
        device = tables[0].device
        self.order = torch.zeros(n, dtype=torch.int64, device=device)  # static: graph input
        self.sse = torch.zeros((), dtype=torch.float64, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None

    def _steps(self, n_batches: int | None = None) -> None:
        n_batches = self.n_batches if n_batches is None else n_batches
        args = (self.tables, self.data, self.order, n_batches, self.B, *self.hyper, self.sse)
        full_batch_steps(self.step, *args)

    def _capture(self) -> torch.cuda.CUDAGraph:
        saved = [t.clone() for t in self.tables]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._steps(min(self.WARMUP, self.n_batches))
        torch.cuda.current_stream().wait_stream(stream)
        for t, s in zip(self.tables, saved, strict=True):
            t.copy_(s)  # the warm-up's steps were not the epoch's
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.sse.zero_()
            self._steps()
        return graph

    def __call__(self, order: torch.Tensor) -> torch.Tensor:
        """Run the full batches over ``order``; returns their Σ e² (a device tensor)."""
        self.order.copy_(order)
        if self.order.device.type != "cuda":
            self.sse.zero_()
            self._steps()
            return self.sse.clone()
        if self.graph is None:
            self.graph = self._capture()
        self.graph.replay()
        return self.sse.clone()
