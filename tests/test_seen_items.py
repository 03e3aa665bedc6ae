"""The CSR of each user's training items that ``recommend`` excludes."""

from __future__ import annotations

import numpy as np
import pytest
from child import run_python

from mfrec.reference.recommend import seen_items


@pytest.mark.parametrize("n", [0, 1, 2000])
def test_seen_items_lists_each_users_items_ascending(n):
    rng = np.random.default_rng(n)
    n_users = 30  # more users than ids drawn below: some rated nothing
    users = rng.integers(0, 25, n)
    items = rng.integers(0, 40, n)  # 2000 draws on 25×40 pairs: many duplicates, kept
    indptr, indices = seen_items(users, items, n_users)
    assert indptr.shape == (n_users + 1,) and indices.dtype == np.int64
    for u in range(n_users):
        expected = np.sort(items[users == u])
        np.testing.assert_array_equal(indices[indptr[u] : indptr[u + 1]], expected)


def seen_items_text() -> str:
    """The seen-items CSR (indptr, then indices) of 300 random ratings, as one line."""
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 9, 300), rng.integers(0, 7, 300)
    return " ".join(map(str, np.concatenate(seen_items(u, i, 10))))


def test_pure_python_seen_items_equals_compiled():
    code = "from test_seen_items import seen_items_text; print(seen_items_text())"
    proc = run_python(code, NUMBA_DISABLE_JIT="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == seen_items_text().split()
