"""The chapter-3 networks' forward passes written out in NumPy from a module's weights.

Test-only (like ``tests/naive.py``): ``tests/test_networks.py`` and ``docs/derivation.py``
compare the torch modules of :mod:`mfrec.torch_impl.networks` against these formulas.
"""

from __future__ import annotations

import numpy as np
from torch import nn


def weights(linear: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of a Linear layer as NumPy arrays: y = x·Wᵀ + b."""
    return linear.weight.detach().numpy(), linear.bias.detach().numpy()


def run_layers(x: np.ndarray, seq: nn.Sequential, act, last_linear: bool) -> np.ndarray:
    """x through the Linear layers of ``seq``: act(x·Wᵀ + b) each, the last one linear when
    ``last_linear``."""
    lins = [m for m in seq if isinstance(m, nn.Linear)]
    for n, lin in enumerate(lins):
        W, b = weights(lin)
        x = x @ W.T + b
        if not (last_linear and n == len(lins) - 1):
            x = act(x)
    return x


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def biases(m, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """μ + bᵤ + bᵢ (0 when the module is not biased)."""
    if not m.biased:
        return np.zeros(u.shape[0])
    bu, bi = m.bu.weight.detach().numpy()[:, 0], m.bi.weight.detach().numpy()[:, 0]
    return float(m.mu) + bu[u] + bi[i]


def two_tower(m, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """μ + bᵤ + bᵢ + tanh(…tanh(Pᵤ·W₁ᵀ + b₁)…)·tanh(…tanh(Qᵢ·V₁ᵀ + c₁)…)."""
    P, Q = m.P.weight.detach().numpy(), m.Q.weight.detach().numpy()
    hu = run_layers(P[u], m.user_tower, np.tanh, last_linear=False)
    hi = run_layers(Q[i], m.item_tower, np.tanh, last_linear=False)
    return biases(m, u, i) + (hu * hi).sum(1)


def concat_mlp(m, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """μ + bᵤ + bᵢ + w·relu(…relu([Pᵤ, Qᵢ]·W₁ᵀ + b₁)…) + c."""
    P, Q = m.P.weight.detach().numpy(), m.Q.weight.detach().numpy()
    x = np.concatenate([P[u], Q[i]], axis=1)
    return biases(m, u, i) + run_layers(x, m.mlp, relu, last_linear=True)[:, 0]


def feature_rows(fe, ids: np.ndarray) -> np.ndarray:
    """The feature embeddings of ``ids``: per-field rows side by side, or the mean of the
    multi-hot features' rows (zeros for none)."""
    T = fe.table.weight.detach().numpy()
    if hasattr(fe, "fields"):
        codes = fe.fields.numpy()[ids] + fe.offsets.numpy()
        return T[codes].reshape(ids.shape[0], -1)
    indptr, indices = fe.indptr.numpy(), fe.indices.numpy()
    out = np.zeros((ids.shape[0], T.shape[1]))
    for n, e in enumerate(ids):
        mine = indices[indptr[e] : indptr[e + 1]]
        if mine.size:
            out[n] = T[mine].mean(0)
    return out


def embedding_mlp(m, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """μ + bᵤ + bᵢ + MLP([Pᵤ, Qᵢ, E_user(u), E_item(i)])."""
    P, Q = m.P.weight.detach().numpy(), m.Q.weight.detach().numpy()
    x = np.concatenate(
        [P[u], Q[i], feature_rows(m.user_features, u), feature_rows(m.item_features, i)], axis=1
    )
    return biases(m, u, i) + run_layers(x, m.mlp, relu, last_linear=True)[:, 0]
