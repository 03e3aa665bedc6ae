"""Fast columnar parsing of ``user item rating [timestamp]`` files, with a binary cache.

The file is read as a stream of line-aligned blocks (memory O(output), not O(file)); one pass of
a Numba kernel over each block's bytes fills four columns. gzip, bzip2, xz and (with the
``zstandard`` module) zstd files are recognised by their first bytes and decompressed on the
fly. Every error names the file, the 1-based line number and the line's text, cut to
:data:`QUOTE_CHARS` characters. Large files are cached as ``.npz`` after the first parse, keyed
by a hash of the file's content and the parse options; every cache read is validated.

Notes that are no error (an unused column, a damaged cache that was replaced) go to the
``logging`` logger ``"mfrec.data"`` at level WARNING: one line each, printed on stderr as is
when the program configured no logging (Python's last-resort handler).
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import logging
import lzma
import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mfrec._internal import atomic_write, check_npz
from mfrec.data import _kernels as K
from mfrec.data.dataset import Ratings

PARSER_VERSION = 2
# Files at least this large get a binary cache (small ones parse faster than a cache loads).
CACHE_MIN_BYTES = 16 << 20
# Blocks at least this large are parsed in line-aligned chunks, one thread each.
PARALLEL_MIN_BYTES = 8 << 20
# The stream is parsed in blocks of about this many (decompressed) bytes.
BLOCK_BYTES = 64 << 20
# A file whose first MiB holds only blank lines is refused without reading the rest.
SNIFF_BYTES = 1 << 20
# Error messages quote at most this many characters of a line.
QUOTE_CHARS = 80
# The content hash reads the file in pieces of this size, one thread per core.
HASH_PIECE = 16 << 20
DUPLICATE_POLICIES = ("error", "last")
_DELIMS = {"::": b"::", "\t": b"\t", ",": b",", "|": b"|", ";": b";", " ": b""}
_COLUMNS = ("user", "item", "rating", "timestamp")
# The one grammar of a rating (both paths, as the kernel reads it) and of an integer id.
_RATING = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,18})?", re.ASCII)
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NON_FINITE = {"nan", "inf", "infinity"}

Report = Callable[[str, int, int], None]
"""``report(what, done, total)``: ``done`` of ``total`` bytes of the step ``what`` are through:
``"reading"`` the file (of a compressed one, the compressed bytes), or ``"hashing"`` it for the
parse cache. Called when a step starts (``done`` 0) and after each block or piece, never per
line; a step may start again from 0 (a file with text ids is read twice)."""

logger = logging.getLogger("mfrec.data")


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
    report: Report | None = None,
) -> Ratings:
    """Read ``user item rating [timestamp]`` rows (tab, comma, ``::`` or spaces; a header allowed).

    Integer ids take the fast kernel; a file with any other id ("u4") is read as text ids.
    ``duplicates="error"`` rejects a repeated (user, item) pair; ``"last"`` keeps its last row.
    ``cache=None`` caches files of at least 16 MiB. Compressed files (gzip, bzip2, xz, zstd)
    are read as their content. ``report`` hears how many bytes are read and hashed (see
    :data:`Report`). Raises :class:`DataError` naming the file, the line number and the
    offending text; notes (an unused column) go to the ``"mfrec.data"`` logger.
    """
    path = Path(path)
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    if delimiter is not None and delimiter not in _DELIMS:
        raise ValueError(f"delimiter must be one of {sorted(_DELIMS)}, got {delimiter!r}")
    lo, hi = _check_scale(rating_scale)
    with _open_regular(path) as raw:
        st = os.fstat(raw.fileno())
        if cache is None:
            cache = st.st_size >= CACHE_MIN_BYTES
        key = None
        if cache:
            options = {"delimiter": delimiter, "scale": [lo, hi], "duplicates": duplicates}
            key = _cache_key(path, st, options)
            cached = _load_cached(path, raw.fileno(), key, report)
            if cached is not None:
                return cached
        ratings = _parse_file(path, raw, delimiter, lo, hi, duplicates, report)
        if key is not None and _unchanged(st, os.fstat(raw.fileno())):
            # Hashed after the parse, so that garbage is refused before the whole file is read.
            key["content"] = content_digest(raw.fileno(), st.st_size, report)
            _save_cached(key, ratings)
    return ratings


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    """The file was not written while it was parsed (else its parse is not cached)."""
    return (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)


def _check_scale(scale) -> tuple[float, float]:
    if scale is None:
        return -math.inf, math.inf
    lo, hi = (float(x) for x in scale)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"rating scale must be two finite numbers MIN <= MAX, got {scale!r}")
    return lo, hi


def _open_regular(path: Path) -> io.FileIO:
    """The file opened for reading; anything but a regular file is refused before a read.

    ``O_NONBLOCK`` makes opening a FIFO without a writer return at once, so that it is refused
    instead of hanging.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise DataError(f"{path}: is a directory, expected a ratings file")
        what = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise DataError(
            f"{path}: is {what}; ratings are read from regular files only "
            "(save the stream to a file first)"
        )
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return io.FileIO(fd, "rb", closefd=True)


# Compressed formats by their magic bytes: (name, opener of a decompressing stream).
def _zstd_reader(raw):
    try:
        import zstandard  # pyright: ignore[reportMissingImports] (optional, may be absent)
    except ImportError:
        return None
    return zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)


_MAGIC = (
    (b"\x1f\x8b", "gzip", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", "bzip2", lambda raw: bz2.BZ2File(raw, "rb")),
    (b"\xfd7zXZ\x00", "xz", lambda raw: lzma.LZMAFile(raw, "rb")),
    (b"\x28\xb5\x2f\xfd", "zstd", _zstd_reader),
)


def _stream(path: Path, raw: io.FileIO):
    """A binary stream of the file's content from its start: decompressed when it is gzip,
    bzip2, xz or zstd (recognised by the first bytes, not the name)."""
    head = os.pread(raw.fileno(), 8, 0)
    raw.seek(0)
    if head.startswith(b"PK\x03\x04"):
        raise DataError(f"{path}: is a zip archive; unpack it and give the ratings file inside")
    for magic, name, opener in _MAGIC:
        if head.startswith(magic):
            stream = opener(raw)
            if stream is None:
                raise DataError(
                    f"{path}: is {name}-compressed; install the zstandard module "
                    "(pip install zstandard) or decompress it first"
                )
            return stream
    return raw


def _read_full(stream, n: int, path: Path) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts, have = [], 0
    while have < n:
        try:
            data = stream.read(n - have)
        except Exception as e:  # OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, ...
            raise DataError(f"{path}: cannot read or decompress the file ({e})") from None
        if not data:
            break
        parts.append(data)
        have += len(data)
    return b"".join(parts)


def _blocks(
    path: Path, raw: io.FileIO, report: Report | None = None
) -> Iterator[tuple[np.ndarray, int]]:
    """Line-aligned blocks of the (decompressed) content with the 1-based number of each
    block's first line; a UTF-8 BOM is dropped. A line over ``K.MAX_LINE`` bytes that spans
    blocks is an error here; one inside a block, the kernel's. ``report`` hears the bytes of
    the file read so far once each block is consumed."""
    stream = _stream(path, raw)
    size = os.fstat(raw.fileno()).st_size
    if report is not None:
        report("reading", 0, size)
    with contextlib.ExitStack() as stack:
        if stream is not raw:
            stack.enter_context(stream)
        carry = b""
        line0 = 1
        first = True
        while True:
            data = _read_full(stream, BLOCK_BYTES, path)
            eof = len(data) < BLOCK_BYTES
            buf = carry + data if carry else data
            if first and buf.startswith(b"\xef\xbb\xbf"):
                buf = buf[3:]
            first = False
            cut = len(buf) if eof else buf.rfind(b"\n") + 1
            carry = buf[cut:]
            if len(carry) > K.MAX_LINE:
                line = line0 + buf.count(b"\n", 0, cut)
                raise DataError(_too_long(path, line, buf[cut : cut + QUOTE_CHARS]))
            if cut:
                yield np.frombuffer(buf, dtype=np.uint8, count=cut), line0
                line0 += buf.count(b"\n", 0, cut)
            if report is not None:
                report("reading", size if eof else min(raw.tell(), size), size)
            if eof:
                return


def _too_long(path: Path, line_no: int, start: bytes) -> str:
    text = start.decode("utf-8", "replace")
    return (
        f"{path}:{line_no}: line longer than {K.MAX_LINE // 1024} KiB "
        f"(starts {_quote(text)}); not a ratings file?"
    )


def _quote(text: str) -> str:
    """``repr`` of ``text`` cut to :data:`QUOTE_CHARS` characters (an ellipsis says so)."""
    if len(text) <= QUOTE_CHARS:
        return repr(text)
    return repr(text[: QUOTE_CHARS - 3]) + f"... ({len(text)} characters)"


def _parse_file(
    path: Path, raw, delimiter: str | None, lo: float, hi: float, duplicates: str, report=None
):
    blocks = _blocks(path, raw, report)
    head = next(blocks, None)
    buf, line0 = head if head is not None else (np.empty(0, dtype=np.uint8), 1)
    first, line0 = _first_line(buf, line0)
    if first is None:
        if buf.shape[0] <= SNIFF_BYTES and next(blocks, None) is None:
            raise DataError(f"{path}: the file is empty")
        raise DataError(f"{path}: the first {SNIFF_BYTES >> 20} MiB hold no data (blank lines)")
    text = _line_text(buf, first)
    if delimiter is None:
        delimiter = sniff_delimiter(text) or " "
    delim = np.frombuffer(_DELIMS[delimiter], dtype=np.uint8)
    head_fields = _split(text, delim)
    header = None
    n_head = len(head_fields) - 3
    if n_head >= 3 and not any(_is_number(f) for f in head_fields[:3]):  # column names
        header = head_fields[:n_head]
        first, line0 = _skip_line(buf, first), line0 + 1
    try:
        users, items, ratings, stamps, max_fields = _parse_blocks(
            path, buf, first, line0, blocks, delim, lo, hi
        )
    except _TextIds:  # ids that are not integers ("u4"): the Python reader keeps them as text
        raw.seek(0)
        return _parse_text(path, raw, delimiter, lo, hi, duplicates, header, report)
    if users.shape[0] == 0:
        raise DataError(f"{path}: no ratings found (only a header?)")
    _note_unused(path, max_fields, stamps is not None, header)
    table = Ratings.from_raw(users, items, ratings, stamps, source=str(path))

    def locate(row: int) -> tuple[int, str]:
        raw.seek(0)
        return _locate(path, raw, delim, first, line0, row)

    return _apply_duplicates(path, table, duplicates, locate)


class _TextIds(Exception):
    """The kernel met an id that is not an integer: the file has text ids."""


def _parse_blocks(path, buf, first, line0, blocks, delim, lo, hi):
    """Run the kernel over the first block (from ``first``) and every later one.

    Returns (users, items, ratings, stamps or None, most fields on a line); the first bad line
    raises :class:`DataError` (or :class:`_TextIds` for an id that is not an integer).
    """
    cols: list[list[np.ndarray]] = [[], [], [], []]
    all_stamps = True
    max_fields = 0

    def one(buf, start, line0):
        nonlocal all_stamps, max_fields
        parts, stamped, nf = _parse_chunks(path, buf, start, line0, delim, lo, hi)
        for k in range(4):
            cols[k].append(parts[k])
        all_stamps = all_stamps and stamped
        max_fields = max(max_fields, nf)

    if buf is not None:
        one(buf, first, line0)
    for buf, line0 in blocks:
        one(buf, 0, line0)
    out = [np.concatenate(c) if c else np.empty(0, dtype=np.int64) for c in cols]
    out[2] = out[2].astype(np.float64, copy=False)
    return out[0], out[1], out[2], (out[3] if all_stamps else None), max_fields


def _parse_chunks(path, buf, first, line0, delim, lo, hi):
    """Run the kernel on up to ``os.cpu_count()`` line-aligned chunks of one block at once (it
    drops the GIL); ratings the kernel left to Python are filled in.

    Returns ([users, items, ratings, stamps], all_stamps, most fields on a line).
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
        slow = np.empty((2, n_max), dtype=np.int64)
        res = K._parse_rows(
            buf[: bounds[c + 1]], bounds[c], lines[c], delim, lo, hi, -1, *out, *slow
        )
        return out, slow, res

    if n_chunks == 1:
        parts = [run(0)]
    else:
        with ThreadPoolExecutor(n_chunks) as pool:
            parts = list(pool.map(run, range(n_chunks)))
    for c, (out, slow, (_, status, line_no, at, _, n_slow, _)) in enumerate(parts):
        if status in (K.BAD_USER, K.BAD_ITEM):
            raise _TextIds
        if status != K.OK:
            raise DataError(_message(path, status, line_no, _line_text(buf, at), delim, lo, hi))
        for row, at in zip(*slow[:, :n_slow].tolist(), strict=True):
            _slow_rating(path, buf, bounds[c], lines[c], delim, row, at, out[2], lo, hi)
    cols = [np.concatenate([out[k][: res[0]] for out, _, res in parts]) for k in range(4)]
    all_stamps = all(res[4] for _, _, res in parts)
    return cols, all_stamps, max(res[6] for _, _, res in parts)


def _note_unused(path: Path, max_fields: int, stamped: bool, header) -> None:
    """One note naming the columns the reader does not use (past the 4th; a 4th that is not an
    integer timestamp on every line)."""
    first_unused = 4 if stamped or max_fields < 4 else 3
    if max_fields <= first_unused:
        return
    columns = range(first_unused + 1, max_fields + 1)
    names = ""
    if header is not None and len(header) >= max_fields:
        names = " (" + ", ".join(repr(header[c - 1]) for c in columns) + ")"
    which = f"column {columns[0]}" if len(columns) == 1 else f"columns {columns[0]}-{columns[-1]}"
    why = "; column 4 is not an integer timestamp on every line" if first_unused == 3 else ""
    reads = "mfrec reads user, item, rating, timestamp"
    logger.warning(f"{path}: {which}{names} not used: {reads}{why}")


def _text_lines(path: Path, raw, report: Report | None = None) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line end) of every line, each capped at
    ``K.MAX_LINE`` bytes; the stream is read as UTF-8 (invalid bytes replaced)."""
    for buf, line0 in _blocks(path, raw, report):
        text = buf.tobytes().decode("utf-8", "replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for k, line in enumerate(lines):
            if len(line) > K.MAX_LINE:
                raise DataError(_too_long(path, line0 + k, line[:QUOTE_CHARS].encode()))
            yield line0 + k, line.rstrip("\r")


def _parse_text(path, raw, delimiter, lo, hi, duplicates, header, report=None) -> Ratings:
    """Read a file with text ids (one Python pass; integer-id files take the kernel).

    A column whose ids are all integers stays integer; any other keeps its ids as strings.
    Ratings follow the kernel's grammar (:data:`_RATING`). Errors are the kernel path's,
    naming the file, the line and its text.
    """
    delim = np.frombuffer(_DELIMS[delimiter], dtype=np.uint8)
    users, items, ratings, stamps, where = [], [], [], [], []
    max_fields = 0
    skip_header = header is not None
    for line_no, line in _text_lines(path, raw, report):
        if not line.strip():
            continue
        if skip_header:
            skip_header = False
            continue
        fields = _split(line, delim)
        max_fields = max(max_fields, len(fields) - 3)
        status = K.OK
        if not (fields[0] and fields[1] and fields[2]):
            status = K.TOO_FEW_FIELDS
        elif not _RATING.fullmatch(fields[2]) or not math.isfinite(float(fields[2])):
            status = K.BAD_RATING
        elif not lo <= float(fields[2]) <= hi:
            status = K.OUT_OF_SCALE
        if status != K.OK:
            raise DataError(_message(path, status, line_no, line, delim, lo, hi))
        users.append(fields[0])
        items.append(fields[1])
        ratings.append(float(fields[2]))
        stamps.append(fields[3])
        where.append(line_no)
    if not users:
        raise DataError(f"{path}: no ratings found (only a header?)")
    ts = _integers(stamps)
    _note_unused(path, max_fields, ts is not None, header)
    table = Ratings.from_raw(_integers(users, users), _integers(items, items), ratings, ts,
                             source=str(path))  # fmt: skip

    def locate(row: int) -> tuple[int, str]:
        raw.seek(0)
        line_no = where[row]
        return line_no, next(text for n, text in _text_lines(path, raw) if n == line_no)

    return _apply_duplicates(path, table, duplicates, locate)


def _integers(column: list[str], otherwise=None):
    """``column`` as int64 when every entry is an ASCII decimal integer, else ``otherwise`` as
    text (None when not given)."""
    if all(_INTEGER.fullmatch(v) for v in column):
        try:
            return np.array([int(v) for v in column], dtype=np.int64)
        except OverflowError:
            pass
    return None if otherwise is None else np.array(otherwise, dtype=np.str_)


def _first_line(buf: np.ndarray, line0: int) -> tuple[int | None, int]:
    """Byte offset and 1-based number of the first line holding anything but whitespace, when
    it starts in the first :data:`SNIFF_BYTES` of ``buf``; else (None, 0)."""
    head = buf[:SNIFF_BYTES]
    ink = np.flatnonzero((head != 32) & (head != 9) & (head != 13) & (head != 10))
    if not ink.size:
        return None, 0
    j = int(ink[0])
    newlines = np.flatnonzero(head[:j] == 10)
    start = int(newlines[-1]) + 1 if newlines.size else 0
    return start, line0 + int(newlines.size)


def _find_newline(buf: np.ndarray, p: int) -> int:
    hits = np.flatnonzero(buf[p : p + (1 << 16)] == 10)
    if hits.size:
        return p + int(hits[0])
    rest = np.flatnonzero(buf[p:] == 10)
    return p + int(rest[0]) if rest.size else buf.shape[0]


def _skip_line(buf: np.ndarray, p: int) -> int:
    return _find_newline(buf, p) + 1


def _line_text(buf: np.ndarray, p: int) -> str:
    """The line starting at ``p`` (at most ``K.MAX_LINE`` bytes of it)."""
    end = min(_find_newline(buf, p), p + K.MAX_LINE)
    return bytes(buf[p:end]).decode("utf-8", "replace").rstrip("\r")


def _is_number(text: str) -> bool:
    """A rating by the one grammar, or a spelled-out NaN or infinity."""
    return bool(_RATING.fullmatch(text)) or text.lower().lstrip("+-") in _NON_FINITE


def _message(path, status, line_no, text, delim, lo, hi) -> str:
    """The error for one bad line: file, line number, what is wrong, the line's text."""
    where = f"{path}:{line_no}"
    fields = _split(text, delim)
    line = _quote(text)
    if status == K.TOO_FEW_FIELDS:
        return f"{where}: expected 'user item rating [timestamp]', got {line}"
    if status == K.LINE_TOO_LONG:
        return _too_long(path, line_no, text[:QUOTE_CHARS].encode())
    if status in (K.BAD_USER, K.BAD_ITEM):
        what, value = ("user", fields[0]) if status == K.BAD_USER else ("item", fields[1])
        return f"{where}: {what} id {_quote(value)} is not an integer (line {line})"
    if status == K.BAD_RATING:
        value = fields[2]
        kind = "not a finite number" if _is_number(value) else "not a number"
        return f"{where}: rating {_quote(value)} is {kind} (line {line})"
    return (
        f"{where}: rating {_quote(fields[2])} is outside the rating scale [{lo:g}, {hi:g}] ({line})"
    )


def _split(text: str, delim: np.ndarray) -> list[str]:
    sep = delim.tobytes().decode()
    fields = text.split(sep) if sep else text.split()
    return [f.strip() for f in fields] + [""] * 3


def _locate_in(buf, first, line0, delim, row: int) -> tuple[int, int, int]:
    """(rows before the stop, line number, line start) of data row ``row`` of one block, by
    re-running the kernel up to it (fewer rows than ``row`` when the block ends first)."""
    n_max = min(row + 1, (buf.shape[0] - first) // 6 + 2)
    empty_i = np.empty(n_max, dtype=np.int64)
    empty_f = np.empty(n_max, dtype=np.float64)
    rows, _, line_no, at, _, _, _ = K._parse_rows(
        buf, first, line0, delim, -math.inf, math.inf, row,
        empty_i, empty_i, empty_f, empty_i, empty_i, empty_i,
    )  # fmt: skip
    return rows, line_no, at


def _locate(path, raw, delim, first: int, line0: int, row: int) -> tuple[int, str]:
    """(line number, text) of data row ``row`` of the file, streaming it again; its data start
    at byte ``first`` (line ``line0``) of the first block."""
    for k, (buf, block_line0) in enumerate(_blocks(path, raw)):
        start, start_line = (first, line0) if k == 0 else (0, block_line0)
        rows, line_no, at = _locate_in(buf, start, start_line, delim, row)
        if rows == row and at < buf.shape[0]:
            return line_no, _line_text(buf, at)
        row -= rows
    raise AssertionError("row past the end of the file")  # pragma: no cover


def _slow_rating(path, buf, first, line0, delim, row, at, ratings, lo, hi) -> None:
    """Parse the rating of row ``row`` (its line starts at byte ``at``) that the kernel left to
    Python (many digits or a large exponent)."""
    text = _line_text(buf, at)
    value = float(_split(text, delim)[2])
    line_no = line0 + K._count_newlines(buf, first, at)  # used only in an error
    if not math.isfinite(value):
        raise DataError(f"{path}:{line_no}: rating is not a finite number (line {_quote(text)})")
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
            f"{path}:{line_b}: (user, item) pair repeats line {line_a} ({_quote(text_b)}); "
            "each pair may be rated once (use duplicates='last' / --duplicates last to keep "
            "the last rating)"
        )
    # Keep-last leaves one row of every pair, so every user and item keeps its index.
    return table.subset(keep)


# The parse cache ----------------------------------------------------------------------------


def _hasher():
    """xxHash's XXH3-128 when the ``xxhash`` module is installed, else SHA-256."""
    try:
        import xxhash  # pyright: ignore[reportMissingImports] (optional, may be absent)
    except ImportError:
        return "sha256", hashlib.sha256
    return "xxh3_128", xxhash.xxh3_128


def _tree_digest(pieces: list[Callable[[], bytes | memoryview]], done=None) -> str:
    """``name:hex``: the hash of the pieces' hashes, computed one thread per core (hashlib
    releases the GIL), so the result does not depend on the thread count. ``done(k)`` is
    called (in this thread) as the first ``k`` pieces are through."""
    name, new = _hasher()

    def one(piece) -> bytes:
        return new(piece()).digest()

    workers = max(1, min(os.cpu_count() or 1, 8))
    digests: list[bytes] = []
    with contextlib.ExitStack() as stack:
        if len(pieces) > 1 and workers > 1:
            hashed = stack.enter_context(ThreadPoolExecutor(workers)).map(one, pieces)
        else:
            hashed = map(one, pieces)
        for digest in hashed:
            digests.append(digest)
            if done is not None:
                done(len(digests))
    return f"{name}:{new(b''.join(digests)).hexdigest()}"


def content_digest(fd: int, size: int, report: Report | None = None) -> str:
    """Hash of the first ``size`` bytes of the open file ``fd`` (read in pieces with ``pread``,
    so the file position is untouched); ``report`` hears the bytes hashed, piece by piece."""
    starts = range(0, max(size, 1), HASH_PIECE)
    pieces: list[Callable[[], bytes | memoryview]] = [
        lambda a=a: os.pread(fd, min(HASH_PIECE, size - a), a) for a in starts
    ]
    if report is None:
        return _tree_digest(pieces)
    report("hashing", 0, size)
    return _tree_digest(pieces, lambda k: report("hashing", min(k * HASH_PIECE, size), size))


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """Hash of the arrays' names, dtypes, shapes and bytes (the cache's stored checksum)."""
    pieces: list[Callable[[], bytes | memoryview]] = []
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        pieces.append(lambda h=f"{name}:{a.dtype.str}:{a.shape}": h.encode())
        flat = a.reshape(-1).view(np.uint8) if a.size else np.empty(0, dtype=np.uint8)
        for s in range(0, max(flat.shape[0], 1), HASH_PIECE):
            pieces.append(lambda f=flat, s=s: f[s : s + HASH_PIECE].data)  # a memoryview
    return _tree_digest(pieces)


def _cache_key(path: Path, st: os.stat_result, options: dict) -> dict:
    """The cache key less its ``content`` hash (computed only when the rest matches)."""
    return {
        "parser": PARSER_VERSION,
        "source": str(path.resolve()),
        "size": st.st_size,
        "options": options,
    }


def cache_path(source: str | os.PathLike) -> Path:
    """Where the parsed copy of ``source`` lives: ``<cache>/parsed/<name>-<hash>.npz``.

    The name depends on the resolved path only, so a program can compare it with its outputs
    before any work; whether the entry is current is decided by the source's content.
    """
    resolved = str(Path(source).resolve())
    digest = hashlib.sha256(json.dumps(resolved).encode()).hexdigest()[:16]
    return default_cache_dir() / "parsed" / f"{Path(resolved).name}-{digest}.npz"


def _narrow(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` as the smaller ``dtype`` when that round-trips exactly (half stars, small indices)."""
    small = a.astype(dtype)
    return small if np.array_equal(small, a) else a


_CACHE_ARRAYS = ("users", "items", "ratings", "user_ids", "item_ids")


def _load_cached(path: Path, fd: int, key: dict, report: Report | None = None) -> Ratings | None:
    """The cached table when its key matches (size, options, then the hash of the content of
    ``fd``) and every array checks out; else None. A damaged entry gets one note on the
    ``mfrec.data`` logger."""
    target = cache_path(key["source"])
    try:
        if not target.is_file():
            return None
        why = check_npz(target, 64 * target.stat().st_size + (1 << 20))
        if why is None:
            with np.load(target, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            stored = json.loads(str(arrays.pop("key")))
            if not isinstance(stored, dict) or stored.get("content") is None:
                raise ValueError("a key without a content hash")
            if {k: v for k, v in stored.items() if k != "content"} != key:
                return None  # the source (or the options) changed: parse again, silently
            if stored["content"] != content_digest(fd, key["size"], report):
                return None
            why = _check_cached(arrays, key)
    except Exception as e:  # a damaged entry of any kind: parse the file again
        why = f"{type(e).__name__}: {e}"
    if why is None:
        return Ratings(
            arrays["users"].astype(np.int64),
            arrays["items"].astype(np.int64),
            arrays["ratings"].astype(np.float64),
            arrays["user_ids"],
            arrays["item_ids"],
            arrays["timestamps"].astype(np.int64) if "timestamps" in arrays else None,
            source=key["source"],
        )
    logger.warning(f"{path}: ignoring its damaged parse cache {target} ({_cut(why)}); parsed again")
    return None


def _cut(text: str) -> str:
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


def _check_cached(a: dict, key: dict) -> str | None:
    """What is wrong with a cache entry's arrays, or None: names, dtypes, shapes, index ranges,
    finite ratings inside the scale, sorted distinct ids, and the stored checksum."""
    missing = [k for k in (*_CACHE_ARRAYS, "checksum") if k not in a]
    if missing:
        return f"missing {', '.join(missing)}"
    checksum = str(a.pop("checksum"))
    if _arrays_digest(a) != checksum:
        return "checksum mismatch"
    u, i, r, uid, iid = (a[k] for k in _CACHE_ARRAYS)
    ts = a.get("timestamps")
    kinds = {"users": "iu", "items": "iu", "ratings": "f", "user_ids": "iuU", "item_ids": "iuU"}
    for name, ok in (*kinds.items(), *([("timestamps", "iu")] if ts is not None else [])):
        if a[name].dtype.kind not in ok or a[name].ndim != 1:
            return f"{name} has dtype {a[name].dtype} and shape {a[name].shape}"
    n = u.shape[0]
    if n == 0 or i.shape[0] != n or r.shape[0] != n or (ts is not None and ts.shape[0] != n):
        return "columns of different lengths"
    if u.min() < 0 or u.max() >= uid.shape[0] or i.min() < 0 or i.max() >= iid.shape[0]:
        return "an index out of range"
    lo, hi = key["options"]["scale"]
    if not np.all(np.isfinite(r)) or r.min() < lo or r.max() > hi:
        return "a rating not finite or outside the scale"
    if any(ids.shape[0] > 1 and not np.all(ids[1:] > ids[:-1]) for ids in (uid, iid)):
        return "ids not sorted and distinct"
    return None


def _save_cached(key: dict, table: Ratings) -> None:
    """Write the parsed table atomically; an unwritable cache only costs the next parse."""
    target = cache_path(key["source"])
    arrays = {
        "users": _narrow(table.users, np.int32),
        "items": _narrow(table.items, np.int32),
        "ratings": _narrow(table.ratings, np.float32),
        "user_ids": table.user_ids,
        "item_ids": table.item_ids,
    }
    if table.timestamps is not None:
        arrays["timestamps"] = table.timestamps
    arrays["checksum"] = np.array(_arrays_digest(arrays))
    try:  # a cache that cannot be written is no error: the next run parses again
        with atomic_write(target, parents=True) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=np.array(json.dumps(key)), **arrays)  # pyright: ignore[reportArgumentType]  (a **dict may fill savez's allow_pickle)
    except OSError:
        return
