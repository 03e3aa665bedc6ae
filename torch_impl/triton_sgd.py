"""The per-sample SGD rule as a Triton kernel: Hogwild across tiles of ratings.

Each Triton program takes tiles of ``BR`` ratings of the epoch's walk in turn, gathers their Pᵤ and
Qᵢ rows (``tl.load(…, cache_modifier=".cg")``: from L2, never a multiprocessor's possibly
stale L1 line), computes every e, and stores the updated rows (``.cg`` stores, into L2). No
locks or atomics: tiles run at once on the GPU and, as in :mod:`mfrec.reference.cuda`, two
ratings of one row in flight together both read it before either stores, and the later store
wins (a lost step), whether they share a tile or not. Small tiles keep that rare on
MovieLens-like data; ``BR=1`` with programs run in order (``TRITON_INTERPRET=1`` on the CPU
does that) is the reference rule, rating by rating.

Triton comes with torch's CUDA builds; on a CPU install it is the optional extra
``mfrec[triton]``, and its interpreter runs the kernel on CPU tensors (``tests/test_triton.py``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from mfrec import devices
from mfrec._internal import check_positive
from mfrec.reference.mf import MatrixFactorization
from mfrec.reference.sampling import WALK_ORDERS, EpochWalks

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU installs without the extra: the class says so when built
    triton = None

RATINGS_PER_WORKER = 256  # as mfrec.reference.cuda's grid: the least ratings a program walks
TILE = 4  # ratings per program step: small tiles keep Hogwild's collisions rare (not yet tuned)


def available() -> str | None:
    """The torch device the Triton kernel runs on here: "cuda", "cpu" (the interpreter,
    ``TRITON_INTERPRET=1``), or None (no triton, or neither)."""
    if triton is None:
        return None
    if devices.torch_cuda():
        return "cuda"
    return "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else None


if triton is not None:

    @triton.jit
    def _sgd_tiles(
        users,
        items,
        ratings,
        order,
        P,
        Q,
        bu,
        bi,
        sse,
        hyper,
        n,
        a,
        b,
        step,
        K: tl.constexpr,
        BK: tl.constexpr,
        BR: tl.constexpr,
        BIASED: tl.constexpr,
    ):
        """Program p of G takes tiles p, p + G, …; tile t holds walk positions
        s = t·BR … t·BR + BR − 1, rating ``order[(a·s + b) mod n]`` (``step`` = a·G·BR mod n:
        a tile's positions advance by it to the program's next tile). The reference rule on each
        (Pᵤ from before); the program's Σ e² (float64) into ``sse[p]``. ``hyper`` = [μ, lr, reg]
        in the factors' dtype (a float scalar argument would be float32)."""
        mu = tl.load(hyper)
        lr = tl.load(hyper + 1)
        reg = tl.load(hyper + 2)
        f = tl.arange(0, BK)  # (BK,)
        acc = tl.zeros([BR], dtype=tl.float64)
        first = tl.program_id(0)
        stride = tl.num_programs(0) * BR  # walk steps from one of this program's tiles to the next
        s = tl.arange(0, BR).to(tl.int64) + first * BR  # (BR,): int64, as a·s may pass 2³¹
        pos = (a * (s % n) + b) % n  # (BR,): 64-bit remainders once per program, not per rating
        for _ in range(first, tl.cdiv(n, BR), tl.num_programs(0)):
            live = s < n
            j = tl.load(order + pos, mask=live, other=0)  # (BR,)
            u = tl.load(users + j, mask=live, other=0)
            i = tl.load(items + j, mask=live, other=0)
            r = tl.load(ratings + j, mask=live, other=0.0)
            cell = live[:, None] & (f < K)[None, :]  # (BR, BK)
            p_at = P + u[:, None] * K + f[None, :]
            q_at = Q + i[:, None] * K + f[None, :]
            Pu = tl.load(p_at, mask=cell, other=0.0, cache_modifier=".cg")  # (BR, BK)
            Qi = tl.load(q_at, mask=cell, other=0.0, cache_modifier=".cg")
            r_hat = tl.sum(Pu * Qi, axis=1)  # (BR,)
            if BIASED:
                b_u = tl.load(bu + u, mask=live, other=0.0, cache_modifier=".cg")
                b_i = tl.load(bi + i, mask=live, other=0.0, cache_modifier=".cg")
                r_hat = mu + b_u + b_i + r_hat  # the reference's order of additions
            err = tl.where(live, r - r_hat, 0.0)  # (BR,)
            if BIASED:
                tl.store(bu + u, b_u + lr * (err - reg * b_u), mask=live, cache_modifier=".cg")
                tl.store(bi + i, b_i + lr * (err - reg * b_i), mask=live, cache_modifier=".cg")
            e = err[:, None]
            tl.store(p_at, Pu + lr * (e * Qi - reg * Pu), mask=cell, cache_modifier=".cg")
            tl.store(q_at, Qi + lr * (e * Pu - reg * Qi), mask=cell, cache_modifier=".cg")
            e64 = err.to(tl.float64)
            acc += e64 * e64
            s += stride
            pos += step
            pos = tl.where(pos >= n, pos - n, pos)
        tl.store(sse + tl.program_id(0), tl.sum(acc, axis=0))


def warps_for(tile: int, BK: int) -> int:
    """Warps per program: one per 256 values of the (tile, BK) block, 1 to 4 (small programs let
    more tiles be in flight per multiprocessor; not yet tuned on a GPU)."""
    return max(1, min(4, tile * BK // 256))


def default_programs(n_ratings: int, tile: int) -> int:
    """Programs for an epoch: enough that each walks >= RATINGS_PER_WORKER ratings (few enough
    concurrent tiles that Hogwild's collisions stay rare on small data), at least one."""
    return max(1, n_ratings // (tile * RATINGS_PER_WORKER))


class TritonEpochs:
    """Ratings and factors as torch tensors on ``device``; each :meth:`run` is one epoch."""

    def __init__(
        self,
        data: tuple,
        factors: tuple,
        device: str,
        tile: int = TILE,
        programs: int | None = None,
    ) -> None:
        """``data`` = (users, items, ratings), ``factors`` = (P, Q, bu, bi): host arrays."""

        def put(x):
            return torch.as_tensor(np.ascontiguousarray(x)).to(device)

        self.host = factors
        self.users, self.items, self.ratings = (put(x) for x in data)
        self.P, self.Q, self.bu, self.bi = (put(x) for x in factors)
        self.tile = tile
        n = self.ratings.shape[0]
        self.programs = default_programs(n, tile) if programs is None else programs
        self.sse = torch.empty(self.programs, dtype=torch.float64, device=device)
        self.hyper: dict[tuple, torch.Tensor] = {}  # (μ, lr, reg) -> the same on the device

    def launch(self, order: torch.Tensor, mu, lr, reg, biased: bool, a: int = 1, b: int = 0):
        """Queue one epoch over walk t ↦ order[(a·t + b) mod n]; Σ e² per program in ``sse``."""
        assert triton is not None, "TritonMatrixFactorization refuses a machine without triton"
        k = self.P.shape[1]
        BK = triton.next_power_of_2(k)
        _sgd_tiles[(self.programs,)](
            self.users,
            self.items,
            self.ratings,
            order,
            self.P,
            self.Q,
            self.bu,
            self.bi,
            self.sse,
            self._hyper(mu, lr, reg),
            order.shape[0],
            a,
            b,
            a * (self.programs * self.tile % order.shape[0]) % order.shape[0],
            K=k,
            BK=BK,
            BR=self.tile,
            BIASED=bool(biased),
            num_warps=warps_for(self.tile, BK),  # pyright: ignore[reportCallIssue] (launch option)
        )

    def _hyper(self, mu, lr, reg) -> torch.Tensor:
        key = (float(mu), float(lr), float(reg))
        if key not in self.hyper:
            self.hyper[key] = torch.tensor(key, dtype=self.P.dtype, device=self.P.device)
        return self.hyper[key]

    def run(self, order: torch.Tensor, mu, lr, reg, biased: bool, a: int = 1, b: int = 0):
        """One epoch; returns Σ e² (float, so it waits for the device)."""
        self.launch(order, mu, lr, reg, biased, a, b)
        return float(self.sse.sum())

    def copy_back(self) -> None:
        """Refresh the host P, Q, bu, bi in place from the device tensors."""
        for d, h in zip((self.P, self.Q, self.bu, self.bi), self.host, strict=True):
            np.copyto(h, d.cpu().numpy())


class TritonRunner:
    """The fit's :class:`~mfrec.reference.mf.EpochRunner` for the Triton kernel: each epoch's
    walk from :class:`~mfrec.reference.sampling.EpochWalks` over the fit's generator (a host
    order copied into one device buffer, or one uploaded permutation walked)."""

    def __init__(self, model: TritonMatrixFactorization, u, i, r, rng) -> None:
        host = (model.P, model.Q, model.bu, model.bi)
        self.epochs = TritonEpochs((u, i, r), host, model.device, model.tile, model.programs)
        self.hyper = (model.mu, model.reg, model.biased)
        self.d_order: torch.Tensor | None = None
        self.walks = EpochWalks(rng, r.shape[0], model.shuffle, model.order, self._put)

    def _put(self, order: np.ndarray) -> torch.Tensor:
        """``order`` in the one device buffer of orders (allocated on first use)."""
        host = torch.from_numpy(order)
        if self.d_order is None:
            self.d_order = host.to(self.epochs.P.device)
        else:
            self.d_order.copy_(host)
        return self.d_order

    def _launch(self, lr: float) -> None:
        d_order, a, b = self.walks()
        mu, reg, biased = self.hyper
        self.epochs.launch(d_order, mu, lr, reg, biased, a, b)

    def run(self, lr: float) -> float:
        """One epoch; returns Σ e² (waits for the device)."""
        self._launch(lr)
        return float(self.epochs.sse.sum())

    def run_all(self, lrs) -> np.ndarray:
        """Every epoch queued on the device, each one's Σ e² summed there; one copy back."""
        sse = torch.empty(len(lrs), dtype=torch.float64, device=self.epochs.sse.device)
        for e, lr in enumerate(lrs):
            self._launch(lr)
            sse[e] = self.epochs.sse.sum()
        self.copy_out()
        return sse.cpu().numpy()

    def copy_out(self) -> None:
        """Refresh the model's P, Q, bu, bi from the device."""
        self.epochs.copy_back()


class TritonMatrixFactorization(MatrixFactorization):
    """:class:`~mfrec.reference.MatrixFactorization` trained by the Triton Hogwild kernel.

    ``tile`` ratings per Triton program step (see :data:`TILE`), ``programs`` programs
    (None: :func:`default_programs`); ``order="host"`` visits the fit's
    permutations (the reference's stream), ``"device"`` walks one permutation by a fresh
    t ↦ (a·t + b) mod n each epoch (no host permutation or copy per epoch); both draw from the
    fit's generator. Without ``callback``, ``eval_set`` or ``tol`` every epoch is queued on the
    device with one copy back (:meth:`TritonRunner.run_all`); otherwise the host P, Q, bu, bi
    are refreshed after every epoch. Runs on CUDA, or on the CPU under ``TRITON_INTERPRET=1``.
    """

    def __init__(
        self, *, tile: int = TILE, programs: int | None = None, order: str = "host", **params
    ) -> None:
        """``params``: those of :class:`~mfrec.reference.MatrixFactorization`."""
        super().__init__(**params)
        device = available()
        if device is None:
            raise ValueError(
                "TritonMatrixFactorization needs triton with a CUDA device (or "
                "TRITON_INTERPRET=1 for the CPU interpreter); pip install 'mfrec[triton]'"
            )
        self.device = device
        self.tile = check_positive("tile", tile, integer=True)
        self.programs = None if programs is None else check_positive("programs", programs, True)
        if order not in WALK_ORDERS:
            raise ValueError(f"order must be one of {WALK_ORDERS}, got {order!r}")
        self.order = order

    def _runs_on(self) -> str:
        return (
            f"Triton Hogwild, tiles of {self.tile}, order drawn on the {self.order}, {self.device}"
        )

    def _epoch_runner(self, u, i, r, rng) -> TritonRunner:
        """One kernel launch per epoch (see :class:`TritonRunner`)."""
        return TritonRunner(self, u, i, r, rng)
