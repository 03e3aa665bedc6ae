"""Naive statements the package is checked against (tests and docs/derivation.py only).

The slides' loss and its gradients for one observed rating, written as the formulas read, and
the literal-sequential reading of the update rule, which the package does not use: the tests
measure how far it drifts from the gradient step. And one full epoch of the biased rule with L2
in plain Python loops, the yardstick of every kernel. Nothing in ``mfrec`` imports this module.
"""

from __future__ import annotations

import numba
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


@numba.njit(cache=False)
def sgd_epoch_literal(users, items, ratings, order, P, Q, lr, reg, predicted):
    """The literal-sequential reading of the slides (not the gradient step); returns Σ e².

    ``Pᵤ ← Pᵤ + lr·(e·Qᵢ − reg·Pᵤ)`` first, then ``Qᵢ ← Qᵢ + lr·(e·Pᵤ' − reg·Qᵢ)`` with the
    *already updated* Pᵤ'. With reg = 0 its Qᵢ exceeds the gradient step's by lr²·e²·Qᵢ;
    ``predicted`` (shaped like Q) accumulates that term per row, the first-order drift.
    """
    k = P.shape[1]
    sse = 0.0
    for n in range(order.shape[0]):
        j = order[n]
        u = users[j]
        i = items[j]
        dot = 0.0
        for f in range(k):
            dot += P[u, f] * Q[i, f]
        err = ratings[j] - dot
        sse += err * err
        for f in range(k):
            predicted[i, f] += lr * lr * err * err * Q[i, f]
        for f in range(k):
            P[u, f] += lr * (err * Q[i, f] - reg * P[u, f])
        for f in range(k):
            Q[i, f] += lr * (err * P[u, f] - reg * Q[i, f])
    return sse


def sgd_epoch_biased(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg) -> float:
    """One epoch of the biased rule with L2, in plain Python loops, in place; returns Σ e².

    For each rating j in ``order``, with every right-hand side from *before* the step::

        e  = r − (μ + bᵤ + bᵢ + Σ_f Pᵤf·Qᵢf)
        bᵤ = bᵤ + lr·(e − reg·bᵤ)             bᵢ = bᵢ + lr·(e − reg·bᵢ)
        Pᵤf = Pᵤf + lr·(e·Qᵢf − reg·Pᵤf)      Qᵢf = Qᵢf + lr·(e·Pᵤf − reg·Qᵢf)

    The package's kernels are checked against it (``tests/test_kernels_vs_naive.py``).
    """
    k = P.shape[1]
    sse = 0.0
    for j in order:
        u, i, r = int(users[j]), int(items[j]), float(ratings[j])
        Pu = [float(P[u, f]) for f in range(k)]  # the old rows
        Qi = [float(Q[i, f]) for f in range(k)]
        dot = 0.0
        for f in range(k):
            dot += Pu[f] * Qi[f]
        e = r - (mu + bu[u] + bi[i] + dot)
        sse += e * e
        bu[u] = bu[u] + lr * (e - reg * bu[u])
        bi[i] = bi[i] + lr * (e - reg * bi[i])
        for f in range(k):
            P[u, f] = Pu[f] + lr * (e * Qi[f] - reg * Pu[f])
            Q[i, f] = Qi[f] + lr * (e * Pu[f] - reg * Qi[f])
    return sse
