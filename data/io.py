"""Reading delimited ``user item rating [timestamp]`` files, with errors that name file and line."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from data.dataset import Ratings


class DataError(ValueError):
    """A ratings file could not be read; the message names the file and, where known, the line."""


def sniff_delimiter(line: str) -> str | None:
    """``'::'``, tab or comma when the line holds one; ``None`` means any whitespace."""
    for delim in ("::", "\t", ","):
        if delim in line:
            return delim
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_ratings(path: str | os.PathLike, encoding: str = "utf-8") -> Ratings:
    """Read ``user item rating [timestamp]`` rows (tab, comma, ``::`` or spaces; a header allowed).

    User and item ids must be integers; ratings finite numbers. Raises :class:`DataError` naming
    the file, the line number and the offending text.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a ratings file")
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not {encoding} text ({e.reason} at byte {e.start})") from None
    lines = text.splitlines()
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: the file is empty")
    delim = sniff_delimiter(lines[first])
    fields0 = _split(lines[first], delim)
    start = first + 1 if fields0 and not _is_number(fields0[0]) else first
    users, items, ratings, stamps = [], [], [], []
    for n in range(start, len(lines)):
        line = lines[n]
        if not line.strip():
            continue
        fields = _split(line, delim)
        where = f"{path}:{n + 1}"
        if len(fields) < 3:
            raise DataError(f"{where}: expected 'user item rating [timestamp]', got {line!r}")
        try:
            u, i = int(fields[0]), int(fields[1])
        except ValueError:
            raise DataError(f"{where}: user and item ids must be integers, got {line!r}") from None
        try:
            r = float(fields[2])
        except ValueError:
            raise DataError(f"{where}: rating {fields[2]!r} is not a number") from None
        if not math.isfinite(r):
            raise DataError(f"{where}: rating {fields[2]!r} is not finite")
        users.append(u)
        items.append(i)
        ratings.append(r)
        if len(fields) > 3:
            stamps.append(fields[3])
    if not ratings:
        raise DataError(f"{path}: no ratings found (only a header?)")
    ts = None
    if len(stamps) == len(ratings) and all(_is_number(s) for s in stamps):
        ts = np.array([int(float(s)) for s in stamps], dtype=np.int64)
    return Ratings.from_raw(
        np.array(users, dtype=np.int64),
        np.array(items, dtype=np.int64),
        np.array(ratings, dtype=np.float64),
        ts,
        source=str(path),
    )


def _split(line: str, delim: str | None) -> list[str]:
    return [f.strip() for f in line.strip().split(delim)]


def align(train: Ratings, test: Ratings) -> tuple[Ratings, int]:
    """``test`` re-indexed with ``train``'s id maps; rows with ids unseen in training are dropped.

    Returns the aligned table and the number of rows dropped.
    """
    u = _map(train.user_ids, test.user_ids[test.users])
    i = _map(train.item_ids, test.item_ids[test.items])
    keep = (u >= 0) & (i >= 0)
    ts = None if test.timestamps is None else test.timestamps[keep]
    out = Ratings(
        u[keep],
        i[keep],
        test.ratings[keep],
        train.user_ids,
        train.item_ids,
        ts,
        train.titles,
        test.source,
    )
    return out, int((~keep).sum())


def _map(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(ids, raw)
    pos = np.minimum(pos, ids.shape[0] - 1)
    return np.where(ids[pos] == raw, pos, -1).astype(np.int64)
