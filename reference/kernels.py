"""Private kernels: pure functions over contiguous arrays, loops only, no validation.

The public wrappers in :mod:`mfrec.reference.mf` check dtypes, shapes and ranges first.
"""

from __future__ import annotations

from mfrec._internal import njit


@njit
def _sgd_epoch(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, biased):
    """One epoch of the slides' SGD rule, in place; returns the sum of squared errors.

    For each sampled observed rating (u, i, r), in ``order``::

        r̂ = Pᵤ·Qᵢ                      (+ μ + bᵤ + bᵢ when ``biased``)
        e = r − r̂
        bᵤ ← bᵤ + lr·(e − reg·bᵤ)      (``biased`` only)
        bᵢ ← bᵢ + lr·(e − reg·bᵢ)      (``biased`` only)
        Pᵤ ← Pᵤ + lr·(e·Qᵢ − reg·Pᵤ)
        Qᵢ ← Qᵢ + lr·(e·Pᵤ − reg·Qᵢ)   with Pᵤ taken from *before* its update

    i.e. one simultaneous gradient step on ½e² + ½·reg·(‖Pᵤ‖² + ‖Qᵢ‖² + bᵤ² + bᵢ²).
    The returned sum is of the pre-update errors e² (the loss the epoch saw).
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
        if biased:
            err = ratings[j] - (mu + bu[u] + bi[i] + dot)
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
        else:
            err = ratings[j] - dot
        sse += err * err
        for f in range(k):
            p = P[u, f]
            q = Q[i, f]
            P[u, f] += lr * (err * q - reg * p)
            Q[i, f] += lr * (err * p - reg * q)
    return sse


@njit
def _predict(users, items, P, Q, bu, bi, mu, biased, out):
    """r̂ = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ) for each pair, written into ``out``."""
    k = P.shape[1]
    for n in range(users.shape[0]):
        u = users[n]
        i = items[n]
        dot = 0.0
        for f in range(k):
            dot += P[u, f] * Q[i, f]
        if biased:
            dot += mu + bu[u] + bi[i]
        out[n] = dot
    return out
