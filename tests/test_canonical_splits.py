"""ml-100k's canonical splits, cut as its mku.sh does, checked against the shell pipeline itself.

The folder here has no u1.base etc. (only u.data); ``mku.sh`` is run step by step with the real
``head``/``tail``/``sort``, and ``allbut.pl``'s per-user counting rule is re-done line by line in
Python. When the shipped files are present they are compared byte for byte as well.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mfrec.data.splits import CANONICAL_SPLITS, canonical_split

SORT = ["sort", "-t", "\t", "-k", "1,1n", "-k", "2,2n"]


@pytest.fixture(scope="module")
def lines(ml100k) -> list[str]:
    return (Path(ml100k.source) / "u.data").read_text().splitlines()


def _sorted_lines(rows: list[str]) -> list[str]:
    """``rows`` through mku.sh's ``sort -t<TAB> -k 1,1n -k 2,2n`` (the real command)."""
    if shutil.which("sort") is None:
        pytest.skip("no sort(1) on this machine to run mku.sh's pipeline")
    out = subprocess.run(SORT, input="\n".join(rows) + "\n", capture_output=True, text=True)
    return out.stdout.splitlines()


def _mku_fold(lines: list[str], k: int) -> tuple[list[str], list[str]]:
    """mku.sh's u<k>.base and u<k>.test: head -20000k | tail -20000, and the rest, sorted."""
    test = lines[: 20_000 * k][-20_000:]
    base = lines[: 20_000 * (k - 1)] + (lines[-20_000 * (5 - k) :] if k < 5 else [])
    return _sorted_lines(base), _sorted_lines(test)


def _allbut(lines: list[str], start: int, stop: int) -> tuple[list[str], list[str]]:
    """allbut.pl base_name start stop 100000 u.data: a user's n-th line (in file order) goes
    to the test file when start <= n <= stop; the outputs are then sorted as mku.sh does."""
    count: dict[str, int] = {}
    base, test = [], []
    for line in lines:
        user = line.split()[0]
        count[user] = count.get(user, 0) + 1
        (test if start <= count[user] <= stop else base).append(line)
    return _sorted_lines(base), _sorted_lines(test)


def test_the_table_is_u_data_in_file_order(ml100k, lines):
    raw = np.array([line.split("\t") for line in lines], dtype=np.int64)
    np.testing.assert_array_equal(ml100k.user_ids[ml100k.users], raw[:, 0])
    np.testing.assert_array_equal(ml100k.item_ids[ml100k.items], raw[:, 1])
    np.testing.assert_array_equal(ml100k.ratings, raw[:, 2])


@pytest.mark.parametrize("name", CANONICAL_SPLITS)
def test_cut_equals_mku_sh(ml100k, lines, name):
    train, test = canonical_split(ml100k, name)
    if name[1].isdigit():
        want_base, want_test = _mku_fold(lines, int(name[1]))
    else:
        want_base, want_test = _allbut(lines, 1, 10) if name == "ua" else _allbut(lines, 11, 20)
    assert [lines[j] for j in test] == want_test
    assert [lines[j] for j in train] == want_base
    shipped = Path(ml100k.source)
    if (shipped / f"{name}.test").is_file():
        assert [lines[j] for j in test] == (shipped / f"{name}.test").read_text().splitlines()
        assert [lines[j] for j in train] == (shipped / f"{name}.base").read_text().splitlines()


def test_folds_partition_and_ua_ub_hold_ten_per_user(ml100k):
    tests = [canonical_split(ml100k, f"u{k}")[1] for k in range(1, 6)]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(100_000))
    ua, ub = canonical_split(ml100k, "ua")[1], canonical_split(ml100k, "ub")[1]
    for test in (ua, ub):
        np.testing.assert_array_equal(np.bincount(ml100k.users[test]), np.full(943, 10))
    assert not np.intersect1d(ua, ub).size


def test_rejects_other_tables_and_names(ml100k):
    with pytest.raises(ValueError, match="known: u1, u2"):
        canonical_split(ml100k, "u6")
    with pytest.raises(ValueError, match="100,000 ratings by 943 users"):
        canonical_split(ml100k.subset(np.arange(1000)), "u1")
