"""The CSR of each user's training items that ``recommend`` excludes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mfrec.reference.recommend import seen_items

ROOT = Path(__file__).resolve().parents[1]


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


def test_pure_python_seen_items_equals_compiled():
    code = (
        "import numpy as np\n"
        "from mfrec.reference.recommend import seen_items\n"
        "rng = np.random.default_rng(0)\n"
        "u, i = rng.integers(0, 9, 300), rng.integers(0, 7, 300)\n"
        "indptr, indices = seen_items(u, i, 10)\n"
        "print(' '.join(map(str, [*indptr, *indices])))\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 9, 300), rng.integers(0, 7, 300)
    assert proc.stdout.split() == list(map(str, np.concatenate(seen_items(u, i, 10))))
