"""Private kernels: pure functions over contiguous arrays, loops only, no validation.

The public wrappers in :mod:`mfrec.reference.mf` check dtypes, shapes and ranges first. The
pieces of one rating's step (:func:`_dot`, :func:`_biased_error_step`, :func:`_bias_step`,
:func:`_factor_step`) are written once here and inlined into every CPU kernel (exact, fast,
hogwild, blocked, logistic), so each kernel compiles them with its own math flags and dtypes.
They hold no branch: the kernels test ``biased`` themselves, since a branch on it inside an
inlined piece that touches bᵤ, bᵢ leaves reference counting of those arrays (NRT incref and
decref calls, visible in the kernel's ``inspect_llvm()``) on every rating.
"""

from __future__ import annotations

from mfrec._internal import njit, njit_inline


@njit_inline
def _dot(Pu, Qi, dot):
    """``dot`` + Σ_f Pᵤf·Qᵢf, summed in order onto ``dot`` (whose type is the sum's)."""
    for f in range(Pu.shape[0]):
        dot += Pu[f] * Qi[f]
    return dot


@njit_inline
def _bias_step(bu, bi, u, i, err, lr, reg):
    """bᵤ ← bᵤ + lr·(e − reg·bᵤ);  bᵢ ← bᵢ + lr·(e − reg·bᵢ), in place."""
    bu[u] += lr * (err - reg * bu[u])
    bi[i] += lr * (err - reg * bi[i])


@njit_inline
def _biased_error_step(r, dot, bu, bi, mu, u, i, lr, reg):
    """e = r − (μ + bᵤ + bᵢ + dot), then :func:`_bias_step` with it; returns e."""
    err = r - (mu + bu[u] + bi[i] + dot)
    _bias_step(bu, bi, u, i, err, lr, reg)
    return err


@njit_inline
def _factor_step(Pu, Qi, err, lr, reg):
    """Pᵤ ← Pᵤ + lr·(e·Qᵢ − reg·Pᵤ);  Qᵢ ← Qᵢ + lr·(e·Pᵤ − reg·Qᵢ) with the old Pᵤ, in place."""
    for f in range(Pu.shape[0]):
        p = Pu[f]
        q = Qi[f]
        Pu[f] = p + lr * (err * q - reg * p)
        Qi[f] = q + lr * (err * p - reg * q)


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
    sse = 0.0
    for n in range(order.shape[0]):
        j = order[n]
        u = users[j]
        i = items[j]
        dot = _dot(P[u], Q[i], 0.0)
        r = ratings[j]
        err = _biased_error_step(r, dot, bu, bi, mu, u, i, lr, reg) if biased else r - dot
        sse += err * err
        _factor_step(P[u], Q[i], err, lr, reg)
    return sse


@njit
def _predict(users, items, P, Q, bu, bi, mu, biased, out):
    """r̂ = Pᵤ·Qᵢ (+ μ + bᵤ + bᵢ) for each pair, written into ``out``."""
    for n in range(users.shape[0]):
        u = users[n]
        i = items[n]
        dot = _dot(P[u], Q[i], 0.0)
        if biased:
            dot += mu + bu[u] + bi[i]
        out[n] = dot
    return out
