"""Error metrics exactly as the slides define them."""

from __future__ import annotations

import numpy as np


def _errors(ratings: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """rᵤᵢ − r̂ᵤᵢ in float64, for ratings and predictions of one shape, at least one."""
    r = np.asarray(ratings, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if r.shape != p.shape:
        raise ValueError(f"ratings has shape {r.shape} but predictions has shape {p.shape}")
    if r.size == 0:
        raise ValueError("cannot compute an error over zero ratings")
    return r - p


def mse(ratings: np.ndarray, predictions: np.ndarray) -> float:
    """MSE = (1/|T|)·Σ (rᵤᵢ − r̂ᵤᵢ)² over the test pairs T."""
    return float(np.mean(_errors(ratings, predictions) ** 2))


def rmse(ratings: np.ndarray, predictions: np.ndarray) -> float:
    """RMSE = √MSE."""
    return float(np.sqrt(mse(ratings, predictions)))


def mae(ratings: np.ndarray, predictions: np.ndarray) -> float:
    """MAE = (1/|T|)·Σ |rᵤᵢ − r̂ᵤᵢ|."""
    return float(np.mean(np.abs(_errors(ratings, predictions))))
