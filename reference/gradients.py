"""The slides' loss and its gradients for one observed rating, written as the formulas read.

These are the readable statements the kernels and the torch model are checked against.
"""

from __future__ import annotations

import numpy as np


def slide_loss(Pu: np.ndarray, Qi: np.ndarray, r: float) -> float:
    """loss = (rᵤᵢ − r'ᵤᵢ)² with r'ᵤᵢ = Pᵤ·Qᵢ."""
    err = r - float(Pu @ Qi)
    return err * err


def slide_gradients(Pu: np.ndarray, Qi: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """(∂loss/∂Pᵤ, ∂loss/∂Qᵢ) = (−2(r − r')·Qᵢ, −2(r − r')·Pᵤ)."""
    err = r - float(Pu @ Qi)
    return -2.0 * err * Qi, -2.0 * err * Pu


def sgd_step(
    Pu: np.ndarray, Qi: np.ndarray, r: float, lr: float, reg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """One simultaneous step: Pᵤ + lr·(e·Qᵢ − reg·Pᵤ), Qᵢ + lr·(e·Pᵤ − reg·Qᵢ), e from old values.

    Without ``reg`` this is gradient descent on the slides' loss with step lr/2:
    ``Pᵤ − (lr/2)·∂loss/∂Pᵤ``; the factor 2 of the derivative is folded into the step.
    """
    err = r - float(Pu @ Qi)
    return Pu + lr * (err * Qi - reg * Pu), Qi + lr * (err * Pu - reg * Qi)
