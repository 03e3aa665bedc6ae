"""The default model of ``mfrec train``: a validated blend whose members fit the data's size.

The rule (docs/accuracy.md explains it; :func:`plan` computes it from the training size n):

- Members: biased SGD MF (k=100, lr 0.005) once per L2 penalty in :data:`SGD_REGS`, each
  early-stopped on the validation split; Gibbs-sampled Bayesian MF with ARD, k=10; and below
  :data:`SMALL` ratings a second chain with k=20.
- Side information: given user or item features (:class:`~mfrec.data.Features`, aligned to the
  fit's index space), a Gibbs-sampled factorization machine (:class:`FeatureFM`, k=10) takes
  the Bayesian MF chains' place, with their sweeps: ids, the features and the implicit
  feedback of the ratings it is fitted on (each user's items N(u) and each item's raters
  R(i), both |·|^−½-weighted). With ids alone it is Bayesian MF: it subsumes them.
  Its average is a factor model, so the blend stays one, and it keeps only the weight the
  validation blend gives it. Without features the members are exactly those above.
- Validation: below :data:`SMALL` ratings 10% of the training ratings, and every kept member
  is refit on all of them (the held-out tenth matters there, and a refit costs seconds);
  from :data:`SMALL` on, 2% (at least 20,000 ratings at that size, 400,000 at ML-25M) and no
  refit, which halves the time and costs little since the members still see 98% of the data.
- Blend weights: least squares on the validation predictions, w ≥ 0, Σw = 1
  (:func:`mfrec.reference.ensemble.simplex_weights`); a weight under 1% drops the member.
  So the L2 penalty of SGD is chosen on validation too: the penalty the blend does not want
  gets weight 0.
- Work budget: the SGD members together run at most :data:`SGD_BUDGET` rating-epochs (capped
  at :data:`MAX_EPOCHS` each) and the Gibbs chain :data:`GIBBS_BUDGET` rating-sweeps (capped
  at 20 burn-in + 200), so both shrink as 1/n past a few million ratings and the time stays
  near-linear in n; every chain keeps at most :data:`MAX_KEPT` samples, so the saved model
  has at most 100·|SGD kept| + 10·MAX_KEPT (+ 20·MAX_KEPT) factor columns, stored as float32.
- Device: the SGD members run the blocked kernel on all cores (the Python API's default stays
  the exact single-threaded reference), or the numba.cuda kernel with ``device="cuda"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from mfrec.data.features import Features
from mfrec.reference import MatrixFactorization
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.bfm import BayesianFM
from mfrec.reference.ensemble import BlendedEnsemble

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
FM_FACTORS = 10
DEVICES = ("auto", "cpu", "cuda")


def plan(n_ratings: int) -> dict:
    """The default's settings for ``n_ratings`` training ratings (see the module doc)."""
    small = n_ratings < SMALL
    epochs = int(np.clip(SGD_BUDGET / len(SGD_REGS) / max(n_ratings, 1), MIN_EPOCHS, MAX_EPOCHS))
    sweeps = int(np.clip(GIBBS_BUDGET / max(n_ratings, 1), MIN_SWEEPS, MAX_SWEEPS))
    burn_in = min(20, sweeps // 5)
    samples = sweeps - burn_in
    return {
        "val_fraction": 0.1 if small else 0.02,
        "refit": small,
        "sgd_epochs": epochs,
        "burn_in": burn_in,
        "n_samples": samples,
        "thin": -(-samples // MAX_KEPT),
        "bayes_factors": (10, 20) if small else (10,),
    }


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


class FeatureFM(BayesianFM):
    """:class:`BayesianFM` that fits on the side information it was built with (a blend's
    ``fit`` passes only ids and ratings): ids, ``user_features``, ``item_features`` and the
    implicit feedback N(u) of the ratings it is fitted on (``item_implicit``: also R(i))."""

    def __init__(
        self,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        item_implicit: bool = False,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.user_features, self.item_features = user_features, item_features
        self.item_implicit = bool(item_implicit)

    def fit(self, users, items, ratings, n_users=None, n_items=None, callback=None, **kw):
        """:meth:`BayesianFM.fit` with the features given at construction (``kw`` overrides)."""
        given: dict[str, Any] = dict(user_features=self.user_features,
                                     item_features=self.item_features,
                                     item_implicit=self.item_implicit)  # fmt: skip
        return super().fit(users, items, ratings, n_users, n_items, callback, **(given | kw))


class DefaultModel(BlendedEnsemble):
    """What ``mfrec train`` trains with no model flags; members follow :func:`plan` at fit.

    ``n_threads=None`` uses every core; ``device`` is ``auto``, ``cpu`` or ``cuda`` (SGD
    members only; ``device_`` says which one ran). ``user_features``/``item_features``
    (aligned to the index space of the fit) put a :class:`FeatureFM` member in the Bayesian
    MF chains' place.
    """

    def __init__(
        self,
        seed: int = 0,
        n_threads: int | None = None,
        device: str = "cpu",
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
    ) -> None:
        self.n_threads = n_threads or usable_cores()
        self.device = resolve_device(device)
        self.device_ = self.device
        self.user_features, self.item_features = user_features, item_features
        super().__init__([None], seed=seed)
        self.members = []

    def members_for(self, n_ratings: int) -> list:
        """Fresh members for ``n_ratings`` training ratings, as :func:`plan` says."""
        p = plan(n_ratings)
        sgd = [
            sgd_member(p["sgd_epochs"], reg, self.seed, self.n_threads, self.device)
            for reg in SGD_REGS
        ]
        if self.user_features is not None or self.item_features is not None:
            fm = FeatureFM(
                user_features=self.user_features, item_features=self.item_features,
                item_implicit=True, n_factors=FM_FACTORS, n_samples=p["n_samples"],
                burn_in=p["burn_in"], thin=p["thin"], seed=self.seed, dtype="float32",
            )  # fmt: skip
            return [*sgd, fm]
        bayes = [
            BayesianMF(
                n_factors=k, n_samples=p["n_samples"], burn_in=p["burn_in"], thin=p["thin"],
                ard=True, seed=self.seed, dtype="float32",
            )
            for k in p["bayes_factors"]
        ]  # fmt: skip
        return sgd + bayes

    def fit(
        self,
        users,
        items,
        ratings,
        n_users: int | None = None,
        n_items: int | None = None,
        callback: Callable | None = None,
    ) -> DefaultModel:
        """Choose members and validation by the training size, then :meth:`BlendedEnsemble.fit`."""
        n = int(np.asarray(ratings).shape[0])
        p = plan(n)
        self.plan_ = p
        self.members = self.members_for(n)
        self.val_fraction, self.refit = p["val_fraction"], p["refit"]
        super().fit(users, items, ratings, n_users, n_items, callback)
        return self


def describe() -> str:
    """One line for ``--help`` and the accuracy table."""
    return (
        "validated blend: SGD k=100 (reg 0.05, 0.1, early-stopped) + Bayesian MF k=10 "
        "(+ k=20 under 1M ratings), least-squares weights on a held-out split; sized by data"
    )
