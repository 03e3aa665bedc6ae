"""The NumPy/Numba reference: the single source of truth for mfrec's models."""

from mfrec.reference.metrics import mae, mse, rmse
from mfrec.reference.mf import DivergenceError, FactorModel, MatrixFactorization
from mfrec.reference.recommend import seen_items, top_k

__all__ = [
    "DivergenceError",
    "FactorModel",
    "MatrixFactorization",
    "mae",
    "mse",
    "rmse",
    "seen_items",
    "top_k",
]
