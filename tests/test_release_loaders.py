"""Every MovieLens release's loader, end to end, on small synthetic copies in its own layout.

The real archives cannot be downloaded here; ``benchmarks.synthetic`` writes each release's
folder and file names, separators, header, rating format and title encoding. A pure-Python
reader below (``csv`` / ``str.split``) checks what the fast parser returns, and the CLI trains
on each copy. The registry's rating counts are patched to the copies' sizes, except for
ml-latest-small, whose full 100,836 ratings are generated and loaded unpatched.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.end_to_end import parse_json_output
from benchmarks.synthetic import generate, read_truth
from mfrec import cli
from mfrec.data import RELEASES, DataError, find_release, get_release, load_movielens

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small"]
N = 3_000


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, Path]:
    """A 3,000-rating copy of every release, each in its own data folder."""
    root = tmp_path_factory.mktemp("releases")
    return {name: generate(name, N, root / name, seed=7) for name in NAMES}


@pytest.fixture
def small_counts(monkeypatch):
    """The registry expects the copies' 3,000 ratings (``load_movielens`` checks the count)."""
    for name in NAMES:
        monkeypatch.setitem(RELEASES, name, dataclasses.replace(RELEASES[name], n_ratings=N))


def python_rows(path: Path, delimiter: str) -> list[tuple[int, int, float]]:
    """(user, item, rating) of every row, read with the standard library only."""
    with open(path, encoding="utf-8", newline="") as f:
        if delimiter == ",":
            rows = list(csv.reader(f))
            assert rows[0] == ["userId", "movieId", "rating", "timestamp"]
            rows = rows[1:]
        else:
            rows = [line.rstrip("\n").split(delimiter) for line in f]
    assert all(len(r) == 4 and r[3].isdigit() for r in rows)
    return [(int(u), int(i), float(r)) for u, i, r, _ in rows]


@pytest.mark.parametrize("name", NAMES)
def test_copy_is_laid_out_like_the_release(copies, name):
    rel = get_release(name)
    folder = copies[name]
    assert folder.name == rel.folder  # ml-10m unpacks to ml-10M100K
    ratings = (folder / rel.ratings_file).read_bytes()
    first = ratings.split(b"\n", 1)[0].decode()
    if rel.delimiter == ",":
        assert first == "userId,movieId,rating,timestamp"
    else:
        assert len(first.split(rel.delimiter)) == 4
    movies = (folder / rel.movies_file).read_bytes()
    if rel.movies_encoding == "latin-1":  # é as one byte: not UTF-8
        assert b"Caf\xe9" in movies
        with pytest.raises(UnicodeDecodeError):
            movies.decode("utf-8")
    else:
        assert "Café".encode() in movies
    if rel.movies_format == "csv":
        assert b'"Movie ' in movies and b'""' in movies  # quoted commas, doubled quotes
    half = b".5" + (b"," if rel.delimiter == "," else rel.delimiter.encode())
    assert (half in ratings) == (rel.scale[0] == 0.5)


@pytest.mark.parametrize("name", NAMES)
def test_load_movielens_reads_every_row_and_title(copies, small_counts, name):
    rel = get_release(name)
    folder = copies[name]
    assert find_release(name, folder.parent, download=False) == folder
    table = load_movielens(name, folder.parent, download=False)
    assert len(table) == N
    want = python_rows(folder / rel.ratings_file, rel.delimiter)
    got = list(
        zip(
            table.user_ids[table.users].tolist(),
            table.item_ids[table.items].tolist(),
            table.ratings.tolist(),
            strict=True,
        )
    )
    assert got == want
    assert len(set((u, i) for u, i, _ in want)) == N  # no repeated pair
    lo, hi = rel.scale
    assert lo <= table.ratings.min() and table.ratings.max() <= hi
    step = 0.5 if lo == 0.5 else 1.0
    np.testing.assert_array_equal(table.ratings / step, np.round(table.ratings / step))
    truth = read_truth(folder)
    assert len(table.titles) == truth["params"]["n_items"]
    assert set(table.item_ids.tolist()) <= set(table.titles)
    for raw, title in truth["sample_titles"].values():
        assert table.titles[raw] == title


def test_count_check_rejects_a_partial_copy(copies):
    with pytest.raises(DataError, match="incomplete or modified"):
        load_movielens("ml-25m", copies["ml-25m"].parent, download=False)


@pytest.mark.parametrize("name", NAMES)
def test_cli_trains_on_each_release(copies, small_counts, name, capsys):
    folder = copies[name]
    argv = ["train", "--dataset", name, "--data-dir", str(folder.parent), "--no-download"]
    assert cli.main([*argv, "--epochs", "1", "--json", "--quiet"]) == 0
    result = parse_json_output(capsys.readouterr().out)
    assert result["n_train"] + result["n_test"] == N
    assert 0.0 < result["rmse"] < 2.0


def test_full_size_ml_latest_small_through_the_installed_cli(tmp_path):
    """100,836 ratings, the registry's own count: no patching, a real ``mfrec`` process."""
    folder = generate("ml-latest-small", None, tmp_path, seed=3)
    env = {**os.environ, "MFREC_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "mfrec", "train", "--dataset", "ml-latest-small"]
    cmd += ["--data-dir", str(tmp_path), "--no-download", "--epochs", "1", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    result = parse_json_output(done.stdout)
    assert result["n_train"] + result["n_test"] == get_release("ml-latest-small").n_ratings
    assert folder.name == "ml-latest-small"
    # One epoch of SGD is far from the floor, but it must beat predicting the mean rating.
    truth = read_truth(folder)
    assert truth["floor_rmse"] < result["rmse"] < truth["rating_std"]
