"""The named model configurations that ``mfrec train --model``, ``mfrec cv`` and the accuracy
benchmark share. Every hyper-parameter here was chosen on a validation split carved from the
training part of a fold (never on a test fold); docs/accuracy.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Callable

from mfrec.job import DefaultModel, describe
from mfrec.reference import MatrixFactorization
from mfrec.reference.als import ALS
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.ensemble import Ensemble
from mfrec.reference.mf import FactorModel

SGD_DEFAULTS = {"factors": 100, "epochs": 80, "lr": 0.005, "reg": 0.1, "biased": True}
"""Biased SGD MF as tuned on validation (scikit-surprise's SVD rule, more factors and epochs)."""

BAYES_DEFAULTS = {"n_factors": 10, "n_samples": 200, "burn_in": 20, "thin": 4, "ard": True}
"""Gibbs-sampled Bayesian MF with a per-column prior precision (ARD); keeping every 4th of
the 200 samples stores 50·k columns at the same validation RMSE as keeping all of them."""

BAYES_WIDE = {**BAYES_DEFAULTS, "n_factors": 20}
"""The default ensemble's second chain: k=20 (a different k decorrelates the two chains)."""


def biased_sgd(seed: int = 0) -> MatrixFactorization:
    """Biased SGD MF with :data:`SGD_DEFAULTS`."""
    d = SGD_DEFAULTS
    return MatrixFactorization(
        n_factors=d["factors"], n_epochs=d["epochs"], lr=d["lr"], reg=d["reg"],
        biased=d["biased"], seed=seed,
    )  # fmt: skip


def neural(seed: int = 0):
    """The MLP model (imports torch only when asked for)."""
    from mfrec.torch_impl.neural import NeuralMF

    return NeuralMF(
        n_factors=32, n_epochs=30, lr=2e-3, reg=0.2, batch_size=1024, val_fraction=0.1, seed=seed
    )


CONFIGS: dict[str, tuple[str, Callable[[int], FactorModel]]] = {
    "plain": (
        "the slides' model: SGD, k=10, 20 epochs, lr 0.01, no biases, no L2",
        lambda seed: MatrixFactorization(seed=seed),
    ),
    "biased": ("biased SGD MF: k=100, 80 epochs, lr 0.005, reg 0.1", biased_sgd),
    "als": (
        "ALS, biased, weighted λ·n: k=50, 10 iterations, reg 0.1",
        lambda seed: ALS(n_factors=50, n_iters=10, reg=0.1, weighted=True, biased=True, seed=seed),
    ),
    "bayes": (
        "Gibbs-sampled Bayesian MF (ARD): k=10, 200 sweeps after 20 burn-in, every 4th kept",
        lambda seed: BayesianMF(**BAYES_DEFAULTS, seed=seed),
    ),
    "neural": (
        "MLP on [Pᵤ, Qᵢ, Pᵤ·Qᵢ] + biases: k=32, Adam 2e-3, reg 0.2, early-stopped on a 10% split",
        neural,
    ),
    "equal": (
        "equal-weight average of 'biased', 'bayes' and 'bayes' with k=20 (the previous default)",
        lambda seed: Ensemble(
            [
                biased_sgd(seed),
                BayesianMF(**BAYES_DEFAULTS, seed=seed),
                BayesianMF(**BAYES_WIDE, seed=seed),
            ]
        ),
    ),
    "default": (describe(), lambda seed: DefaultModel(seed=seed)),
}


def build_model(name: str, seed: int = 0) -> FactorModel:
    """A fresh, unfitted model of the named configuration."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name][1](seed)
