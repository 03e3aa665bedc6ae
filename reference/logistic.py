"""The liked-or-not task in the reference: r̂ = σ(μ + bᵤ + bᵢ + Pᵤ·Qᵢ) by per-sample SGD on the
log loss (docs/derivation.md §13). Labels y ∈ {0, 1} come from :func:`mfrec.data.binarize`."""

from __future__ import annotations

import math

import numpy as np

from mfrec._internal import njit
from mfrec.modelstate import ctor_params
from mfrec.reference.kernels import _bias_step, _dot, _factor_step
from mfrec.reference.mf import EpochFunction, FactorModel, SGDModel, extends
from mfrec.reference.sampling import epoch_order


@njit
def _logistic_epoch(users, items, labels, order, P, Q, bu, bi, mu, lr, reg, biased):
    """One epoch of SGD on the log loss, in place; returns the sum of the pre-update losses.

    For each sampled labelled pair (u, i, y), in ``order``::

        z = Pᵤ·Qᵢ                      (+ μ + bᵤ + bᵢ when ``biased``)
        e = y − σ(z)                   (takes the place of r − r̂ in the squared-error rule)

    then the bias and factor steps of the squared-error rule with this e (the inlined pieces of
    :mod:`mfrec.reference.kernels`): one simultaneous gradient step on
    −[y·log σ(z) + (1 − y)·log(1 − σ(z))] + ½·reg·(‖Pᵤ‖² + ‖Qᵢ‖² + bᵤ² + bᵢ²), since ∂/∂z of the
    log loss is σ(z) − y = −e.
    The returned sum is of the log losses log(1 + e^z) − y·z before each step.
    """
    # duplicates: kernels._sgd_epoch's loop head and Pᵤ·Qᵢ; then σ(z) and the log loss, not r − r̂
    total = 0.0
    for n in range(order.shape[0]):
        j = order[n]
        u = users[j]
        i = items[j]
        z = _dot(P[u], Q[i], 0.0)
        if biased:
            z += mu + bu[u] + bi[i]
        if z >= 0.0:
            prob = 1.0 / (1.0 + math.exp(-z))
        else:
            ez = math.exp(z)
            prob = ez / (1.0 + ez)
        y = labels[j]
        total += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y * z
        err = y - prob
        if biased:
            _bias_step(bu, bi, u, i, err, lr, reg)
        _factor_step(P[u], Q[i], err, lr, reg)
    return total


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1/(1 + e^−z), elementwise, without overflow for large |z|."""
    z = np.asarray(z, dtype=np.float64)
    ez = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + ez), ez / (1.0 + ez))


def logit(p: float) -> float:
    """log(p / (1 − p)): the score whose σ is ``p``."""
    return float(math.log(p / (1.0 - p)))


def check_labels(labels: np.ndarray) -> float:
    """The share of 1s in ``labels``; ``ValueError`` unless they are 0/1 with both present."""
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise ValueError(
            f"binary labels must be 0 or 1, found {float(labels[bad[0]])!r} at position "
            f"{int(bad[0])}; make them with mfrec.data.binarize(ratings, threshold)"
        )
    share = float(np.mean(labels))
    if share in (0.0, 1.0):
        raise ValueError(f"binary labels are all {int(share)}: a classifier needs both classes")
    return share


class BinaryOutput:
    """The liked-or-not output of a factor-style model: probabilities σ(score).

    Mixed into a :class:`FactorModel` whose raw scores are logits: ``predict`` returns σ of
    :meth:`FactorModel.predict` (unknown pairs: σ(logit ȳ + the known biases), never clipped),
    ``recommend`` ranks by the logit, which orders items as the probability does (σ is
    increasing) without σ's rounding to 1.0 tying the best ones.
    """

    supports_binary = True
    task = "binary"
    """What ``predict`` returns: P(liked) (the networks say ``"rating"`` or ``"binary"``)."""

    def clip(self, r_hat: np.ndarray) -> np.ndarray:
        """The output scale of a binary model: P(liked) = σ(z) of the unclipped score z, so
        ``predict`` and the scores of ``recommend`` are probabilities (see the class doc for
        unknowns)."""
        return sigmoid(r_hat)

    def _remember_scale(self, labels: np.ndarray) -> None:
        """The fallback logit (of the training share of 1s); probabilities are not clipped."""
        remember_label_scale(self, labels)


def remember_label_scale(model, labels: np.ndarray) -> None:
    """Set ``model``'s fallback to the logit of the training share of 1s and clear its rating
    scale (probabilities are not clipped): :meth:`BinaryOutput._remember_scale`'s body, for
    models whose task is chosen per instance."""
    model.r_mean_ = logit(check_labels(labels))
    model.r_min = model.r_max = None


class LogisticMF(BinaryOutput, SGDModel):
    """Liked-or-not matrix factorisation, P(y = 1) = σ(μ + bᵤ + bᵢ + Pᵤ·Qᵢ), by the Numba
    kernel :func:`_logistic_epoch` (one SGD step of the log loss per labelled pair).

    ``fit(users, items, labels)`` takes 0/1 labels; μ = logit(ȳ) of the training labels
    (fixed, as the rating model's mean is), bᵤ, bᵢ start at 0 (``biased=False``: σ(Pᵤ·Qᵢ), the
    book's form). ``history_`` holds each epoch's mean log loss; ``eval_set`` early-stops on the
    validation RMSE of the probabilities (√Brier score). Everything else is
    :class:`mfrec.reference.mf.SGDModel`'s.
    """

    factor_form = False
    refuses = {
        "fold-in": "folding in a new user solves the squared-error ridge problem, and this "
        "model's loss is the log loss",
    }

    @extends(SGDModel, biased=True)
    def __init__(self, **params) -> None:
        super().__init__(**params)

    def describe(self) -> str:
        kind = "biased logistic MF" if self.biased else "logistic MF (no biases)"
        return f"{kind}: k={self.n_factors}, lr {self.lr}, reg {self.reg}; {self._runs_on()}"

    def _runs_on(self) -> str:
        return "numba kernel _logistic_epoch"

    def _start(self, u, i, y, P, Q, mu, rng):
        """Check the labels, take μ = logit(ȳ) (biased) and return the kernel's epochs."""
        mu = logit(check_labels(y)) if self.biased else 0.0
        self.P, self.Q, self.mu = P, Q, mu
        self.bu = np.zeros(P.shape[0], dtype=self.dtype)
        self.bi = np.zeros(Q.shape[0], dtype=self.dtype)
        mu_t, reg = self.dtype(mu), self.dtype(self.reg)

        def run_epoch(lr: float) -> float:
            order = epoch_order(rng, y.shape[0], self.shuffle)
            lr_t = self.dtype(lr)
            return _logistic_epoch(
                u, i, y, order, P, Q, self.bu, self.bi, mu_t, lr_t, reg, self.biased
            )

        return EpochFunction(run_epoch), 0

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """A model file's state: the constructor's arguments and the fallback logit (the
        arrays are P, Q, bu, bi, which every model file holds)."""
        return {"ctor": ctor_params(self, LogisticMF), "r_mean_": self.r_mean_}, {}

    @classmethod
    def from_state(cls, base: FactorModel, params: dict, arrays: dict) -> LogisticMF:
        """The fitted model from a model file's validated factor part ``base`` and its state."""
        model = LogisticMF(**params["ctor"])
        model.__dict__.update(vars(base))
        model.r_mean_ = float(params["r_mean_"])
        model.r_min = model.r_max = None
        return model
