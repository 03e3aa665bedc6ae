"""Shared fixtures: the MovieLens 100k copy beside the checkout, a seeded 80/20 split, and a
parse cache of the test's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mfrec.data import find_ml100k, load_ml100k, train_test_split

REPO = Path(__file__).resolve().parents[1]


def _ml100k_dir() -> Path | None:
    for cand in (os.environ.get("MFREC_DATA"), REPO.parent / "shared" / "data"):
        if cand:
            try:
                return find_ml100k(cand, download=False)
            except FileNotFoundError:
                continue
    return None


@pytest.fixture(scope="session")
def ml100k():
    """MovieLens 100k from $MFREC_DATA or ../shared/data (never downloaded by the tests)."""
    root = _ml100k_dir()
    if root is None:
        pytest.skip("MovieLens 100k not found: set MFREC_DATA or place ../shared/data/ml-100k")
    return load_ml100k(root, download=False)


@pytest.fixture(scope="session")
def ml100k_split(ml100k):
    """(train, test) Ratings of the seed-0 80/20 split that `mfrec train` uses."""
    tr, te = train_test_split(len(ml100k), 0.2, seed=0)
    return ml100k.subset(tr), ml100k.subset(te)


@pytest.fixture
def cache_in_tmp(tmp_path, monkeypatch):
    """``$MFREC_CACHE`` in the test's tmp_path: parse caches of one test never reach another."""
    monkeypatch.setenv("MFREC_CACHE", str(tmp_path / "cache"))
