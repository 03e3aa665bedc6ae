"""Random problems the kernel and model tests share."""

from __future__ import annotations

import numpy as np


def random_ratings(rng: np.random.Generator, n: int, n_users: int, n_items: int, dtype=np.float64):
    """``n`` uniformly drawn (users, items, ratings): ids below ``n_users`` and ``n_items``,
    pairs repeating freely, integer stars 1..5 as ``dtype``."""
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    return users, items, rng.integers(1, 6, n).astype(dtype)


def random_problem(
    rng: np.random.Generator, dtype=np.float64, n=3000, n_users=60, n_items=40, k=32
):
    """Small random ratings and N(0, 0.1²) factors with zero biases; shapes chosen so that rows
    collide often: (users, items, ratings, [P, Q, bu, bi])."""
    users, items, ratings = random_ratings(rng, n, n_users, n_items, dtype)
    P = rng.normal(0, 0.1, (n_users, k)).astype(dtype)
    Q = rng.normal(0, 0.1, (n_items, k)).astype(dtype)
    return users, items, ratings, [P, Q, np.zeros(n_users, dtype), np.zeros(n_items, dtype)]


def fit_step_for_step(ref_cls, torch_cls, data: tuple, **params) -> tuple:
    """``ref_cls(**params)`` and ``torch_cls(**params, mode="exact")`` fitted on ``data``, each
    keeping copies of its (P, Q, bu, bi) after every epoch: (ref, torch model, their states)."""
    ref_states, torch_states = [], []

    def keep(states: list):
        return lambda epoch, m: states.append((m.P.copy(), m.Q.copy(), m.bu.copy(), m.bi.copy()))

    ref = ref_cls(**params).fit(*data, callback=keep(ref_states))
    tm = torch_cls(**params, mode="exact").fit(*data, callback=keep(torch_states))
    return ref, tm, ref_states, torch_states


def assert_same_states(got: list, want: list, atol: float) -> None:
    """Two fits' per-epoch (P, Q, bu, bi), as :func:`fit_step_for_step` keeps them, equal to
    ``atol``."""
    for got_epoch, want_epoch in zip(got, want, strict=True):
        for name, g, w in zip(("P", "Q", "bu", "bi"), got_epoch, want_epoch, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=atol, err_msg=name)
