"""Private parsing kernels: loops over the raw bytes of a ratings file, no validation, no I/O.

Status codes returned by :func:`_parse_rows` (the wrapper in :mod:`mfrec.data.parse` turns them into
messages that name the file, the line and its text).
"""

from __future__ import annotations

import numpy as np

from mfrec._internal import njit

OK = 0
TOO_FEW_FIELDS = 1
BAD_USER = 2
BAD_ITEM = 3
BAD_RATING = 4
OUT_OF_SCALE = 5
LINE_TOO_LONG = 6

# A line longer than this many bytes is refused (the wrapper quotes only its start).
MAX_LINE = 1 << 16

# 10**e is exact in float64 for e <= 22, and so is a mantissa below 2**53: one division or
# multiplication of two exact numbers is then correctly rounded, exactly as ``float(text)`` is.
_POW10 = np.array([10.0**e for e in range(23)])
_MAX_EXACT = 2**53


@njit
def _is_space(c):
    return c == 32 or c == 9 or c == 13


@njit
def _parse_int(buf, a, b):
    """(ok, value) of an optionally signed decimal integer in ``buf[a:b]`` (at most 18 digits)."""
    if a >= b:
        return False, 0
    neg = False
    if buf[a] == 45 or buf[a] == 43:  # '-' or '+'
        neg = buf[a] == 45
        a += 1
    if a >= b or b - a > 18:
        return False, 0
    v = 0
    for p in range(a, b):
        c = int(buf[p])  # int: a uint8 would wrap under NUMBA_DISABLE_JIT=1
        if c < 48 or c > 57:
            return False, 0
        v = v * 10 + (c - 48)
    return True, -v if neg else v


@njit
def _parse_float(buf, a, b, pow10):
    """(status, value) of a decimal number in ``buf[a:b]``: 0 exact, 1 not a number, 2 slow.

    ``[+-]digits[.digits][(e|E)[+-]digits]``; "slow" means valid but outside the exactly
    rounded fast path (more than 15 significant digits or a large exponent).
    """
    if a >= b:
        return 1, 0.0
    neg = False
    if buf[a] == 45 or buf[a] == 43:
        neg = buf[a] == 45
        a += 1
    m = 0
    n_digits = 0
    scale = 0
    p = a
    while p < b and 48 <= buf[p] <= 57:
        if n_digits < 18:
            m = m * 10 + (int(buf[p]) - 48)
        else:
            scale += 1
        n_digits += 1
        p += 1
    if p < b and buf[p] == 46:  # '.'
        p += 1
        while p < b and 48 <= buf[p] <= 57:
            if n_digits < 18:
                m = m * 10 + (int(buf[p]) - 48)
                scale -= 1
            n_digits += 1
            p += 1
    if n_digits == 0:
        return 1, 0.0
    if p < b and (buf[p] == 101 or buf[p] == 69):  # 'e' or 'E'
        ok, e = _parse_int(buf, p + 1, b)
        if not ok:
            return 1, 0.0
        scale += e
        p = b
    if p != b:
        return 1, 0.0
    if n_digits > 15 or m >= _MAX_EXACT or scale > 22 or scale < -22:
        return 2, 0.0
    v = m * pow10[scale] if scale >= 0 else m / pow10[-scale]
    return 0, -v if neg else v


@njit
def _split_line(buf, p, delim, starts, ends):
    """Fields of the line starting at ``p``, trimmed, in one pass: (n_fields, end_of_line).

    An empty ``delim`` splits on runs of spaces and tabs; otherwise on the exact byte sequence.
    Only the first ``len(starts)`` fields are recorded; ``end_of_line`` is the '\\n' (or the end).
    """
    n = buf.shape[0]
    cap = starts.shape[0]
    nd = delim.shape[0]
    nf = 0
    if nd == 0:
        while True:
            while p < n and buf[p] != 10 and _is_space(buf[p]):
                p += 1
            if p >= n or buf[p] == 10:
                return nf, p
            s = p
            while p < n and buf[p] != 10 and not _is_space(buf[p]):
                p += 1
            if nf < cap:
                starts[nf] = s
                ends[nf] = p
            nf += 1
    d0 = delim[0]
    d1 = delim[nd - 1]
    s = p
    while True:
        end = p >= n or buf[p] == 10
        if end or (buf[p] == d0 and (nd == 1 or (p + 1 < n and buf[p + 1] == d1))):
            a, b = s, p
            while a < b and _is_space(buf[a]):
                a += 1
            while b > a and _is_space(buf[b - 1]):
                b -= 1
            if nf < cap:
                starts[nf] = a
                ends[nf] = b
            nf += 1
            if end:
                return nf, p
            p += nd
            s = p
        else:
            p += 1


@njit
def _parse_rows(
    buf, start, line0, delim, lo, hi, stop_row, users, items, ratings, stamps, slow, slow_at
):
    """Parse ``user item rating [timestamp]`` rows from ``buf[start:]`` into the output arrays.

    Blank lines are skipped. A rating that needs the slow path gets NaN in ``ratings``, its row
    in ``slow`` and its line's start in ``slow_at``. Stops at the first bad row (a line over
    ``MAX_LINE`` bytes is one), or before row ``stop_row`` when it is >= 0. Returns
    ``(n_rows, status, line_no, line_start, all_stamps, n_slow, max_fields)``: ``line_no``
    (1-based) and ``line_start`` locate the bad (or stop) row; ``max_fields`` is the most
    fields a data row had.
    """
    n = buf.shape[0]
    starts = np.empty(4, dtype=np.int64)
    ends = np.empty(4, dtype=np.int64)
    pow10 = _POW10
    row = 0
    n_slow = 0
    all_stamps = True
    max_fields = 0
    line_no = line0
    p = start
    while p < n:
        nf, q = _split_line(buf, p, delim, starts, ends)
        if q - p > MAX_LINE:
            return row, LINE_TOO_LONG, line_no, p, all_stamps, n_slow, max_fields
        blank = nf == 0 or (nf == 1 and starts[0] == ends[0])
        if not blank:
            if row == stop_row:
                return row, OK, line_no, p, all_stamps, n_slow, max_fields
            if nf < 3:
                return row, TOO_FEW_FIELDS, line_no, p, all_stamps, n_slow, max_fields
            ok, u = _parse_int(buf, starts[0], ends[0])
            if not ok:
                return row, BAD_USER, line_no, p, all_stamps, n_slow, max_fields
            ok, i = _parse_int(buf, starts[1], ends[1])
            if not ok:
                return row, BAD_ITEM, line_no, p, all_stamps, n_slow, max_fields
            status, r = _parse_float(buf, starts[2], ends[2], pow10)
            if status == 1:
                return row, BAD_RATING, line_no, p, all_stamps, n_slow, max_fields
            if status == 2:
                r = np.nan
                slow[n_slow] = row
                slow_at[n_slow] = p
                n_slow += 1
            elif r < lo or r > hi:
                return row, OUT_OF_SCALE, line_no, p, all_stamps, n_slow, max_fields
            max_fields = max(max_fields, nf)
            users[row] = u
            items[row] = i
            ratings[row] = r
            if all_stamps and nf >= 4:
                ok, t = _parse_int(buf, starts[3], ends[3])
                if ok:
                    stamps[row] = t
                else:
                    all_stamps = False
            else:
                all_stamps = False
            row += 1
        line_no += 1
        p = q + 1
    return row, OK, line_no, p, all_stamps, n_slow, max_fields


@njit
def _count_newlines(buf, a, b):
    """Number of '\\n' bytes in ``buf[a:b]``."""
    count = 0
    for p in range(a, b):
        if buf[p] == 10:
            count += 1
    return count


@njit
def _duplicates(users, items, n_users, n_items, keep):
    """Mark repeated (user, item) pairs; returns the first repeat as (earlier_row, later_row).

    Rows are visited user by user (a stable counting sort), in file order within a user; an
    item already seen for the same user is a repeat. ``keep[j]`` ends False for every row that a
    later row with the same pair overrides (keep-last). (-1, -1) when there is no repeat.
    """
    n = users.shape[0]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    for j in range(n):
        indptr[users[j] + 1] += 1
    for u in range(n_users):
        indptr[u + 1] += indptr[u]
    fill = indptr[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for j in range(n):
        order[fill[users[j]]] = j
        fill[users[j]] += 1
    owner = np.full(n_items, -1, dtype=np.int64)
    last = np.empty(n_items, dtype=np.int64)
    first_a = -1
    first_b = -1
    for u in range(n_users):
        for t in range(indptr[u], indptr[u + 1]):
            j = order[t]
            i = items[j]
            if owner[i] == u:
                keep[last[i]] = False
                if first_b < 0 or j < first_b:
                    first_a = last[i]
                    first_b = j
            owner[i] = u
            last[i] = j
    return first_a, first_b


@njit
def _dense_index(raw, hi, index):
    """Sorted distinct values of ``raw`` (all in [0, hi]) and each entry's rank among them.

    Writes the ranks into ``index`` and returns the distinct values: a presence table over
    [0, hi], its running count, then one lookup per entry (O(n + hi), no sort).
    """
    rank = np.zeros(hi + 1, dtype=np.int64)
    for j in range(raw.shape[0]):
        rank[raw[j]] = 1
    n_distinct = 0
    for v in range(hi + 1):
        if rank[v]:
            rank[v] = n_distinct
            n_distinct += 1
        else:
            rank[v] = -1
    ids = np.empty(n_distinct, dtype=np.int64)
    for v in range(hi + 1):
        if rank[v] >= 0:
            ids[rank[v]] = v
    for j in range(raw.shape[0]):
        index[j] = rank[raw[j]]
    return ids
