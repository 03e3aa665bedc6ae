"""Side information as sparse per-entity features, aligned to a :class:`Ratings` table's ids.

Three sources, one output type (:class:`Features`: a CSR matrix of feature indices plus the
vocabulary of feature names):

- a MovieLens release's own files (:func:`release_features`): ml-100k ``u.user`` (age, gender,
  occupation, first zip digit) and ``u.item`` (release year, genres); ml-1m ``users.dat`` and
  the ``movies.dat`` of ml-1m and ml-10m (year in the title, genres); the ``movies.csv`` of
  ml-latest-small, ml-20m, ml-25m and ml-32m (year in the title, genres);
- a user's own CSV or TSV file with a header (:func:`read_features`): the first column is the
  raw id, every other column is categorical, numeric (binned by quantiles) or ``|``-separated
  multi-valued (see :func:`read_features` for how a column's kind is chosen);
- the ratings themselves: the implicit feedback of SVD++ (:func:`implicit_feedback`, from the
  training part only) and the rating's date (:func:`rating_dates`).

Rows whose id is absent from the ratings are counted (``Features.n_ignored``, one line in
``Features.note``) and ignored; a file that matches no id at all is an error, as is a
malformed row (:class:`DataError` naming the file, the line and its text).
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mfrec.data.dataset import Ratings
from mfrec.data.parse import DataError
from mfrec.data.registry import RELEASES, get_release

__all__ = [
    "KINDS",
    "Features",
    "date_features",
    "date_periods",
    "implicit_feedback",
    "rating_dates",
    "cold_ratings",
    "cold_rows",
    "read_features",
    "release_beside",
    "release_files",
    "release_features",
    "with_cold_rows",
]

KINDS = ("categorical", "numeric", "multi")
"""A feature column's kinds: one value, a number binned by quantiles, ``|``-separated values."""

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flags of ml-100k's ``u.item``, in column order (as its ``u.genre`` lists them)."""

USER_FILES = {"ml-100k": "u.user", "ml-1m": "users.dat"}
"""The releases that ship user attributes, and the file that holds them."""

RELEASE_ORDER = ("ml-100k", "ml-1m", "ml-10m", "ml-latest-small")
"""The releases :func:`release_beside` tries, in turn, on a folder of unknown name (one
``movies.csv`` release stands for all: their files read alike)."""

_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class Features:
    """Binary features of ``n_entities`` users or items (or ratings) as CSR.

    Entity e has the features ``indices[indptr[e]:indptr[e + 1]]`` (distinct, ascending);
    ``names[f]`` names feature f (``"genre=Comedy"``, ``"age∈[25,31)"``, ``"rated:50"``).
    Entity e is the one at index e of the :class:`Ratings` id map the features were read for.
    """

    indptr: np.ndarray  # (n_entities + 1,) int64
    indices: np.ndarray  # (nnz,) int64
    names: list[str]
    kinds: dict[str, str] = field(default_factory=dict)  # column -> its kind (see KINDS)
    n_ignored: int = 0  # rows whose id the ratings do not have
    source: str = ""

    @property
    def n_entities(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def n_features(self) -> int:
        return len(self.names)

    def row(self, e: int) -> list[str]:
        """The names of entity ``e``'s features."""
        return [self.names[f] for f in self.indices[self.indptr[e] : self.indptr[e + 1]]]

    def counts(self) -> np.ndarray:
        """The number of features of each entity, shape (n_entities,)."""
        return np.diff(self.indptr)

    @property
    def note(self) -> str:
        """One line for the user: the source, and how many of its rows were ignored."""
        if not self.n_ignored:
            return ""
        return f"{self.source}: {self.n_ignored:,} rows with ids absent from the ratings ignored"

    def take(self, rows: np.ndarray) -> Features:
        """The features of the entities ``rows`` (in that order), on the same vocabulary."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.counts()[rows]
        starts = self.indptr[rows]
        first = np.cumsum(counts) - counts  # each row's offset in the result
        pos = np.arange(int(counts.sum())) - np.repeat(first - starts, counts)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return dataclasses.replace(self, indptr=indptr, indices=self.indices[pos])

    def hstack(self, other: Features) -> Features:
        """These features and ``other``'s side by side (other's indices shifted past ours)."""
        if other.n_entities != self.n_entities:
            raise ValueError(
                f"cannot stack features of {self.n_entities} and {other.n_entities} entities"
            )
        n = np.arange(self.n_entities)
        rows = np.concatenate([np.repeat(n, self.counts()), np.repeat(n, other.counts())])
        indices = np.concatenate([self.indices, other.indices + self.n_features])
        order = np.argsort(rows, kind="stable")  # ours first within each row
        indptr = self.indptr + other.indptr
        kinds = {**self.kinds, **other.kinds}
        source = " + ".join(s for s in (self.source, other.source) if s)
        return Features(
            indptr, indices[order], self.names + other.names, kinds,
            self.n_ignored + other.n_ignored, source,
        )  # fmt: skip


# --- building ---------------------------------------------------------------------------


@dataclass
class _Table:
    """Parsed rows of a feature file: the column names after the id, and per row its line
    number, raw id text and values."""

    path: Path
    columns: list[str]
    lines: list[int]
    ids: list[str]
    values: list[list[str]]


def _match_ids(table: _Table, ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(entity index of each matched row, positions of those rows); errors on a bad or repeated
    id, or when no row matches."""
    integer = np.issubdtype(ids.dtype, np.integer)
    index = {(int(x) if integer else str(x)): e for e, x in enumerate(ids.tolist())}
    entity, keep, first = [], [], {}
    for n, (line, raw) in enumerate(zip(table.lines, table.ids, strict=True)):
        key: int | str = raw.strip()
        if integer:
            try:
                key = int(key)
            except ValueError:
                raise DataError(
                    f"{table.path}:{line}: the first column is the {what} id, got {raw!r} "
                    "(the ratings' ids are integers)"
                ) from None
        if key in first:
            raise DataError(
                f"{table.path}:{line}: {what} id {raw!r} repeated (first at line {first[key]})"
            )
        first[key] = line
        if key in index:
            entity.append(index[key])
            keep.append(n)
    if not entity:
        raise DataError(
            f"{table.path}: none of its {len(table.ids):,} {what} ids is in the ratings "
            f"(first: {table.ids[0]!r} at line {table.lines[0]})"
            if table.ids
            else f"{table.path}: no rows"
        )
    return np.asarray(entity, dtype=np.int64), np.asarray(keep, dtype=np.int64)


def _column_kind(values: list[str]) -> str:
    """The kind of a column (see :func:`read_features`), or ``"year"``/``"drop"``."""
    present = [v for v in values if v]
    if any("|" in v for v in present):
        return "multi"
    if present and all(_is_number(v) for v in present):
        return "numeric"
    if len(set(present)) == len(present) > 1:  # one value per row: an identifier or a title
        years = sum(bool(_YEAR.search(v)) for v in present)
        return "year" if 2 * years >= len(present) else "drop"
    return "categorical"


def _is_number(text: str) -> bool:
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False


def _bin_names(column: str, edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return [f"{column}=all"]
    names = [f"{column}<{edges[0]:g}"]
    names += [f"{column}∈[{a:g},{b:g})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return names + [f"{column}≥{edges[-1]:g}"]


def _column_tokens(
    column: str, kind: str, values: list[str], n_bins: int
) -> tuple[list[list[str]], list[str]]:
    """(each row's feature names, the column's names in order) for one column of ``kind``:
    bins in ascending order, values sorted."""
    if kind == "year":
        years = [m.group(1) if (m := _YEAR.search(v)) else "" for v in values]
        return _column_tokens("year", "numeric", years, n_bins)
    if kind != "numeric":
        split = (lambda v: v.split("|")) if kind == "multi" else (lambda v: [v])
        tokens = [[f"{column}={t}" for t in dict.fromkeys(map(str.strip, split(v))) if t]
                  for v in values]  # fmt: skip
        return tokens, sorted({t for row in tokens for t in row})
    # quantile bins of the present values; the lowest edge above the minimum, so bin 0 is used
    x = np.array([float(v) if v else np.nan for v in values])
    present = x[~np.isnan(x)]
    if not present.size:
        return [[] for _ in values], []
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    edges = edges[edges > present.min()]
    names = _bin_names(column, edges)
    bins = np.searchsorted(edges, np.nan_to_num(x), side="right")
    tokens = [[names[b]] if not np.isnan(v) else [] for v, b in zip(x, bins, strict=True)]
    used = set(bins[~np.isnan(x)].tolist())
    return tokens, [name for b, name in enumerate(names) if b in used]


def _features(
    table: _Table,
    ids: np.ndarray,
    what: str,
    kinds: dict[str, str] | None,
    n_bins: int,
) -> Features:
    """Features of every entity in ``ids`` from the rows of ``table`` (kinds inferred when not
    given; an entity with no row has no features)."""
    entity, keep = _match_ids(table, ids, what)
    rows = [table.values[n] for n in keep]
    tokens: list[list[str]] = [[] for _ in rows]
    vocabulary: list[str] = []
    chosen: dict[str, str] = {}
    for c, column in enumerate(table.columns):
        values = [r[c].strip() for r in rows]
        kind = kinds[column] if kinds else _column_kind(values)
        chosen[column] = kind
        if kind == "drop":
            continue
        column_tokens, names = _column_tokens(column, kind, values, n_bins)
        vocabulary += names
        for row_tokens, new in zip(tokens, column_tokens, strict=True):
            row_tokens.extend(new)
    position = {name: f for f, name in enumerate(vocabulary)}
    per_entity: list[list[int]] = [[] for _ in range(ids.shape[0])]
    for e, row in zip(entity.tolist(), tokens, strict=True):
        per_entity[e] = sorted(position[t] for t in row)
    counts = np.array([len(r) for r in per_entity], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.asarray([f for r in per_entity for f in r], dtype=np.int64)
    n_ignored = len(table.ids) - entity.shape[0]
    return Features(indptr, indices, vocabulary, chosen, n_ignored, str(table.path))


# --- a user's own file ------------------------------------------------------------------


def read_features(
    path: str | Path, ids: np.ndarray, *, what: str = "item", n_bins: int = 5
) -> Features:
    """Features of the entities ``ids`` (a :class:`Ratings` ``user_ids`` or ``item_ids``) from a
    CSV or TSV file with a header whose first column is the raw id.

    A column is ``multi`` when any value holds ``|`` (each value a feature), ``numeric`` when
    every present value is a number (``n_bins`` quantile bins of the matched rows), and
    ``categorical`` otherwise, except that a column with a different value on every row (a
    title, an identifier) carries nothing shared: it is dropped, unless most values end in a
    year ``(1995)``, which becomes a numeric ``year`` feature. A MovieLens ``movies.csv``
    therefore reads as it is: the year in the title, and the genres. Empty values are missing.
    The delimiter is a tab when the header holds one, else a comma (quotes as in CSV).
    """
    path = Path(path)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins!r}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        header_line = f.readline()
        delimiter = "\t" if "\t" in header_line else ","
        header = next(csv.reader([header_line], delimiter=delimiter), [])
        header = [h.strip() for h in header]
        if len(header) < 2 or not all(header):
            raise DataError(
                f"{path}:1: expected a header 'id{delimiter}feature...' with named columns, "
                f"got {header_line.rstrip()!r}"
            )
        table = _Table(path, header[1:], [], [], [])
        reader = csv.reader(f, delimiter=delimiter)
        line = 1
        for fields in reader:
            start, line = line + 1, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"{path}:{start}: expected {len(header)} fields ({delimiter.join(header)}), "
                    f"got {len(fields)}: {delimiter.join(fields)!r}"
                )
            table.lines.append(start)
            table.ids.append(fields[0])
            table.values.append(fields[1:])
    return _features(table, np.asarray(ids), what, None, n_bins)


# --- the releases' own files ------------------------------------------------------------


def _read_split(
    path: Path, sep: str, n_fields: int, layout: str, encoding: str
) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank line of a ``sep``-separated release file."""
    rows = []
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        for n, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split(sep)
            if len(fields) != n_fields or not fields[0].strip().isdigit():
                raise DataError(
                    f"{path}:{n}: expected {n_fields} {sep!r}-separated fields ({layout}), "
                    f"got {len(fields)}: {text!r}"
                )
            rows.append((n, fields))
    return rows


def _table(path: Path, columns: list[str], rows: list[tuple[int, list[str]]]) -> _Table:
    table = _Table(path, columns, [], [], [])
    for n, values in rows:
        table.lines.append(n)
        table.ids.append(values[0])
        table.values.append(values[1:])
    return table


def _ml100k_users(path: Path) -> tuple[_Table, dict[str, str]]:
    rows = _read_split(path, "|", 5, "user id|age|gender|occupation|zip code", "latin-1")
    rows = [(n, [u, age, g, occ, z.strip()[:1]]) for n, (u, age, g, occ, z) in rows]
    kinds = {"age": "numeric", "gender": "categorical", "occupation": "categorical"}
    kinds["zip1"] = "categorical"  # the first character of the zip code: the region
    return _table(path, list(kinds), rows), kinds


def _ml1m_users(path: Path) -> tuple[_Table, dict[str, str]]:
    rows = _read_split(path, "::", 5, "UserID::Gender::Age::Occupation::Zip-code", "latin-1")
    rows = [(n, [u, g, age, occ, z.strip()[:1]]) for n, (u, g, age, occ, z) in rows]
    columns = ["gender", "age", "occupation", "zip1"]  # ml-1m's age and occupation are codes
    return _table(path, columns, rows), dict.fromkeys(columns, "categorical")


def _ml100k_items(path: Path) -> tuple[_Table, dict[str, str]]:
    genres = _ml100k_genre_names(path.parent / "u.genre")
    layout = "movie id|title|release date|video release date|IMDb URL|19 genre flags"
    rows = []
    for n, fields in _read_split(path, "|", 5 + len(genres), layout, "latin-1"):
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataError(f"{path}:{n}: genre flags must be 0 or 1, got {'|'.join(flags)!r}")
        date = fields[2].strip()
        year = date[-4:] if len(date) >= 4 and date[-4:].isdigit() else ""
        on = "|".join(g for g, flag in zip(genres, flags, strict=True) if flag == "1")
        rows.append((n, [fields[0], year, on]))
    return _table(path, ["year", "genre"], rows), {"year": "numeric", "genre": "multi"}


def _ml100k_genre_names(path: Path) -> tuple[str, ...]:
    """The genre names of ``u.genre`` (``name|index`` lines) when present, else the README's."""
    if not path.is_file():
        return ML100K_GENRES
    names: dict[int, str] = {}
    for n, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        name, _, index = line.rpartition("|")
        if not name or not index.strip().isdigit():
            raise DataError(f"{path}:{n}: expected 'genre|index', got {line!r}")
        names[int(index)] = name
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: genre indices {sorted(names)} are not 0..{len(names) - 1}")
    return tuple(names[g] for g in range(len(names)))


def _movies_dat(path: Path, encoding: str) -> tuple[_Table, dict[str, str]]:
    rows = _read_split(path, "::", 3, "MovieID::Title::Genres", encoding)
    return _title_genres(path, rows)


def _movies_csv(path: Path) -> tuple[_Table, dict[str, str]]:
    rows = []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if [h.strip() for h in header[:3]] != ["movieId", "title", "genres"]:
            raise DataError(f"{path}:1: expected the header 'movieId,title,genres', got {header!r}")
        line = 1
        for fields in reader:
            start, line = line + 1, reader.line_num
            if not fields:
                continue
            if len(fields) != 3 or not fields[0].strip().isdigit():
                raise DataError(
                    f"{path}:{start}: expected 3 fields (movieId,title,genres), got "
                    f"{len(fields)}: {','.join(fields)!r}"
                )
            rows.append((start, fields))
    return _title_genres(path, rows)


def _title_genres(path: Path, rows: list[tuple[int, list[str]]]) -> tuple[_Table, dict[str, str]]:
    """(id, year from the title, genres) rows."""
    out = []
    for n, (movie, title, genres) in rows:
        m = _YEAR.search(title)
        out.append((n, [movie, m.group(1) if m else "", genres.strip()]))
    return _table(path, ["year", "genre"], out), {"year": "numeric", "genre": "multi"}


def release_features(
    name: str, folder: str | Path, ratings: Ratings, *, n_bins: int = 5
) -> tuple[Features | None, Features | None]:
    """(user features, item features) of release ``name`` from its files in ``folder``, aligned
    to ``ratings.user_ids`` and ``ratings.item_ids``; None where the release has none.

    Users: ml-100k ``u.user`` (age in ``n_bins`` quantile bins, gender, occupation, first zip
    character) and ml-1m ``users.dat`` (gender, age code, occupation code, first zip
    character); the other releases have no user file. Items: the release year (``u.item``'s
    release date, else the ``(1995)`` in the title) in ``n_bins`` quantile bins, and the genres.
    """
    rel = get_release(name)
    folder = Path(folder)
    users = None
    if name in USER_FILES:
        path = folder / USER_FILES[name]
        if not path.is_file():
            raise DataError(f"{path}: no such file ({name} ships its user attributes there)")
        table, kinds = (_ml100k_users if name == "ml-100k" else _ml1m_users)(path)
        users = _features(table, ratings.user_ids, "user", kinds, n_bins)
    path = folder / rel.movies_file
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if rel.movies_format == "pipe":
        table, kinds = _ml100k_items(path)
    elif rel.movies_format == "colons":
        table, kinds = _movies_dat(path, rel.movies_encoding)
    else:
        table, kinds = _movies_csv(path)
    items = _features(table, ratings.item_ids, "item", kinds, n_bins)
    return users, items


def release_files(name: str) -> tuple[str, ...]:
    """The feature files of release ``name``: its user file (where it ships one) and movies."""
    return (*([USER_FILES[name]] if name in USER_FILES else []), get_release(name).movies_file)


def release_beside(path: str | Path) -> tuple[str, Path] | None:
    """(release name, folder) when the folder of the ratings file ``path`` holds a MovieLens
    release's feature files, else None: a folder named as a release (``ml-100k``,
    ``ml-10M100K``, ...) that holds its movie file, else the first release whose files are
    there (``u.item``: ml-100k; ``users.dat`` and ``movies.dat``: ml-1m; ``movies.dat``:
    ml-10m; ``movies.csv``: the ``movies.csv`` releases, which share one layout)."""
    folder = Path(path).resolve().parent
    releases = [get_release(n) for n in RELEASE_ORDER]
    named = [r for r in RELEASES.values() if folder.name in (r.name, r.folder)]
    for rel in named + releases:
        if all((folder / f).is_file() for f in release_files(rel.name)):
            return rel.name, folder
    return None


# --- cold rows --------------------------------------------------------------------------


def with_cold_rows(
    train: Ratings,
    test: Ratings,
    read: Callable[[Ratings], tuple[Features | None, Features | None]],
    sides: tuple[str, ...] = ("user", "item"),
) -> tuple[Ratings, Features | None, Features | None]:
    """(``train`` on widened id maps, its user and item features): every user and item of
    ``test`` (raw ids, any id maps) that ``train`` lacks but the features describe becomes a
    *cold row*, a row with features and no training ratings, which a feature model scores
    from its features instead of the fallback. ``read(ratings)`` reads the features for a
    table's id maps (as :func:`read_features` or :func:`release_features` do); a test id
    without features stays unknown, and feature rows of ids in neither part are counted in
    ``note`` and ignored as before. ``sides``: which of "user" and "item" get cold rows (a
    test id of the other side that ``train`` lacks stays unknown)."""
    wide = train.with_ids(
        test.user_ids[np.unique(test.users)], test.item_ids[np.unique(test.items)]
    )
    users, items = read(wide)
    keep = []
    for side, ids, known, features in (("user", wide.user_ids, train.user_ids, users),
                                       ("item", wide.item_ids, train.item_ids, items)):  # fmt: skip
        in_train = np.isin(ids, known)
        has = np.zeros(ids.shape[0], bool)
        if features is not None and side in sides:
            has = features.counts() > 0
        keep.append(np.flatnonzero(in_train | has))
    ku, ki = keep
    out = train.with_ids(wide.user_ids[ku], wide.item_ids[ki])
    return (
        out,
        users.take(ku) if users is not None else None,
        items.take(ki) if items is not None else None,
    )


def cold_rows(ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """(users, items): the rows of ``ratings``' id maps that have no rating in it."""
    return (
        np.flatnonzero(np.bincount(ratings.users, minlength=ratings.n_users) == 0),
        np.flatnonzero(np.bincount(ratings.items, minlength=ratings.n_items) == 0),
    )


def cold_ratings(train: Ratings, test: Ratings) -> int:
    """How many ratings of ``test`` (on ``train``'s indices, see :func:`align`) have a cold
    user or item: a row of ``train`` with no rating in it, scored from its features."""
    users, items = cold_rows(train)
    return int(np.count_nonzero(np.isin(test.users, users) | np.isin(test.items, items)))


# --- from the ratings -------------------------------------------------------------------


def implicit_feedback(train: Ratings) -> tuple[Features, Features]:
    """(N, R): N(u) the items user u rated, R(i) the users who rated item i, in ``train`` only.

    Pass the *training* part (e.g. ``ratings.subset(train_index)``): nothing of the test part
    may enter. Both are aligned to ``train``'s id maps (an entity without training ratings has
    an empty set); feature names are ``rated:<raw item id>`` and ``rater:<raw user id>``.
    """
    by_user = sets_by_row(train.users, train.items, train.n_users, train.n_items)
    by_item = sets_by_row(train.items, train.users, train.n_items, train.n_users)
    n_names = [f"rated:{x}" for x in train.item_ids.tolist()]
    r_names = [f"rater:{x}" for x in train.user_ids.tolist()]
    source = train.source or "ratings"
    return (
        Features(*by_user, n_names, {"rated": "multi"}, 0, f"{source} (training part)"),
        Features(*by_item, r_names, {"rater": "multi"}, 0, f"{source} (training part)"),
    )


def sets_by_row(
    rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) of the distinct ``cols`` of each row, ascending."""
    key = np.unique(rows.astype(np.int64) * n_cols + cols.astype(np.int64))
    r, c = np.divmod(key, n_cols)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n_rows))]).astype(np.int64)
    return indptr, c.astype(np.int64)


DATE_UNITS = ("year", "month", "week", "day")


def rating_dates(ratings: Ratings, *, unit: str = "month") -> Features:
    """One feature per rating row: its date (UTC) truncated to ``unit`` (see ``DATE_UNITS``).

    The vocabulary is every period between the first and the last rating, in calendar order
    (``"date=1997-09"``), so a test rating's period has a name even when no training rating
    fell in it. Needs the ratings file's timestamp column.
    """
    if ratings.timestamps is None:
        raise DataError(f"{ratings.source or 'the ratings'}: no timestamp column to date ratings")
    period = date_periods(ratings.timestamps, unit)
    lo, hi = (int(period.min()), int(period.max())) if period.size else (0, -1)
    return date_features(period, lo, hi, unit, ratings.source)


def date_periods(timestamps, unit: str = "month") -> np.ndarray:
    """Each timestamp's (seconds since 1970, UTC) period number in ``unit`` (``DATE_UNITS``),
    counted from 1970: its day, its week (from Monday), its month or its year."""
    if unit not in DATE_UNITS:
        raise ValueError(f"unit must be one of {DATE_UNITS}, got {unit!r}")
    ts = np.asarray(timestamps, dtype=np.int64)
    days = ts // 86_400
    if unit == "day":
        return days
    if unit == "week":
        return (days + 3) // 7  # weeks start on Monday (1970-01-01 was a Thursday)
    dt = ts.astype("datetime64[s]")
    return dt.astype("datetime64[M]" if unit == "month" else "datetime64[Y]").astype(np.int64)


def date_features(period: np.ndarray, lo: int, hi: int, unit: str, source: str = "") -> Features:
    """One feature per row: its ``period`` (:func:`date_periods`) among the vocabulary of every
    ``unit`` period from ``lo`` to ``hi``; a period outside counts as the nearest end."""
    names = [f"date={_period_label(p, unit)}" for p in range(lo, hi + 1)]
    indptr = np.arange(period.shape[0] + 1, dtype=np.int64)
    index = np.clip(np.asarray(period, dtype=np.int64) - lo, 0, max(hi - lo, 0))
    return Features(indptr, index, names, {"date": unit}, 0, source)


def _period_label(p: int, unit: str) -> str:
    if unit == "year":
        return str(1970 + p)
    if unit == "month":
        return f"{1970 + p // 12}-{p % 12 + 1:02d}"
    day = p if unit == "day" else 7 * p - 3
    return datetime.fromtimestamp(day * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
