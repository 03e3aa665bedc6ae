"""Fast columnar parsing of ``user item rating [timestamp]`` files, with a binary cache.

One pass of a Numba kernel over the file's bytes fills four columns; every error names the
file, the 1-based line number and the line's text. Large files are cached as ``.npz`` after the
first parse (keyed by the file's path, size and mtime, and the parse options).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mfrec._internal import atomic_write
from mfrec.data import _kernels as K
from mfrec.data.dataset import Ratings

PARSER_VERSION = 1
# Files at least this large get a binary cache (small ones parse faster than a cache loads).
CACHE_MIN_BYTES = 16 << 20
# Files at least this large are parsed in line-aligned chunks, one thread each.
PARALLEL_MIN_BYTES = 8 << 20
DUPLICATE_POLICIES = ("error", "last")
_DELIMS = {"::": b"::", "\t": b"\t", ",": b",", "|": b"|", ";": b";", " ": b""}


class DataError(ValueError):
    """A ratings file could not be read; the message names the file and, where known, the line."""


def sniff_delimiter(line: str) -> str | None:
    """``'::'``, tab or comma when the line holds one; ``None`` means any whitespace."""
    for delim in ("::", "\t", ","):
        if delim in line:
            return delim
    return None


def default_cache_dir() -> Path:
    """``$MFREC_CACHE``; else ``data/cache`` in a source checkout (git-ignored); else the user's
    cache folder, ``$XDG_CACHE_HOME/mfrec`` or ``~/.cache/mfrec``."""
    env = os.environ.get("MFREC_CACHE")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / ".git").exists() and (checkout / "pyproject.toml").is_file():
        return checkout / "data" / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mfrec"


def read_ratings(
    path: str | os.PathLike,
    delimiter: str | None = None,
    rating_scale: tuple[float, float] | None = None,
    duplicates: str = "error",
    cache: bool | None = None,
) -> Ratings:
    """Read ``user item rating [timestamp]`` rows (tab, comma, ``::`` or spaces; a header allowed).

    Integer ids take the fast kernel; a file with any other id ("u4") is read as text ids.
    ``duplicates="error"`` rejects a repeated (user, item) pair; ``"last"`` keeps its last row.
    ``cache=None`` caches files of at least 16 MiB. Raises :class:`DataError` naming the file,
    the line number and the offending text.
    """
    path = Path(path)
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    lo, hi = _check_scale(rating_scale)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a ratings file")
    st = path.stat()
    if cache is None:
        cache = st.st_size >= CACHE_MIN_BYTES
    options = {"delimiter": delimiter, "scale": [lo, hi], "duplicates": duplicates}
    key = _cache_key(path, st, options)
    cached = _load_cached(key) if cache else None
    if cached is not None:
        return cached
    ratings = _parse_file(path, delimiter, lo, hi, duplicates)
    if cache:
        _save_cached(key, ratings)
    return ratings


def _check_scale(scale) -> tuple[float, float]:
    if scale is None:
        return -math.inf, math.inf
    lo, hi = (float(x) for x in scale)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"rating scale must be two finite numbers MIN <= MAX, got {scale!r}")
    return lo, hi


def _parse_file(path: Path, delimiter: str | None, lo: float, hi: float, duplicates: str):
    buf = np.fromfile(path, dtype=np.uint8)
    start = 3 if buf[:3].tobytes() == b"\xef\xbb\xbf" else 0
    first, line0 = _first_line(buf, start)
    if first is None:
        raise DataError(f"{path}: the file is empty")
    text = _line_text(buf, first)
    if delimiter is None:
        delimiter = sniff_delimiter(text) or " "
    if delimiter not in _DELIMS:
        raise ValueError(f"delimiter must be one of {sorted(_DELIMS)}, got {delimiter!r}")
    delim = np.frombuffer(_DELIMS[delimiter], dtype=np.uint8)
    head = text.split(delimiter) if delimiter != " " else text.split()
    if len(head) >= 3 and not any(_is_number(f) for f in head[:3]):  # a header: column names
        first, line0 = _skip_line(buf, first), line0 + 1
    try:
        users, items, ratings, stamps, slow, all_stamps = _parse_chunks(
            path, buf, first, line0, delim, lo, hi
        )
    except _TextIds:  # ids that are not integers ("u4"): the Python reader keeps them as text
        return _parse_text(path, buf, first, line0, delim, lo, hi, duplicates)
    if users.shape[0] == 0:
        raise DataError(f"{path}: no ratings found (only a header?)")
    for row in slow:
        _slow_rating(path, buf, first, line0, delim, int(row), ratings, lo, hi)
    ts = stamps if all_stamps else None
    table = Ratings.from_raw(users, items, ratings, ts, source=str(path))

    def locate(row: int) -> tuple[int, str]:
        return _locate(buf, first, line0, delim, row)

    return _apply_duplicates(path, table, duplicates, locate)


class _TextIds(Exception):
    """The kernel met an id that is not an integer: the file has text ids."""


def _parse_text(path, buf, first, line0, delim, lo, hi, duplicates) -> Ratings:
    """Read a file with text ids (one Python pass; integer-id files take the kernel).

    A column whose ids are all integers stays integer; any other keeps its ids as strings.
    Errors are the kernel path's, naming the file, the line and its text.
    """
    text = bytes(buf[first:]).decode("utf-8", "replace")
    users, items, ratings, stamps, where = [], [], [], [], []
    for line_no, line in enumerate(text.split("\n"), start=line0):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = _split(line, delim)
        status = K.OK
        if not (fields[0] and fields[1] and fields[2]):
            status = K.TOO_FEW_FIELDS
        elif not _is_number(fields[2]) or not math.isfinite(float(fields[2])):
            status = K.BAD_RATING
        elif not lo <= float(fields[2]) <= hi:
            status = K.OUT_OF_SCALE
        if status != K.OK:
            raise DataError(_message(path, status, line_no, line, delim, lo, hi))
        users.append(fields[0])
        items.append(fields[1])
        ratings.append(float(fields[2]))
        stamps.append(fields[3])
        where.append((line_no, line))
    ts = _integers(stamps)
    table = Ratings.from_raw(_integers(users, users), _integers(items, items), ratings, ts,
                             source=str(path))  # fmt: skip
    return _apply_duplicates(path, table, duplicates, lambda row: where[row])


def _integers(column: list[str], otherwise=None):
    """``column`` as int64 when every entry is an integer, else ``otherwise`` as text."""
    try:
        return np.array([int(v) for v in column], dtype=np.int64)
    except (ValueError, OverflowError):
        return None if otherwise is None else np.array(otherwise, dtype=np.str_)


def _parse_chunks(path, buf, first, line0, delim, lo, hi):
    """Run the kernel on up to ``os.cpu_count()`` line-aligned chunks at once (it drops the GIL).

    Returns the concatenated (users, items, ratings, stamps, slow rows, all_stamps); the first
    bad line in file order raises :class:`DataError`.
    """
    n = buf.shape[0]
    n_chunks = max(1, min(os.cpu_count() or 1, 8)) if n - first >= PARALLEL_MIN_BYTES else 1
    bounds = [first]
    for c in range(1, n_chunks):
        bounds.append(max(bounds[-1], min(n, _skip_line(buf, first + (n - first) * c // n_chunks))))
    bounds.append(n)
    lines = [line0]
    for c in range(1, n_chunks):
        lines.append(lines[-1] + K._count_newlines(buf, bounds[c - 1], bounds[c]))

    def run(c: int):
        # Every row but the last takes at least 6 bytes ("1 2 3\n"); untouched pages cost nothing.
        n_max = (bounds[c + 1] - bounds[c]) // 6 + 1
        out = [np.empty(n_max, dtype=t) for t in (np.int64, np.int64, np.float64, np.int64)]
        slow = np.empty(n_max, dtype=np.int64)
        u_out, i_out, r_out, t_out = out  # (users, items, ratings, timestamps) of the chunk
        res = K._parse_rows(
            buf[: bounds[c + 1]], bounds[c], lines[c], delim, lo, hi, -1, u_out, i_out, r_out,
            t_out, slow,
        )  # fmt: skip
        return out, slow, res

    if n_chunks == 1:
        parts = [run(0)]
    else:
        with ThreadPoolExecutor(n_chunks) as pool:
            parts = list(pool.map(run, range(n_chunks)))
    offset = 0
    slow_rows = []
    for _, slow, (rows, status, line_no, at, _, n_slow) in parts:
        if status in (K.BAD_USER, K.BAD_ITEM):
            raise _TextIds
        if status != K.OK:
            raise DataError(_message(path, status, line_no, _line_text(buf, at), delim, lo, hi))
        slow_rows.append(slow[:n_slow] + offset)
        offset += rows
    cols = [np.concatenate([out[k][: res[0]] for out, _, res in parts]) for k in range(4)]
    all_stamps = all(res[4] for _, _, res in parts)
    return (*cols, np.concatenate(slow_rows), all_stamps)


def _first_line(buf: np.ndarray, start: int) -> tuple[int | None, int]:
    """Byte offset and 1-based number of the first line holding anything but whitespace."""
    line_no = 1
    p = start
    n = buf.shape[0]
    while p < n:
        nl = _find_newline(buf, p)
        if bytes(buf[p:nl]).strip():
            return p, line_no
        p, line_no = nl + 1, line_no + 1
    return None, line_no


def _find_newline(buf: np.ndarray, p: int) -> int:
    hits = np.flatnonzero(buf[p : p + (1 << 16)] == 10)
    if hits.size:
        return p + int(hits[0])
    rest = np.flatnonzero(buf[p:] == 10)
    return p + int(rest[0]) if rest.size else buf.shape[0]


def _skip_line(buf: np.ndarray, p: int) -> int:
    return _find_newline(buf, p) + 1


def _line_text(buf: np.ndarray, p: int) -> str:
    return bytes(buf[p : _find_newline(buf, p)]).decode("utf-8", "replace").rstrip("\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _message(path, status, line_no, text, delim, lo, hi) -> str:
    """The error for one bad line: file, line number, what is wrong, the line's text."""
    where = f"{path}:{line_no}"
    fields = _split(text, delim)
    if status == K.TOO_FEW_FIELDS:
        return f"{where}: expected 'user item rating [timestamp]', got {text!r}"
    if status in (K.BAD_USER, K.BAD_ITEM):
        what, value = ("user", fields[0]) if status == K.BAD_USER else ("item", fields[1])
        return f"{where}: {what} id {value!r} is not an integer (line {text!r})"
    if status == K.BAD_RATING:
        value = fields[2]
        kind = "not a finite number" if _is_number(value) else "not a number"
        return f"{where}: rating {value!r} is {kind} (line {text!r})"
    return f"{where}: rating {fields[2]!r} is outside the rating scale [{lo:g}, {hi:g}] ({text!r})"


def _split(text: str, delim: np.ndarray) -> list[str]:
    sep = delim.tobytes().decode()
    fields = text.split(sep) if sep else text.split()
    return [f.strip() for f in fields] + [""] * 3


def _locate(buf, first, line0, delim, row: int) -> tuple[int, str]:
    """(line number, text) of data row ``row``, by re-running the kernel up to it."""
    empty_i = np.empty(row + 1, dtype=np.int64)
    empty_f = np.empty(row + 1, dtype=np.float64)
    _, _, line_no, at, _, _ = K._parse_rows(
        buf,
        first,
        line0,
        delim,
        -math.inf,
        math.inf,
        row,
        empty_i,
        empty_i,
        empty_f,
        empty_i,
        empty_i,
    )
    return line_no, _line_text(buf, at)


def _slow_rating(path, buf, first, line0, delim, row, ratings, lo, hi) -> None:
    """Parse one rating the kernel left to Python (many digits or a large exponent)."""
    line_no, text = _locate(buf, first, line0, delim, row)
    value = float(_split(text, delim)[2])
    if not math.isfinite(value):
        raise DataError(f"{path}:{line_no}: rating is not a finite number (line {text!r})")
    if not lo <= value <= hi:
        raise DataError(_message(path, K.OUT_OF_SCALE, line_no, text, delim, lo, hi))
    ratings[row] = value


def _apply_duplicates(path, table: Ratings, policy: str, locate) -> Ratings:
    """Stop at the first repeated pair (``locate(row)`` gives its line), or keep the last."""
    keep = np.ones(len(table), dtype=np.bool_)
    a, b = K._duplicates(table.users, table.items, table.n_users, table.n_items, keep)
    if b < 0:
        return table
    if policy == "error":
        line_a, _ = locate(int(a))
        line_b, text_b = locate(int(b))
        raise DataError(
            f"{path}:{line_b}: (user, item) pair repeats line {line_a} ({text_b!r}); "
            "each pair may be rated once (use duplicates='last' / --duplicates last to keep "
            "the last rating)"
        )
    # Keep-last leaves one row of every pair, so every user and item keeps its index.
    return table.subset(keep)


def _cache_key(path: Path, st: os.stat_result, options: dict) -> dict:
    return {
        "parser": PARSER_VERSION,
        "source": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "options": options,
    }


def cache_path(key: dict) -> Path:
    """Where the parsed copy of a source lives: ``<cache>/parsed/<name>-<hash>.npz``."""
    digest = hashlib.sha256(json.dumps(key["source"]).encode()).hexdigest()[:16]
    return default_cache_dir() / "parsed" / f"{Path(key['source']).name}-{digest}.npz"


def _narrow(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` as the smaller ``dtype`` when that round-trips exactly (half stars, small indices)."""
    small = a.astype(dtype)
    return small if np.array_equal(small, a) else a


def _load_cached(key: dict) -> Ratings | None:
    """The cached table when its key matches (same file size, mtime and options), else None."""
    target = cache_path(key)
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as z:
            if json.loads(str(z["key"])) != key:
                return None
            ts = z["timestamps"] if "timestamps" in z.files else None
            return Ratings(
                z["users"].astype(np.int64),
                z["items"].astype(np.int64),
                z["ratings"].astype(np.float64),
                z["user_ids"],
                z["item_ids"],
                ts,
                source=key["source"],
            )
    except (OSError, ValueError, KeyError):
        return None


def _save_cached(key: dict, table: Ratings) -> None:
    """Write the parsed table atomically; an unwritable cache only costs the next parse."""
    target = cache_path(key)
    arrays = {
        "key": np.array(json.dumps(key)),
        "users": _narrow(table.users, np.int32),
        "items": _narrow(table.items, np.int32),
        "ratings": _narrow(table.ratings, np.float32),
        "user_ids": table.user_ids,
        "item_ids": table.item_ids,
    }
    if table.timestamps is not None:
        arrays["timestamps"] = table.timestamps
    try:  # a cache that cannot be written is no error: the next run parses again
        with atomic_write(target, parents=True) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # pyright: ignore[reportArgumentType]  (a **dict may fill savez's allow_pickle)
    except OSError:
        return
