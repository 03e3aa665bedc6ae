"""Shared data and the machine description for ``make bench`` (pytest-benchmark)."""

from __future__ import annotations

import numpy as np
import pytest
from harness import ML10M_ITEMS, ML10M_N, ML10M_USERS, cpu_model, gpu_model


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["cpu_model"] = cpu_model()
    machine_info["gpu_model"] = gpu_model()


@pytest.fixture(scope="session")
def ml100k():
    """The 80k/20k seeded split of MovieLens 100k, as index arrays."""
    from mfrec.data import load_ml100k, train_test_split

    try:
        data = load_ml100k(download=False)
    except FileNotFoundError as e:
        pytest.skip(f"MovieLens 100k not available offline ({e}); set MFREC_DATA")
    train, test = train_test_split(len(data), test_size=0.2, seed=0)
    return data.subset(train), data.subset(test), data.n_users, data.n_items


@pytest.fixture(scope="session")
def ml10m_shape():
    """10M uniformly random (user, item, rating) triples on the 69,878 × 10,677 grid (float32)."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, ML10M_USERS, ML10M_N)
    items = rng.integers(0, ML10M_ITEMS, ML10M_N)
    ratings = rng.integers(1, 6, ML10M_N).astype(np.float32)
    return users, items, ratings
