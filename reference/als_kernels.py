"""Private ALS kernels: one ridge solve per row over CSR data, rows in parallel.

Each ``prange`` iteration reads the fixed other side (Y, by) and writes only its own row of X
and its own entry of bx, so the parallel loop has no data races and its result does not depend
on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mfrec._internal import njit, njit_parallel


@njit
def _cholesky(A):
    """A = L·Lᵀ for a symmetric positive definite A: L overwrites A's lower triangle."""
    d = A.shape[0]
    for j in range(d):
        s = A[j, j]
        for t in range(j):
            s -= A[j, t] * A[j, t]
        A[j, j] = np.sqrt(s)
        for a in range(j + 1, d):
            s = A[a, j]
            for t in range(j):
                s -= A[a, t] * A[j, t]
            A[a, j] = s / A[j, j]
    return A


@njit
def _solve_lower(L, b):
    """L·z = b by forward substitution; b is overwritten with z."""
    for a in range(L.shape[0]):
        s = b[a]
        for t in range(a):
            s -= L[a, t] * b[t]
        b[a] = s / L[a, a]
    return b


@njit
def _solve_upper(L, b):
    """Lᵀ·x = b by back substitution (L lower triangular); b is overwritten with x."""
    for a in range(L.shape[0] - 1, -1, -1):
        s = b[a]
        for t in range(a + 1, L.shape[0]):
            s -= L[t, a] * b[t]
        b[a] = s / L[a, a]
    return b


@njit_parallel
def _als_half_step(indptr, cols, vals, X, bx, Y, by, mu, reg, weighted, biased, noise):
    """Solve every row of X (and bx) in closed form with Y (and by) fixed, in place.

    Row a sees the ratings r_ab for b in cols[indptr[a]:indptr[a+1]] (n_a of them). With
    features y_b = [1, Y_b] and target t_ab = r_ab − μ − by_b when ``biased`` (else y_b = Y_b,
    t_ab = r_ab), the per-column penalties ``reg`` (shape (d,)) and Λ_a = diag(reg)·n_a when
    ``weighted`` (Spark's ALS) else diag(reg), the unknown x_a = [bx_a, X_a] minimises
    Σ_b (t_ab − y_b·x_a)² + x_aᵀ·Λ_a·x_a, i.e. solves::

        (Σ_b y_b·y_bᵀ + Λ_a) · x_a = Σ_b t_ab·y_b

    A row with no ratings gets x_a = 0 (the minimiser of the penalty alone).

    Gibbs sampling (``noise`` of shape (n, d), else (0, d)): with A = L·Lᵀ the system matrix,
    x_a += L⁻ᵀ·noise_a, which for noise_a ~ N(0, σ²I) draws x_a ~ N(A⁻¹·rhs, σ²·A⁻¹), the
    row's exact conditional posterior when σ² is the noise variance and reg = σ²/σ²_prior.
    """
    n = X.shape[0]
    k = X.shape[1]
    off = 1 if biased else 0
    d = k + off
    for a in prange(n):
        start = indptr[a]
        end = indptr[a + 1]
        if end == start and noise.shape[0] == 0:
            for f in range(k):
                X[a, f] = 0.0
            bx[a] = 0.0
            continue
        A = np.zeros((d, d))
        rhs = np.zeros(d)
        y = np.ones(d)
        for t in range(start, end):
            b = cols[t]
            target = vals[t]
            if biased:
                target -= mu + by[b]
            for f in range(k):
                y[off + f] = Y[b, f]
            for f in range(d):
                rhs[f] += target * y[f]
                for g in range(f + 1):
                    A[f, g] += y[f] * y[g]
        scale = (end - start) if weighted else 1
        for f in range(d):
            A[f, f] += reg[f] * scale
        _cholesky(A)
        _solve_upper(A, _solve_lower(A, rhs))
        if noise.shape[0]:
            z = noise[a].copy()
            _solve_upper(A, z)
            for f in range(d):
                rhs[f] += z[f]
        if biased:
            bx[a] = rhs[0]
        for f in range(k):
            X[a, f] = rhs[off + f]


@njit_parallel
def _csr_sse(indptr, cols, vals, X, bx, Y, by, mu, biased):
    """Σ (r_ab − r̂_ab)² over the CSR ratings, r̂_ab = X_a·Y_b (+ μ + bx_a + by_b), rows in
    parallel; no (n, k) temporaries (the NumPy form gathers X[rows], Y[cols] first)."""
    total = 0.0
    for a in prange(X.shape[0]):
        s = 0.0
        for t in range(indptr[a], indptr[a + 1]):
            b = cols[t]
            e = vals[t]
            if biased:
                e -= mu + bx[a] + by[b]
            for f in range(X.shape[1]):
                e -= X[a, f] * Y[b, f]
            s += e * e
        total += s
    return total
