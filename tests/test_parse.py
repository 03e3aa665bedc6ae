"""The columnar ratings parser: exact values, ids, errors naming file/line/text, the cache."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrec.data import DataError, Ratings, read_ratings
from mfrec.data.parse import cache_path


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("MFREC_CACHE", str(tmp_path / "cache"))


def write(tmp_path, text: str, name: str = "r.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def python_reference(lines: list[str], sep: str | None):
    """The obvious line-by-line reading, to compare the kernel with."""
    rows = [ln.split(sep) for ln in lines if ln.strip()]
    return (
        [int(r[0]) for r in rows],
        [int(r[1]) for r in rows],
        [float(r[2]) for r in rows],
    )


@pytest.mark.parametrize("sep", ["\t", ",", "::", " "])
def test_parser_matches_python_on_every_delimiter(tmp_path, sep):
    rng = np.random.default_rng(0)
    n = 500
    u = rng.integers(0, 10**9, n)
    i = rng.integers(0, 200_000, n)
    r = rng.choice([0.5, 1, 2.5, 3.25, 5, 4.123456789012345], n).tolist()
    lines = [f"{a}{sep}{b}{sep}{c!r}{sep}{t}" for a, b, c, t in zip(u, i, r, range(n), strict=True)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    table = read_ratings(path, duplicates="last")
    ref_u, ref_i, ref_r = python_reference(lines, None if sep == " " else sep)
    # Keep-last on (user, item): with 500 draws from 10⁹ × 2·10⁵ there are no repeats.
    assert len(table) == n
    np.testing.assert_array_equal(table.user_ids[table.users], ref_u)
    np.testing.assert_array_equal(table.item_ids[table.items], ref_i)
    np.testing.assert_array_equal(table.ratings, ref_r)  # bit-exact, as float(text)
    np.testing.assert_array_equal(table.timestamps, np.arange(n))


def test_header_bom_crlf_blank_lines_and_spaces(tmp_path):
    text = "\ufeffuserId,movieId,rating,timestamp\r\n1, 10 ,3.5,9\r\n\r\n  \n2,200000,4,8\r\n"
    table = read_ratings(write(tmp_path, text))
    assert table.user_ids.tolist() == [1, 2]
    assert table.item_ids.tolist() == [10, 200000]
    assert table.ratings.tolist() == [3.5, 4.0]
    assert table.timestamps.tolist() == [9, 8]


def test_large_ids_map_to_contiguous_indices_and_back():
    raw_u = np.array([5, 2**40, 5, -3], dtype=np.int64)
    raw_i = np.array([193_609, 1, 2, 193_609], dtype=np.int64)
    t = Ratings.from_raw(raw_u, raw_i, [1.0, 2.0, 3.0, 4.0])
    assert t.user_ids.tolist() == [-3, 5, 2**40]
    assert t.item_ids.tolist() == [1, 2, 193_609]
    np.testing.assert_array_equal(t.user_ids[t.users], raw_u)
    np.testing.assert_array_equal(t.item_ids[t.items], raw_i)
    assert t.item_index(193_609) == 2
    with pytest.raises(KeyError, match="unknown item id 7"):
        t.item_index(7)


def test_missing_timestamps_give_none(tmp_path):
    table = read_ratings(write(tmp_path, "1 2 3 100\n1 3 4\n"))
    assert table.timestamps is None


BAD = [
    ("1,2\n", 1, "expected 'user item rating"),
    ("1,2,3\n1,2\n", 2, "'1,2'"),
    ("1,2,3\n\n1,2,abc\n", 3, "rating 'abc' is not a number"),
    ("1,2,nan\n", 1, "rating 'nan' is not a finite number"),
    ("1,2,-inf\n", 1, "rating '-inf' is not a finite number"),
    ("1,2,1e999\n", 1, "not a finite number"),
    ("u1,x7,3\nu2,x8\n", 2, "expected 'user item rating"),
    ("u1,x7,3\nu2,x8,four\n", 2, "rating 'four' is not a number"),
    ("u1,x7,3\nu1,x7,4\n", 2, "pair repeats line 1"),
    ("h1,h2,h3\n1,2,3\n7,8,3,9,,\n1,2,4\n", 4, "pair repeats line 2"),
]


@pytest.mark.parametrize(("text", "line", "what"), BAD)
def test_bad_lines_name_file_line_and_text(tmp_path, text, line, what):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        read_ratings(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:{line}: ")
    assert what in msg


def test_rating_outside_the_scale(tmp_path):
    path = write(tmp_path, "1 2 3\n1 3 5.5\n")
    with pytest.raises(DataError, match=rf"{path}:2: rating '5.5' is outside .*\[1, 5\]"):
        read_ratings(path, rating_scale=(1, 5))
    assert len(read_ratings(path)) == 2  # no declared scale: any finite rating
    with pytest.raises(ValueError, match="MIN <= MAX"):
        read_ratings(path, rating_scale=(5, 1))


def test_empty_missing_and_header_only(tmp_path):
    with pytest.raises(DataError, match="the file is empty"):
        read_ratings(write(tmp_path, ""))
    with pytest.raises(DataError, match="the file is empty"):
        read_ratings(write(tmp_path, " \n\n"))
    with pytest.raises(DataError, match="no ratings found"):
        read_ratings(write(tmp_path, "user,item,rating\n"))
    with pytest.raises(DataError, match="no such file"):
        read_ratings(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_ratings(tmp_path)


def test_duplicates_keep_last(tmp_path):
    path = write(tmp_path, "1 2 3 10\n1 5 1 11\n1 2 4 12\n2 2 5 13\n")
    table = read_ratings(path, duplicates="last")
    rows = sorted(
        zip(
            table.user_ids[table.users].tolist(),
            table.item_ids[table.items].tolist(),
            table.ratings.tolist(),
            table.timestamps.tolist(),
            strict=True,
        )
    )
    assert rows == [(1, 2, 4.0, 12), (1, 5, 1.0, 11), (2, 2, 5.0, 13)]
    with pytest.raises(ValueError, match="duplicates must be one of"):
        read_ratings(path, duplicates="mean")


def test_many_digit_ratings_take_the_exact_slow_path(tmp_path):
    text = "1 2 3.14159265358979323846\n1 3 2.5e-1\n1 4 12345678901234567e-16\n"
    table = read_ratings(write(tmp_path, text))
    assert table.ratings.tolist() == [3.14159265358979323846, 0.25, 12345678901234567e-16]


def test_binary_cache_is_used_and_invalidated(tmp_path):
    path = write(tmp_path, "1 2 3\n2 3 4\n")
    first = read_ratings(path, cache=True)
    cached = list((tmp_path / "cache" / "parsed").glob("*.npz"))
    assert len(cached) == 1
    again = read_ratings(path, cache=True)
    np.testing.assert_array_equal(first.ratings, again.ratings)
    # Same size, new mtime and content: the cache must not be served.
    path.write_bytes(b"1 2 5\n2 3 4\n")
    os.utime(path, ns=(1, 1))
    assert read_ratings(path, cache=True).ratings.tolist() == [5.0, 4.0]
    # A damaged cache file is ignored, not an error.
    cached[0].write_bytes(b"garbage")
    assert read_ratings(path, cache=True).ratings.tolist() == [5.0, 4.0]
    key_file = cache_path(path)
    assert key_file.is_file()
    assert not list((tmp_path / "cache" / "parsed").glob("*.tmp"))


# Fuzz: any printable line is either parsed exactly as Python reads it, or rejected with a
# DataError that names the file and line — never another exception, never a NaN rating.
field = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789.-+eE natif,:x", max_size=8),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fields=st.lists(field, min_size=0, max_size=5))
def test_fuzz_one_line(tmp_path, fields):
    line = "\t".join(fields)
    path = write(tmp_path, f"7\t8\t3\n{line}\n", name="fuzz.tsv")
    try:
        table = read_ratings(path)
    except DataError as e:
        assert str(e).startswith(f"{path}:")
        return
    assert np.all(np.isfinite(table.ratings))
    parts = [f.strip() for f in line.split("\t")]
    if len(table) == 2:
        for ids, part in ((table.user_ids, parts[0]), (table.item_ids, parts[1])):
            assert (int(part) if ids.dtype.kind == "i" else part) in ids  # text ids kept as text
        assert table.ratings[1] == float(parts[2]) and math.isfinite(float(parts[2]))


def test_chunked_parse_equals_one_pass_and_finds_the_first_bad_line(tmp_path, monkeypatch):
    import mfrec.data.parse as parse

    rng = np.random.default_rng(5)
    items, stars = rng.integers(0, 99, 3000), rng.choice([1, 2.5, 4.75], 3000)
    lines = [f"{u} {i} {r}" for u, i, r in zip(range(3000), items, stars, strict=True)]
    lines[1500] = ""  # a blank line inside a chunk shifts rows against lines
    lines[2200] += " 17 extra fields"
    path = write(tmp_path, "\n".join(lines) + "\n")
    monkeypatch.setattr(parse, "PARALLEL_MIN_BYTES", 1 << 40)
    one = read_ratings(path)
    monkeypatch.setattr(parse, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(parse.os, "cpu_count", lambda: 7)
    many = read_ratings(path)
    for name in ("users", "items", "ratings", "user_ids", "item_ids"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert one.timestamps is None and many.timestamps is None
    bad = lines.copy()
    bad[2600] = "1 2"
    bad[2900] = "1 2 x"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=rf"{path}:2601: expected"):
        read_ratings(path)


def test_text_ids_are_kept_as_text(tmp_path):
    """Ids that are not integers (issue 14) map to indices like integer ids; an all-integer
    column stays integer."""
    path = write(tmp_path, "user,item,rating\nu4,7,5\nu10,7,3\nu4,x8,2.5\n")
    table = read_ratings(path)
    assert table.user_ids.tolist() == ["u10", "u4"]
    assert table.item_ids.tolist() == ["7", "x8"]
    assert table.user_ids[table.users].tolist() == ["u4", "u10", "u4"]
    assert table.item_ids[table.items].tolist() == ["7", "7", "x8"]
    assert table.ratings.tolist() == [5.0, 3.0, 2.5]
    mixed = read_ratings(write(tmp_path, "1 a1 4\n2 a2 3\n"))
    assert mixed.user_ids.dtype.kind == "i" and mixed.item_ids.tolist() == ["a1", "a2"]


@pytest.mark.parametrize("block", [4096, 1 << 20])
def test_streamed_blocks_equal_one_pass(tmp_path, monkeypatch, block):
    """Small blocks (many of them) give the table one block gives; errors found in a later
    block name the file's line; slow ratings and text ids work across blocks."""
    import mfrec.data.parse as parse

    rng = np.random.default_rng(7)
    n = 20_000
    items, stars = rng.integers(0, 500, n), rng.choice(["1", "2.5", "3.14159265358979323846"], n)
    lines = ["u,i,r,t"] + [
        f"{u},{i},{r},{u}" for u, i, r in zip(range(n), items, stars, strict=True)
    ]
    path = write(tmp_path, "\n".join(lines) + "\n")
    one = read_ratings(path)
    monkeypatch.setattr(parse, "BLOCK_BYTES", block)
    many = read_ratings(path)
    for name in ("users", "items", "ratings", "user_ids", "item_ids", "timestamps"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    dup = [*lines, lines[n - 10]]  # a pair repeating a row far from the end
    path.write_text("\n".join(dup) + "\n")
    with pytest.raises(DataError, match=rf"{path}:{n + 2}: .* repeats line {n - 9} "):
        read_ratings(path)
    text = [*lines[:-1], f"x{lines[-1]}"]  # a text id in the last block: the Python reader
    path.write_text("\n".join(text) + "\n")
    table = read_ratings(path)
    assert table.user_ids.dtype.kind == "U" and len(table) == n
    np.testing.assert_array_equal(np.sort(table.ratings), np.sort(one.ratings))


def test_line_caps_and_short_quotes(tmp_path, monkeypatch):
    import mfrec.data.parse as parse

    monkeypatch.setattr(parse, "BLOCK_BYTES", 1 << 17)
    long = "1 2 " + "9" * 200_000  # spans blocks: refused by the streamer
    with pytest.raises(DataError, match=r":2: line longer than 64 KiB \(starts '1 2 999") as e:
        read_ratings(write(tmp_path, f"1 2 3\n{long}\n"))
    assert len(str(e.value).replace(str(tmp_path), "")) < 250
    inside = "1,2," + "z" * 70_000  # inside one block: refused by the kernel
    with pytest.raises(DataError, match=r":3: line longer than 64 KiB") as e:
        read_ratings(write(tmp_path, f"1,2,3\n\n{inside}\n"))
    assert len(str(e.value).replace(str(tmp_path), "")) < 250
    with pytest.raises(DataError, match=r"rating 'zzz.*'\.\.\. \(3000 characters\)") as e:
        read_ratings(write(tmp_path, "1,2,3\n1,2," + "z" * 3000 + "\n"))
    assert len(str(e.value).replace(str(tmp_path), "")) < 250


def test_compressed_files_read_as_their_content(tmp_path):
    import bz2
    import gzip
    import lzma

    text = "user,item,rating,timestamp\n1,2,3.5,9\n2,3,4,8\n"
    plain = read_ratings(write(tmp_path, text))
    for name, pack in (("gz", gzip.compress), ("bz2", bz2.compress), ("xz", lzma.compress)):
        path = tmp_path / f"r.csv.{name}"
        path.write_bytes(pack(text.encode()))
        table = read_ratings(path, cache=True)
        assert table.ratings.tolist() == plain.ratings.tolist() == [3.5, 4.0]
        assert table.timestamps.tolist() == [9, 8]
        assert read_ratings(path, cache=True).ratings.tolist() == [3.5, 4.0]  # cached
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(text.encode())[:-12])
    with pytest.raises(DataError, match="cannot read or decompress"):
        read_ratings(broken)


def test_fifo_and_devices_are_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is a FIFO"):
        read_ratings(fifo)  # no writer: would block forever without O_NONBLOCK
    with pytest.raises(DataError, match="not a regular file"):
        read_ratings("/dev/null")


def test_unused_columns_are_named_once(tmp_path, caplog):
    path = write(tmp_path, "user,item,rating,timestamp,genre\n1,2,3,4,x\n2,3,4,5,y\n")
    with caplog.at_level("WARNING", logger="mfrec.data"):
        read_ratings(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: column 5 ('genre') not used: mfrec reads user, item, rating, timestamp"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="mfrec.data"):
        read_ratings(write(tmp_path, "1 2 3 a\n2 3 4 b\n", name="s.txt"))
    assert "column 4 not used" in caplog.records[0].getMessage()
    assert "not an integer timestamp" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="mfrec.data"):
        read_ratings(write(tmp_path, "1 2 3 7\n2 3 4 8\n", name="t.txt"))
    assert not caplog.records


@pytest.mark.parametrize("value", ["1_0", "\u0663", "0x10", "1e", ".", "+-1", "nan"])
def test_one_rating_grammar_for_integer_and_text_ids(tmp_path, value):
    for ids in ("1,2", "u1,i2"):
        path = write(tmp_path, f"u,i,r\n{ids},3\n{ids}9,{value}\n")
        with pytest.raises(DataError, match=rf":3: rating '{re.escape(value)}' is not a "):
            read_ratings(path)
    for ok, want in (("5.", 5.0), (".5", 0.5), ("+2e-1", 0.2), ("-0", 0.0)):
        for ids in ("1,2", "u1,i2"):
            table = read_ratings(write(tmp_path, f"u,i,r\n{ids},3\n{ids}9,{ok}\n"))
            assert sorted(table.ratings.tolist()) == sorted([3.0, want])


def test_cache_is_keyed_on_content_and_validated(tmp_path, caplog):
    path = write(tmp_path, "1 2 3\n2 3 4\n")
    read_ratings(path, cache=True)
    st = path.stat()
    path.write_bytes(b"1 2 5\n2 3 4\n")  # same size; mtime (and inode) put back
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert read_ratings(path, cache=True).ratings.tolist() == [5.0, 4.0]
    entry = cache_path(path)
    entry.write_bytes(entry.read_bytes()[:100])
    with caplog.at_level("WARNING", logger="mfrec.data"):
        assert read_ratings(path, cache=True).ratings.tolist() == [5.0, 4.0]
    assert len(caplog.records) == 1
    assert "ignoring its damaged parse cache" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="mfrec.data"):
        assert read_ratings(path, cache=True).ratings.tolist() == [5.0, 4.0]  # rewritten
    assert not caplog.records
