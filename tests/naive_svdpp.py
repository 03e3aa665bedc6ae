"""SVD++ written out plainly, for the tests and docs/derivation.py only (the package's rule is
``reference/svdpp.py::_svdpp_epoch``): one sample's loss and gradients, and an epoch in Python.

``params`` is a dict of arrays P, Q, bu, bi, Y, Z; a bag is a list, per entity, of
(row, weight) pairs: A[u] for the user side (rows of Y), G[i] for the item side (rows of Z).
"""

from __future__ import annotations

import numpy as np


def vectors(params: dict, A: list, G: list, u: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(zᵤ, wᵢ) = (Pᵤ + Σ cₐYₐ, Qᵢ + Σ c_g Z_g)."""
    z = params["P"][u] * 1.0  # a copy, numpy array or torch tensor alike
    for a, c in A[u]:
        z = z + c * params["Y"][a]
    w = params["Q"][i] * 1.0
    for g, c in G[i]:
        w = w + c * params["Z"][g]
    return z, w


def sample_loss(params: dict, A: list, G: list, u: int, i: int, r: float, mu: float, reg: float):
    """½e² + ½·reg·(bᵤ² + bᵢ² + ‖Pᵤ‖² + ‖Qᵢ‖² + Σ_g ‖Z_g‖² + Σₐ ‖Yₐ‖²) of one rating."""
    z, w = vectors(params, A, G, u, i)
    e = r - (mu + params["bu"][u] + params["bi"][i] + w @ z)
    penalty = params["bu"][u] ** 2 + params["bi"][i] ** 2
    penalty += params["P"][u] @ params["P"][u] + params["Q"][i] @ params["Q"][i]
    penalty += sum(params["Z"][g] @ params["Z"][g] for g, _ in G[i])
    penalty += sum(params["Y"][a] @ params["Y"][a] for a, _ in A[u])
    return 0.5 * e * e + 0.5 * reg * penalty


def sample_gradients(params: dict, A: list, G: list, u: int, i: int, r: float, mu, reg) -> dict:
    """The analytic gradient of :func:`sample_loss`, by parameter (rows keyed by index)::

    ∂/∂bᵤ = −e + reg·bᵤ,         ∂/∂bᵢ = −e + reg·bᵢ
    ∂/∂Pᵤ = −e·wᵢ + reg·Pᵤ,      ∂/∂Qᵢ = −e·zᵤ + reg·Qᵢ
    ∂/∂Z_g = −e·c_g·zᵤ + reg·Z_g, ∂/∂Yₐ = −e·cₐ·wᵢ + reg·Yₐ
    """
    z, w = vectors(params, A, G, u, i)
    e = r - (mu + params["bu"][u] + params["bi"][i] + w @ z)
    return {
        "bu": -e + reg * params["bu"][u],
        "bi": -e + reg * params["bi"][i],
        "P": -e * w + reg * params["P"][u],
        "Q": -e * z + reg * params["Q"][i],
        "Z": {g: -e * c * z + reg * params["Z"][g] for g, c in G[i]},
        "Y": {a: -e * c * w + reg * params["Y"][a] for a, c in A[u]},
    }


def svdpp_epoch(params, A, G, users, items, ratings, order, mu, lr, reg, defer=True) -> float:
    """One epoch in place; returns Σ e². ``defer=True`` is the package's rule (Y frozen during a
    user's block, its gradients summed and applied at the block's end); ``defer=False`` is
    Koren's per-sample rule (Y stepped with every sample, as scikit-surprise's SVDpp does)."""
    sse = 0.0
    blocks: list[list[int]] = []
    for j in order:
        if blocks and users[blocks[-1][0]] == users[j]:
            blocks[-1].append(j)
        else:
            blocks.append([j])
    for block in blocks:
        u = users[block[0]]
        start_Y = params["Y"].copy()
        summed = {a: np.zeros_like(params["P"][u]) for a, _ in A[u]}
        for j in block:
            i, r = items[j], ratings[j]
            view = dict(params, Y=start_Y) if defer else params
            z, w = vectors(view, A, G, u, i)
            sse += (r - (mu + params["bu"][u] + params["bi"][i] + w @ z)) ** 2
            grad = sample_gradients(view, A, G, u, i, r, mu, reg)
            params["bu"][u] -= lr * grad["bu"]
            params["bi"][i] -= lr * grad["bi"]
            params["P"][u] -= lr * grad["P"]
            params["Q"][i] -= lr * grad["Q"]
            for g, dg in grad["Z"].items():
                params["Z"][g] -= lr * dg
            for a, da in grad["Y"].items():
                if defer:
                    summed[a] += da
                else:
                    params["Y"][a] -= lr * da
        if defer:
            for a, da in summed.items():
                params["Y"][a] = start_Y[a] - lr * da
    return sse
