"""The default model of ``mfrec train``: a validated blend whose members fit the data's size.

The rule (docs/accuracy.md explains it; :func:`plan` computes it from the training size n):

- Members: biased SGD MF (k=100, lr 0.005) once per L2 penalty in :data:`SGD_REGS`, each
  early-stopped on the validation split; Gibbs-sampled Bayesian MF with ARD, k=10; and below
  :data:`SMALL` ratings a second chain with k=20.
- Side information: given user or item features (:class:`~mfrec.data.Features`, aligned to the
  fit's index space), a Gibbs-sampled factorization machine (:class:`FeatureFM`, k=10) takes
  the Bayesian MF chains' place: ids, the features and the implicit feedback of the ratings
  it is fitted on (each user's items N(u) and each item's raters R(i), both
  |·|^−½-weighted), as :data:`FM_CHAINS` independent chains of 20 + :data:`FM_SAMPLES`
  sweeps averaged, run side by side on the cores. With ids alone it is Bayesian MF: it
  subsumes them.
  Its average is a factor model, so the blend stays one, and it keeps only the weight the
  validation blend gives it. Without features the members are exactly those above.
- Dates: given the ratings' timestamps (``fit(timestamps=...)``; ``dates=False`` or the CLI's
  ``--dates none``/``--features none`` turn it off), the FM member is used, features or not,
  with a block of the ratings' months. The blend is then the stacked factor model plus the
  FM's weighted date part (see :class:`DefaultModel`): ``predict`` takes each pair's date;
  ``recommend``, the fold-in and ``score_all`` use the latest training month.
- Size: below :data:`SMALL` training ratings the FM member takes the Bayesian MF chains'
  place, as above. From :data:`SMALL` on, a lighter FM (ids and the features, no implicit
  feedback: N(u) and R(i) cost more per sweep than the ids and features together) joins the
  ids-only members instead, given features, and every member is budgeted by measured time
  (:class:`Budget`; the chains first, then SGD). The dates' block costs several sweeps of the
  rest (one row per rating), so it is used only below :data:`FM_MAX_RATINGS`.
- Validation: below :data:`SMALL` ratings 10% of the training ratings, and every kept member
  is refit on all of them (the held-out tenth matters there, and a refit costs seconds);
  from :data:`SMALL` on, 2% (at least 20,000 ratings at that size, 400,000 at ML-25M) and no
  refit, which halves the time and costs little since the members still see 98% of the data.
- Blend weights: least squares on the validation predictions, w ≥ 0, Σw = 1
  (:func:`mfrec.reference.ensemble.simplex_weights`); a weight under 1% drops the member.
  So the L2 penalty of SGD is chosen on validation too: the penalty the blend does not want
  gets weight 0. With the FM member the blend must also beat the best member on validation
  by :data:`MIN_GAIN_SE` standard errors, else that member is kept alone (and only it refit).
- Work budget: below :data:`SMALL`, the SGD members together run at most :data:`SGD_BUDGET`
  rating-epochs (capped at :data:`MAX_EPOCHS` each) and a Gibbs chain :data:`GIBBS_BUDGET`
  rating-sweeps (capped at 20 burn-in + 200). From :data:`SMALL` on, measured time instead
  (:class:`Budget`): :data:`BUDGET_SECONDS` CPU seconds per training rating for all members,
  shared out as they start, and each member stops early once the validation blend with it
  gains too little per second (an SGD member beside the chains usually after a few
  epochs, with weight 0). Either way the time stays near-linear in n; every chain keeps at
  most :data:`MAX_KEPT` samples, so the saved model has at most 100·|SGD kept| + 10·MAX_KEPT
  per chain factor columns, stored as float32. Below :data:`SMALL` the FM member is
  :data:`FM_CHAINS` chains of :data:`FM_SAMPLES` kept sweeps, averaged.
- Device: the SGD members run the blocked kernel on all cores (the Python API's default stays
  the exact single-threaded reference), or the numba.cuda kernel with ``device="cuda"``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from mfrec._internal import check_positive, check_ratings
from mfrec.data.features import DATE_UNITS, Features, date_features, date_periods
from mfrec.data.splits import carve_validation
from mfrec.reference import MatrixFactorization
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.bfm import BayesianFM
from mfrec.reference.ensemble import BlendedEnsemble, member_label, simplex_weights
from mfrec.reference.metrics import rmse
from mfrec.reference.mf import FactorModel

SMALL = 1_000_000
"""Training ratings from which the default validates on 2% without refitting (else 10%, refit)."""
SGD_REGS = (0.05, 0.1)
"""L2 penalties of the SGD candidates; the blend weights choose between them."""
SGD_BUDGET = 1.6e9
"""Rating-epochs for all SGD candidates together (80 epochs each at 10M ratings)."""
GIBBS_BUDGET = 1.0e9
"""Rating-sweeps for a Gibbs chain (50 sweeps at 20M ratings)."""
MAX_EPOCHS = 100
MAX_SWEEPS = 220
MAX_KEPT = 50
MIN_EPOCHS = 10
MIN_SWEEPS = 30
BUDGET_BURN_IN = 10
"""Burn-in sweeps of a budgeted chain (from :data:`SMALL` on), which then keeps every sample
up to :data:`MAX_KEPT` or until :class:`Budget` stops it."""
FM_FACTORS = 10
FM_CHAINS = 4
"""Independent FM chains, averaged. On ML-100k u1's validation split (the default's 10%
carve, seed 0) one chain of 20 + 200 sweeps scored 0.8671 RMSE (seeds 1, 2: 0.8676, 0.8688;
400 sweeps: 0.8664), two of them averaged 0.8650, four of 20 + 40 sweeps 0.8657, of 20 + 60
0.8655 (every sample kept; every 4th of 20 + 40: 0.8666): chains settle in different modes,
so averaging them beats a longer chain."""
FM_SAMPLES = 40
"""Kept sweeps of each FM chain after its burn-in (see :data:`FM_CHAINS`)."""
FM_MAX_RATINGS = SMALL
"""Training ratings from which the default leaves out the FM's date block: on 2.5M generated
ml-25m-like ratings the dated FM took the job from 52 s to 435 s wall (docs/accuracy.md)."""
BUDGET_SECONDS = 20e-6
"""From :data:`SMALL` on, CPU seconds of member fitting per training rating (40 s at 2M, 400 s
at 20M), shared out among the members as they start (:class:`Budget`)."""
BUDGET_SHARES = {"chain": 3.0, "sgd": 1.0}
"""A member's claim on the time left when it starts, relative to the members after it."""
MIN_GAIN_RATE = 2e-4
"""From :data:`SMALL` on, a member stops once the validation RMSE of the blend with it as it
stands (beside the members fitted before it) improved by less than this per second per
million training ratings over its last :data:`GAIN_WINDOW` steps (kept samples, epochs)."""
GAIN_WINDOW = 5
MIN_GAIN = 1e-4
"""A member stopped for its gain rate that improved the validation blend by less than this
RMSE rules out the later members of its kind (:class:`Budget`)."""
MIN_GAIN_SE = 2.0
"""With the FM member, the blend must beat its best member on validation by this many standard
errors (:class:`~mfrec.reference.ensemble.BlendedEnsemble`'s ``min_gain_se``), else that
member is kept alone: on ML-100k u1's validation split the SGD members' weight (0.11) gained
1.4 standard errors, noise by this rule."""
DATE_UNIT = "month"
"""The period of the default's date feature (as benchmarks/bfm_canonical.py measured it)."""
DATE_STATE = ("factor_form", "date_span_", "w_date_", "V_date_", "date_cols_", "_as_of_latest")
"""What a fit with dates adds to a :class:`DefaultModel` (cleared at the next fit)."""
DATE_CHUNK = 1 << 16
"""Pairs whose date part is computed at once (bounds the (n, k) temporaries)."""
DEVICES = ("auto", "cpu", "cuda")


def plan(n_ratings: int) -> dict:
    """The default's settings for ``n_ratings`` training ratings (see the module doc): below
    :data:`SMALL` budgets in rating-epochs and rating-sweeps, from there on in seconds
    (``budget_s``, :class:`Budget`) with the members' caps at :data:`MAX_EPOCHS` epochs and
    :data:`BUDGET_BURN_IN` + :data:`MAX_KEPT` sweeps."""
    small = n_ratings < SMALL
    epochs = int(np.clip(SGD_BUDGET / len(SGD_REGS) / max(n_ratings, 1), MIN_EPOCHS, MAX_EPOCHS))
    sweeps = int(np.clip(GIBBS_BUDGET / max(n_ratings, 1), MIN_SWEEPS, MAX_SWEEPS))
    burn_in = min(20, sweeps // 5)
    samples = sweeps - burn_in
    if not small:
        epochs, burn_in, samples = MAX_EPOCHS, BUDGET_BURN_IN, MAX_KEPT
    return {
        "val_fraction": 0.1 if small else 0.02,
        "refit": small,
        "sgd_epochs": epochs,
        "burn_in": burn_in,
        "n_samples": samples,
        "thin": -(-samples // MAX_KEPT),
        "bayes_factors": (10, 20) if small else (10,),
        "fm_dates": n_ratings < FM_MAX_RATINGS,
        "fm_implicit": small,
        "budget_s": None if small else BUDGET_SECONDS * n_ratings,
        "fm_chains": FM_CHAINS if small else 1,
        "fm_samples": FM_SAMPLES if small else samples,
        "fm_thin": -(-(FM_SAMPLES if small else samples) // MAX_KEPT),
    }


def check_date_unit(date_unit: str) -> str:
    """``date_unit`` if it is one of ``DATE_UNITS``, else a ValueError naming it."""
    if date_unit not in DATE_UNITS:
        raise ValueError(f"date_unit must be one of {DATE_UNITS}, got {date_unit!r}")
    return date_unit


def dated_ratings(timestamps, unit: str, n: int) -> tuple[tuple[int, int], Features]:
    """The training span (first, last ``unit`` period) of ``n`` ratings' ``timestamps``
    (seconds since 1970) and their date rows on it (:func:`~mfrec.data.date_features`)."""
    period = date_periods(timestamps, unit)
    if period.shape != (n,):
        raise ValueError(f"timestamps: expected one per rating ({n}), got {period.shape}")
    span = (int(period.min()), int(period.max()))
    return span, date_features(period, *span, unit)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when numba sees a CUDA device (mfrec.devices), else ``cpu``."""
    from mfrec import devices

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not devices.numba_cuda():
        raise ValueError("device 'cuda': numba sees no CUDA device (try --device auto or cpu)")
    return devices.auto("numba") if device == "auto" else device


def sgd_member(epochs: int, reg: float, seed: int, n_threads: int, device: str):
    """Biased SGD MF for the default: blocked kernel on ``n_threads`` cores, or numba.cuda."""
    kw: dict[str, Any] = dict(
        n_factors=100, n_epochs=epochs, lr=0.005, reg=reg, biased=True, seed=seed
    )
    if device == "cuda":
        from mfrec.reference.cuda import CudaMatrixFactorization

        return CudaMatrixFactorization(**kw, dtype="float32")
    return MatrixFactorization(**kw, kernel="blocked", n_threads=n_threads)


class Budget:
    """Time-to-accuracy budget of a large fit's members, judged on its validation split.

    Time is this process's CPU time (all its threads; a loaded machine stretches the wall
    clock, not the budget). The members fit one after another, member j under
    ``shares[j] / sum(shares[j:])`` of the ``seconds`` left when it starts, each watched on
    the validation pairs ``val`` = (users, items, ratings): after every kept sample of a
    chain (the running average of its samples so far) or epoch of SGD, the RMSE of the best
    w ≥ 0, Σw = 1 blend (:func:`~mfrec.reference.ensemble.simplex_weights`) of the earlier
    members' last validation predictions and this member's current ones. :meth:`step` says
    stop once the member's time is up or that RMSE improved by less than
    :data:`MIN_GAIN_RATE` per second per million of the ``n_ratings`` over its last
    :data:`GAIN_WINDOW` steps: the member would not earn its time (one that never gained
    gets weight 0 and is dropped). Once a member stopped so without improving the blend of
    the members before it by :data:`MIN_GAIN`, a later member of its kind (a chain, SGD) is
    not trained: it stops at its first step (``skip``). ``log_``: per member (label, steps,
    CPU seconds, blend RMSE, why it ended: ``done``, ``gain``, ``time`` or ``skip``).
    """

    def __init__(self, val: tuple, n_ratings: int, seconds: float, shares: list[float]) -> None:
        self.vu, self.vi = (np.asarray(a, dtype=np.int64) for a in val[:2])
        self.vr = np.asarray(val[2], dtype=np.float64)
        self.lo, self.hi = float(self.vr.min()), float(self.vr.max())
        self.n_ratings, self.seconds, self.shares = n_ratings, float(seconds), list(shares)
        self.preds: list[np.ndarray] = []  # finished members' last validation predictions
        self.log_: list[tuple] = []
        self.ruled_out: set[str] = set()  # kinds of member (member_kind) not worth training
        self._j, self._pred, self._skip, self._t0 = -1, None, False, time.process_time()
        self._last = self._t0

    def _begin(self, j: int, m) -> None:
        """Member j's first step: close the member before it, set j's deadline."""
        if self._pred is not None:  # the member before ended without a stop
            self._close("done")
        left = max(self.seconds - (self._last - self._t0), 0.0)
        self._deadline = self._last + left * self.shares[j] / sum(self.shares[j:])
        self._j, self._m, self._start = j, m, self._last
        self._curve: list[tuple[float, float]] = []
        self._sum, self._n = np.zeros(self.vr.shape[0]), 0
        self._pred = None

    def _close(self, why: str) -> None:
        """Record the current member's last predictions and its line in ``log_``."""
        if self._pred is not None:
            self.preds.append(self._pred)
        blend = self._curve[-1][1] if self._curve else float("nan")
        before = self.log_[-1][3] if self.log_ else np.inf
        if why == "gain" and not blend < before - MIN_GAIN:
            self.ruled_out.add(member_kind(self._m))
        self.log_.append((member_label(self._m), len(self._curve),
                          self._last - self._start, blend, why))  # fmt: skip
        self._pred = None

    def finish(self) -> None:
        """After the last member: its line in ``log_`` (unless a stop already wrote it)."""
        if self._pred is not None:
            self._close("done")

    def step(self, j: int, step: int, m) -> bool:
        """After member j's ``step`` (a sweep or an epoch): True when it should stop."""
        now = time.process_time()
        if j != self._j:
            self._begin(j, m)  # from the previous member's last step (or the budget's start)
            self._skip = member_kind(m) in self.ruled_out
            if self._skip:
                self._last = now
                self._close("skip")
        if self._skip:  # (a chain goes on through its burn-in: it cannot stop there)
            return True
        self._last = now
        if isinstance(m, BayesianMF):
            if step < m.burn_in or (step - m.burn_in) % m.thin:
                return False  # not a kept sample: the chain's average is unchanged
            P, Q, bu, bi = m._current  # this sample: μ + bᵤ + bᵢ + Pᵤ·Qᵢ
            self._sum += m.mu + bu[self.vu] + bi[self.vi]
            self._sum += np.einsum("nk,nk->n", P[self.vu], Q[self.vi])
            self._n += 1
            pred = np.clip(self._sum / self._n, self.lo, self.hi)
        else:
            pred = np.asarray(m.predict(self.vu, self.vi), dtype=np.float64)
        self._pred = pred
        X = np.column_stack([*self.preds, pred])
        w = simplex_weights(X, self.vr)
        self._curve.append((now, rmse(self.vr, np.clip(X @ w, self.lo, self.hi))))
        why = "time" if now >= self._deadline else None
        if why is None and len(self._curve) > GAIN_WINDOW:
            (t_a, b_a), (t_b, b_b) = self._curve[-1 - GAIN_WINDOW], self._curve[-1]
            rate = (b_a - b_b) / max(t_b - t_a, 1e-9) * self.n_ratings / 1e6
            why = "gain" if rate < MIN_GAIN_RATE else None
        if why is not None:
            self._close(why)
        return why is not None


def member_kind(m) -> str:
    """``chain`` for a Gibbs-sampled member, else ``sgd`` (the keys of :data:`BUDGET_SHARES`)."""
    return "chain" if isinstance(m, BayesianMF) else "sgd"


def member_share(m) -> float:
    """A member's claim on the time left (:data:`BUDGET_SHARES`)."""
    return BUDGET_SHARES[member_kind(m)]


class FeatureFM(BayesianFM):
    """:class:`BayesianFM` that fits on the side information it was built with (a blend's
    ``fit`` passes only ids and ratings): ids, ``user_features``, ``item_features`` and the
    implicit feedback N(u) of the ratings it is fitted on (``implicit``; ``item_implicit``:
    also R(i)).

    ``rating_dates`` = (users, items, dates): the ratings the blend is fitted on and their date
    rows (:func:`~mfrec.data.date_features`, one entry each); ``fit`` and ``predict`` find a
    rating's row by its (user, item) pair, so the blend's validation split and refit pass only
    ids. A pair not in the table (an unknown id) is dated as the latest period.

    ``n_chains`` > 1 runs that many independent chains (seeds ``seed``, ``seed`` + 1, ...; on
    up to ``n_threads`` threads, the sampler's kernels release the GIL) and averages them:
    P and Q side by side over √C, the biases and the date part's w averaged, so the result
    is again one FM's form. It does not depend on ``n_threads``.
    """

    def __init__(
        self,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        implicit: bool = True,
        item_implicit: bool = False,
        rating_dates: tuple[np.ndarray, np.ndarray, Features] | None = None,
        n_chains: int = 1,
        n_threads: int = 1,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.n_chains = check_positive("n_chains", n_chains, integer=True)
        self.n_threads = check_positive("n_threads", n_threads, integer=True)
        self._chain_kw = kw
        self.user_features, self.item_features = user_features, item_features
        self.implicit, self.item_implicit = bool(implicit), bool(item_implicit)
        self.set_rating_dates(rating_dates)

    def set_rating_dates(self, rating_dates: tuple[np.ndarray, np.ndarray, Features] | None):
        """Set ``rating_dates`` (see the class doc) and index its pairs for :meth:`dates_of`."""
        self.rating_dates = rating_dates
        if rating_dates is not None:
            u, i, dates = rating_dates
            self._width = int(np.max(i, initial=0)) + 1  # pair key u·width + i
            keys = np.asarray(u, dtype=np.int64) * self._width + np.asarray(i, dtype=np.int64)
            order = np.argsort(keys, kind="stable")
            self._keys, self._periods = keys[order], dates.indices[order]

    def dates_of(self, users, items) -> Features | None:
        """The date rows of the pairs (0-based indices), from ``rating_dates`` (None without)."""
        if self.rating_dates is None:
            return None
        dates = self.rating_dates[2]
        u, i = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        valid = (u >= 0) & (i >= 0) & (i < self._width)
        key = np.where(valid, u * self._width + i, -1)
        pos = np.minimum(np.searchsorted(self._keys, key), max(self._keys.shape[0] - 1, 0))
        found = valid & (self._keys[pos] == key)
        index = np.where(found, self._periods[pos], dates.n_features - 1)
        indptr = np.arange(u.shape[0] + 1, dtype=np.int64)
        return Features(indptr, index.astype(np.int64), dates.names, dates.kinds)

    def fit(self, users, items, ratings, n_users=None, n_items=None, callback=None, **kw):
        """:meth:`BayesianFM.fit` with the features given at construction (``kw`` overrides)."""
        given: dict[str, Any] = dict(user_features=self.user_features,
                                     item_features=self.item_features,
                                     implicit=self.implicit, item_implicit=self.item_implicit,
                                     rating_features=self.dates_of(users, items))  # fmt: skip
        if self.n_chains == 1:
            return super().fit(users, items, ratings, n_users, n_items, callback, **(given | kw))
        chains = [self.chain(c) for c in range(self.n_chains)]
        tick = None if callback is None else self._every_round(callback)

        def run(chain: FeatureFM) -> FeatureFM:
            return chain.fit(users, items, ratings, n_users, n_items, tick, **kw)

        with ThreadPoolExecutor(min(self.n_chains, self.n_threads)) as pool:
            return self._merge(list(pool.map(run, chains)))

    def chain(self, c: int) -> FeatureFM:
        """Chain ``c`` of this FM: a one-chain FeatureFM with seed ``seed`` + c."""
        return FeatureFM(user_features=self.user_features, item_features=self.item_features,
                         implicit=self.implicit, item_implicit=self.item_implicit,
                         rating_dates=self.rating_dates,
                         **(self._chain_kw | {"seed": self.seed + c}))  # fmt: skip

    def _every_round(self, callback: Callable) -> Callable:
        """A chain callback that calls ``callback(sweep, chain)`` once all the chains together
        have run C more sweeps (so a progress bar sees burn_in + n_samples steps), with the
        chain that completed the round: this FM is fitted only once every chain is, so a
        progress report scores that chain's running average."""
        lock, done = threading.Lock(), [0]

        def tick(sweep: int, chain: FeatureFM) -> None:
            with lock:
                done[0] += 1
                if done[0] % self.n_chains == 0:
                    callback(done[0] // self.n_chains - 1, chain)

        return tick

    def _merge(self, chains: list[FeatureFM]) -> FeatureFM:
        """This FM as the average of the fitted ``chains``: chain 0's fitted state, P and Q
        of all side by side over √C, bu, bi (and the date part's w) averaged, V_date side by
        side over √C (each chain's columns beside its own P's, so the products average)."""
        own = ("n_chains", "n_threads", "_chain_kw")
        self.__dict__.update({k: v for k, v in vars(chains[0]).items() if k not in own})
        C = len(chains)
        for name in ("P", "Q"):
            stacked = np.hstack([getattr(m, name) for m in chains])
            setattr(self, name, stacked * stacked.dtype.type(1.0 / np.sqrt(C)))
        for name in ("bu", "bi"):
            mean = np.mean([getattr(m, name).astype(np.float64) for m in chains], axis=0)
            setattr(self, name, mean.astype(getattr(chains[0], name).dtype))
        if not self.factor_form:
            self.w_rating_ = np.mean([m.w_rating_ for m in chains], axis=0)
            self.V_rating_ = np.hstack([m.V_rating_ for m in chains]) / np.sqrt(C)
        return self

    def predict(self, users, items, rating_features: Features | None = None) -> np.ndarray:
        """:meth:`BayesianFM.predict`; with ``rating_dates``, the pairs' dates by default."""
        if rating_features is None:
            rating_features = self.dates_of(users, items)
        return super().predict(users, items, rating_features)

    @contextmanager
    def factor_part(self) -> Iterator[None]:
        """Meanwhile ``raw_predict`` is the factor part only (μ + bᵤ + bᵢ + Pᵤ·Qᵢ), for a
        blend that stacks it and adds the date part itself."""
        form = self.factor_form
        self.factor_form = True
        try:
            yield
        finally:
            self.factor_form = form


class DefaultModel(BlendedEnsemble):
    """What ``mfrec train`` trains with no model flags; members follow :func:`plan` at fit.

    ``n_threads=None`` uses every core; ``device`` is ``auto``, ``cpu`` or ``cuda`` (SGD
    members only; ``device_`` says which one ran). ``user_features``/``item_features``
    (aligned to the index space of the fit) put a :class:`FeatureFM` member in the Bayesian
    MF chains' place; so do the ratings' dates, when ``fit`` is given ``timestamps`` and
    ``dates`` is on (one feature per ``date_unit`` period, a block of the ratings).

    With dates the blend is a factor model plus a date part: r̂ = μ + bᵤ + bᵢ + Pᵤ·Qᵢ (every
    member's factors stacked as always, the FM's included) + w_FM·(w_d + V_d·(Pᵤᶠᵐ + Qᵢᶠᵐ)) for
    the rating's period d (the FM's rating block, one-hot, so its pairwise term within the block
    vanishes). :meth:`predict` takes each pair's ``timestamps``; without them, and for
    ``recommend``, the fold-in and ``score_all``, the date part is that of the latest training
    period (:meth:`as_of_latest`); ``similar_items`` compares Q as always. A date outside the
    training span counts as its nearest end. Saving writes a state record with the date part.
    """

    def __init__(
        self,
        seed: int = 0,
        n_threads: int | None = None,
        device: str = "cpu",
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        dates: bool = True,
        date_unit: str = DATE_UNIT,
    ) -> None:
        self.n_threads = n_threads or usable_cores()
        self.device = resolve_device(device)
        self.device_ = self.device
        self.user_features, self.item_features = user_features, item_features
        self.dates, self.date_unit = bool(dates), check_date_unit(date_unit)
        super().__init__([None], seed=seed)
        self.members = []

    takes_timestamps = True
    """``fit`` and ``predict`` take ``timestamps=`` (see the class doc)."""

    @property
    def dated(self) -> bool:
        """Whether the fitted blend has a date part (see the class doc)."""
        return not self.factor_form

    @property
    def saves_state(self) -> bool:
        """A model file holds a state record only for a blend with a date part; without one
        the blend is its factors, saved as every factor model is."""
        return self.dated

    def leaves_out_fm(self, n_ratings: int, has_dates: bool) -> bool:
        """Whether the dates this model would use go unused at ``n_ratings`` training ratings
        (from :data:`FM_MAX_RATINGS` on, :func:`plan` has no date block)."""
        return not plan(n_ratings)["fm_dates"] and self.dates and has_dates

    def members_for(self, n_ratings: int, rating_dates: tuple | None = None) -> list:
        """Fresh members for ``n_ratings`` training ratings, as :func:`plan` says
        (``rating_dates``: see :class:`FeatureFM`)."""
        p = plan(n_ratings)
        sgd = [
            sgd_member(p["sgd_epochs"], reg, self.seed, self.n_threads, self.device)
            for reg in SGD_REGS
        ]
        features = self.user_features is not None or self.item_features is not None
        chain: dict[str, Any] = dict(n_samples=p["n_samples"], burn_in=p["burn_in"],
                                     thin=p["thin"], seed=self.seed, dtype="float32")  # fmt: skip
        fm = []
        if features or (p["fm_dates"] and rating_dates is not None):
            fm = [FeatureFM(
                user_features=self.user_features, item_features=self.item_features,
                implicit=p["fm_implicit"], item_implicit=p["fm_implicit"],
                rating_dates=rating_dates if p["fm_dates"] else None, n_factors=FM_FACTORS,
                n_chains=p["fm_chains"], n_threads=self.n_threads,
                **(chain | dict(n_samples=p["fm_samples"], thin=p["fm_thin"])),
            )]  # fmt: skip
            if p["budget_s"] is None:
                return [*sgd, *fm]
        bayes = [BayesianMF(n_factors=k, ard=True, **chain) for k in p["bayes_factors"]]
        if p["budget_s"] is not None:  # the chains first: SGD is judged beside them
            return bayes + fm + sgd
        return sgd + bayes

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        callback: Callable | None = None,
        *,
        timestamps=None,
    ) -> DefaultModel:
        """Choose members and validation by the training size, then :meth:`BlendedEnsemble.fit`.

        ``timestamps`` (seconds since 1970, one per rating) date the ratings when ``dates``
        is on; ``date_span_`` is then the first and last training period."""
        n = int(np.asarray(ratings).shape[0])
        p = plan(n)
        self.plan_ = p
        for name in DATE_STATE:  # a refit must not keep the last fit's date part
            self.__dict__.pop(name, None)
        rating_dates = None
        if self.dates and timestamps is not None and p["fm_dates"]:
            self.date_span_, dates = dated_ratings(timestamps, self.date_unit, n)
            rating_dates = (np.asarray(users), np.asarray(items), dates)
        self.members = self.members_for(n, rating_dates)
        self.val_fraction, self.refit = p["val_fraction"], p["refit"]
        fm = any(isinstance(m, FeatureFM) for m in self.members)
        self.min_gain_se = MIN_GAIN_SE if fm else None
        super().fit(users, items, ratings, n_users, n_items, callback)
        return self

    def _fit_indices(self, u, i, r, n_users: int, n_items: int, callback=None):
        """:meth:`BlendedEnsemble._fit_indices`; from :data:`SMALL` on under a :class:`Budget`
        (``budget_``) on the same validation split, which stops each member when it would not
        earn its time."""
        seconds = self.plan_["budget_s"]
        if seconds is None:
            return super()._fit_indices(u, i, r, n_users, n_items, callback)
        u, i, r = check_ratings(u, i, r, np.float64)
        val = carve_validation(u, i, r, self.val_fraction, (self.seed, 7)).val  # the blend's
        budget = Budget(val, r.shape[0], seconds, [member_share(m) for m in self.members])
        self.budget_ = budget

        def relay(j: int, step: int, m) -> bool:
            if callback is not None:
                callback(j, step, m)
            return budget.step(j, step, m)

        super()._fit_indices(u, i, r, n_users, n_items, relay)
        budget.finish()
        return self

    def _combine(self, u: np.ndarray, i: np.ndarray, r: np.ndarray, dtype=np.float64):
        """:meth:`Ensemble._combine` of the factor parts, then the dated FM's date part scaled
        by its weight: w_d·w_FM, and V_d·√w_FM beside the FM's √w_FM-scaled factor columns."""
        j = next((j for j, m in enumerate(self.members) if isinstance(m, FeatureFM)
                  and m.rating_dates is not None), None)  # fmt: skip
        if j is None:
            return super()._combine(u, i, r, dtype)
        fm, w = self.members[j], float(self.weights[j])
        with fm.factor_part():
            super()._combine(u, i, r, dtype)
        start = sum(m.P.shape[1] for m in self.members[:j])
        self.date_cols_ = (start, start + fm.P.shape[1])
        self.w_date_ = w * fm.w_rating_
        self.V_date_ = (np.sqrt(w) * fm.V_rating_).astype(dtype)
        self.factor_form = False
        return self

    def date_index(self, timestamps) -> np.ndarray:
        """Each timestamp's period as an index into ``w_date_`` (clipped to the span)."""
        first, last = self.date_span_
        return np.clip(date_periods(timestamps, self.date_unit) - first, 0, last - first)

    @contextmanager
    def _dated(self, timestamps) -> Iterator[None]:
        """Meanwhile ``raw_predict`` dates the queried pairs by ``timestamps``."""
        self._query = None if timestamps is None or not self.dated else self.date_index(timestamps)
        try:
            yield
        finally:
            self._query = None

    def predict(self, users, items, timestamps=None):
        """:meth:`FactorModel.predict`, plus with a date part each pair's, from ``timestamps``
        (one per pair; None: the latest training period). Ignored by a blend without dates."""
        with self._dated(timestamps):
            return super().predict(users, items)

    def _predict_indices(self, users, items, timestamps=None) -> np.ndarray:
        """``predict`` on index arrays, ``timestamps`` as there (the CLI scores this way)."""
        if timestamps is None:  # within predict: its timestamps, if any, are set
            return super()._predict_indices(users, items)
        with self._dated(timestamps):
            return super()._predict_indices(users, items)

    def raw_predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """μ + bᵤ + bᵢ + Pᵤ·Qᵢ plus, with a date part, w_d + V_d·(Pᵤᶠᵐ + Qᵢᶠᵐ) (see the class
        doc), d the queried pairs' periods or the latest."""
        out = super().raw_predict(u, i)
        if not self.dated:
            return out
        d = getattr(self, "_query", None)
        if d is None:
            d = np.full(u.shape[0], self.date_span_[1] - self.date_span_[0])
        if d.shape != u.shape:
            raise ValueError(f"timestamps: expected one per pair ({u.shape[0]}), got {d.shape}")
        a, b = self.date_cols_
        for s in range(0, u.shape[0], DATE_CHUNK):
            c = slice(s, s + DATE_CHUNK)
            PQ = self.P[u[c], a:b].astype(np.float64) + self.Q[i[c], a:b]
            out[c] += self.w_date_[d[c]] + np.einsum("nk,nk->n", self.V_date_[d[c]], PQ)
        return out

    def as_of_latest(self) -> FactorModel:
        """This blend as of its latest training period, as one factor model: μ + w_d, bᵤ +
        Pᵤᶠᵐ·V_d and bᵢ + Qᵢᶠᵐ·V_d absorb the date part (d the latest period). ``recommend``,
        ``score_all`` and the fold-in score with it; without dates it is the blend itself."""
        if not self.dated:
            return self
        latest = self.__dict__.get("_as_of_latest")
        if latest is None:
            d = self.date_span_[1] - self.date_span_[0]
            (a, b), v = self.date_cols_, self.V_date_[d].astype(np.float64)
            latest = FactorModel()
            latest.__dict__.update({k: x for k, x in vars(self).items() if k != "_as_of_latest"})
            latest.mu = self.mu + float(self.w_date_[d])
            latest.bu = (self.bu + self.P[:, a:b] @ v).astype(self.bu.dtype)
            latest.bi = (self.bi + self.Q[:, a:b] @ v).astype(self.bi.dtype)
            latest.factor_form = True
            self._as_of_latest = latest
        return latest

    def _score_rows(self, u: np.ndarray) -> np.ndarray:
        """FactorModel's scores as of the latest training period (:meth:`as_of_latest`)."""
        model = self.as_of_latest()
        return super()._score_rows(u) if model is self else model._score_rows(u)

    def recommend_new_user(self, items, ratings, k: int = 10):
        """FactorModel's fold-in, as of the latest training period (:meth:`as_of_latest`)."""
        model = self.as_of_latest()
        return super().recommend_new_user(items, ratings, k) if model is self else (
            model.recommend_new_user(items, ratings, k)
        )  # fmt: skip

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """A model file's state (a blend with a date part; see :mod:`mfrec.modelstate`): the
        date unit and span, the FM's columns and the date part's w and V."""
        params = {"date_unit": self.date_unit, "date_span": list(self.date_span_),
                  "date_cols": list(self.date_cols_), "seed": self.seed}  # fmt: skip
        return params, {"w_date": self.w_date_, "V_date": self.V_date_}

    @classmethod
    def from_state(cls, base: FactorModel, params: dict, arrays: dict) -> DefaultModel:
        """The fitted blend from a model file's validated factor part ``base`` and its state."""
        model = cls(seed=int(params["seed"]), n_threads=1, date_unit=params["date_unit"])
        model.__dict__.update(vars(base))
        first, last = (int(x) for x in params["date_span"])
        a, b = (int(x) for x in params["date_cols"])
        w, V = np.asarray(arrays["w_date"], np.float64), np.asarray(arrays["V_date"])
        fits = first <= last and 0 <= a < b <= model.P.shape[1]
        if not (fits and w.shape == (last - first + 1,) and V.shape == (w.shape[0], b - a)):
            raise ValueError(
                f"date part of shapes {w.shape}, {V.shape} does not fit the span {first}..{last} "
                f"and columns {a}..{b} of P {model.P.shape}"
            )
        model.date_span_, model.date_cols_ = (first, last), (a, b)
        model.w_date_, model.V_date_ = w, V
        model.factor_form = False
        return model


def describe() -> str:
    """One line for ``--help`` and the accuracy table."""
    return (
        "validated blend: SGD k=100 (reg 0.05, 0.1, early-stopped) + Bayesian MF k=10 "
        "(+ k=20 under 1M ratings; from 1M on budgeted by time, + a feature FM given features), "
        "least-squares weights on a held-out split; sized by data"
    )
