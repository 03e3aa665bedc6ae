"""What the GPU kernels' checks share: the scripts of tests/test_gpu.py and tests/test_triton.py,
each run alone in a child under its own switch (``NUMBA_ENABLE_CUDASIM``, ``TRITON_INTERPRET``)."""

from __future__ import annotations

import numpy as np

from mfrec.reference.kernels import _sgd_epoch
from mfrec.reference.sampling import epoch_order, init_factors, walk_step


def same(a, b, atol: float = 0.0) -> None:
    """Fitted models ``a`` and ``b`` hold the same P, Q, bu and bi, to ``atol``."""
    for x, y in zip((a.P, a.Q, a.bu, a.bi), (b.P, b.Q, b.bu, b.bi), strict=True):
        np.testing.assert_allclose(y, x, rtol=0, atol=atol)


def device_walk_fit(
    users, items, ratings, n_users: int, n_items: int, k: int, n_epochs: int, lr: float, reg: float
) -> tuple:
    """(P, Q, bu, bi) of the reference rule (biased, float64) on ``order="device"``'s walks:
    from ``default_rng(0)``, P and Q, then the permutation pi, then each epoch's (a, b); epoch e
    visits pi[(a·t + b) mod n], checked to be a permutation."""
    g = np.random.default_rng(0)
    P, Q = init_factors(g, n_users, n_items, k, 0.1, np.float64)
    bu, bi, mu = np.zeros(n_users), np.zeros(n_items), ratings.mean()
    n = ratings.shape[0]
    pi = epoch_order(g, n, True)
    t = np.arange(n)
    for _ in range(n_epochs):
        a, b = walk_step(g, n)
        walk = pi[(a * t + b) % n]
        if not np.array_equal(np.sort(walk), t):
            raise SystemExit("the walk is not a permutation")
        _sgd_epoch(users, items, ratings, walk, P, Q, bu, bi, mu, lr, reg, True)
    return P, Q, bu, bi
