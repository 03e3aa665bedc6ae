"""Side information read into sparse per-entity features: the releases' files, a user's own
CSV/TSV files, implicit feedback and dates, aligned to a Ratings table's id maps."""

from __future__ import annotations

import csv
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from benchmarks.synthetic import generate
from mfrec.data import DataError, Ratings, read_ratings
from mfrec.data.features import (
    implicit_feedback,
    rating_dates,
    read_features,
    release_features,
)

ZIP_REGIONS = set("0123456789") | {"T", "V", "E", "K", "L", "M", "N", "R", "Y"}


def _interval(name: str) -> tuple[float, float]:
    """The [lo, hi) of a quantile-bin feature name such as ``age∈[23,28.8)`` or ``age<23``."""
    rest = re.split(r"[<≥∈]", name, maxsplit=1)[1]
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", rest)]
    if "<" in name:
        return -np.inf, nums[0]
    if "≥" in name:
        return nums[0], np.inf
    return nums[0], nums[1]


def _value(features, e: int, column: str) -> list[str]:
    return [n for n in features.row(e) if n.startswith(column)]


def test_ml100k_users_are_the_u_user_columns(ml100k):
    users, _ = release_features("ml-100k", ml100k.source, ml100k)
    assert users.n_entities == ml100k.n_users == 943
    assert users.kinds == {
        "age": "numeric", "gender": "categorical", "occupation": "categorical",
        "zip1": "categorical",
    }  # fmt: skip
    np.testing.assert_array_equal(users.counts(), np.full(943, 4))
    rows = [line.split("|") for line in (Path(ml100k.source) / "u.user").read_text().splitlines()]
    ages = []
    for uid, age, gender, occupation, zip_code in rows:
        e = ml100k.user_index(int(uid))
        (age_bin,) = _value(users, e, "age")
        lo, hi = _interval(age_bin)
        assert lo <= int(age) < hi, (uid, age, age_bin)
        assert _value(users, e, "gender") == [f"gender={gender}"]
        assert _value(users, e, "occupation") == [f"occupation={occupation}"]
        assert _value(users, e, "zip1") == [f"zip1={zip_code[0]}"]
        ages.append(int(age))
    n_age_bins = sum(n.startswith("age") for n in users.names)
    assert n_age_bins == 5  # quintiles: each holds about a fifth of the users
    per_bin = np.bincount(users.indices[users.indptr[:-1]], minlength=n_age_bins)
    assert per_bin.min() > 0.1 * 943 and per_bin.max() < 0.3 * 943
    assert {n[5:] for n in users.names if n.startswith("zip1")} <= ZIP_REGIONS


def test_ml100k_items_are_the_release_year_and_genre_flags(ml100k):
    _, items = release_features("ml-100k", ml100k.source, ml100k)
    assert items.n_entities == 1682
    genres = [g.split("|")[0] for g in (Path(ml100k.source) / "u.genre").read_text().split("\n")]
    genres = [g for g in genres if g]
    text = (Path(ml100k.source) / "u.item").read_text(encoding="latin-1")
    for line in text.splitlines():
        f = line.split("|")
        e = ml100k.item_index(int(f[0]))
        want = {f"genre={g}" for g, flag in zip(genres, f[5:], strict=True) if flag == "1"}
        assert set(_value(items, e, "genre")) == want
        year = _value(items, e, "year")
        if f[2]:
            lo, hi = _interval(year[0])
            assert lo <= int(f[2][-4:]) < hi
        else:
            assert year == []  # item 267 has no release date


def test_ids_absent_from_the_ratings_are_counted_and_entities_align(ml100k):
    keep = ml100k.user_ids[ml100k.users] <= 500
    part = Ratings.from_raw(
        ml100k.user_ids[ml100k.users][keep], ml100k.item_ids[ml100k.items][keep],
        ml100k.ratings[keep],
    )  # fmt: skip
    users, items = release_features("ml-100k", ml100k.source, part)
    full, _ = release_features("ml-100k", ml100k.source, ml100k)
    assert users.n_entities == 500 and users.n_ignored == 443
    assert "443 rows with ids absent from the ratings ignored" in users.note
    assert items.n_ignored == 1682 - part.n_items
    for e in (0, 123, 499):  # same raw id, same attributes (the age bins are refitted)
        assert users.row(e)[1:] == full.row(ml100k.user_index(part.user_ids[e]))[1:]


def test_implicit_feedback_comes_from_the_training_part_only(ml100k_split):
    train, test = ml100k_split
    N, R = implicit_feedback(train)
    assert N.n_entities == train.n_users and R.n_entities == train.n_items
    assert N.indices.shape[0] == R.indices.shape[0] == len(train)
    for u in (0, 17, 400):
        want = sorted(train.items[train.users == u].tolist())
        assert N.indices[N.indptr[u] : N.indptr[u + 1]].tolist() == want
        assert N.names[want[0]] == f"rated:{train.item_ids[want[0]]}"
    in_n = {(u, i) for u in range(N.n_entities) for i in N.indices[N.indptr[u] : N.indptr[u + 1]]}
    assert not any(
        (u, i) in in_n for u, i in zip(test.users.tolist(), test.items.tolist(), strict=True)
    )
    i = int(train.items[0])
    want = sorted(train.users[train.items == i].tolist())
    assert R.indices[R.indptr[i] : R.indptr[i + 1]].tolist() == want


def test_rating_dates_name_each_rating_s_calendar_period(ml100k):
    for unit, fmt in (("month", "%Y-%m"), ("year", "%Y"), ("day", "%Y-%m-%d")):
        dates = rating_dates(ml100k, unit=unit)
        assert dates.n_entities == len(ml100k)
        np.testing.assert_array_equal(dates.counts(), np.ones(len(ml100k), dtype=np.int64))
        for row in (0, 999, 54_321):
            when = datetime.fromtimestamp(int(ml100k.timestamps[row]), tz=timezone.utc)
            assert dates.row(row) == [f"date={when.strftime(fmt)}"]
    week = rating_dates(ml100k, unit="week")
    for row in (0, 999):
        monday = datetime.strptime(week.row(row)[0][5:], "%Y-%m-%d").replace(tzinfo=timezone.utc)
        lag = datetime.fromtimestamp(int(ml100k.timestamps[row]), tz=timezone.utc) - monday
        assert monday.weekday() == 0 and 0 <= lag.days < 7
    no_time = Ratings.from_raw([1, 2], [1, 1], [3.0, 4.0])
    with pytest.raises(DataError, match="no timestamp column"):
        rating_dates(no_time)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_user_file_reads_categorical_numeric_and_multi_valued_columns(tmp_path):
    ids = np.array([10, 20, 30, 40, 50])
    f = _write(
        tmp_path / "users.csv",
        "user,city,income,tags\n"
        "10,Paris,100,a|b\n"
        "20,Lyon,200,b\n"
        '30,"Paris",300,\n'
        "40,,400,c|a\n"
        "99,Nice,500,a\n",  # no such user: ignored and counted
    )
    feats = read_features(f, ids, what="user", n_bins=2)
    assert feats.kinds == {"city": "categorical", "income": "numeric", "tags": "multi"}
    assert feats.n_ignored == 1 and "1 rows with ids absent" in feats.note
    assert feats.row(0) == ["city=Paris", "income<250", "tags=a", "tags=b"]
    assert feats.row(2) == ["city=Paris", "income≥250"]
    assert feats.row(3) == ["income≥250", "tags=a", "tags=c"]
    assert feats.row(4) == []  # user 50 has no row
    tsv = _write(
        tmp_path / "u.tsv", "id\tcity\tname\n10\tParis\tAl\n20\tRome, It\tBo\n30\tParis\tCy\n"
    )
    in_tsv = read_features(tsv, ids)
    assert in_tsv.row(1) == ["city=Rome, It"]
    assert in_tsv.kinds["name"] == "drop"  # a different value on every row: nothing shared


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,a\n10,x\n20,y,z\n", r"users\.csv:3: expected 2 fields \(id,a\), got 3: '20,y,z'"),
        ("id,a\n10,x\nten,y\n", r"users\.csv:3: the first column is the user id, got 'ten'"),
        ("id,a\n10,x\n10,y\n", r"users\.csv:3: user id '10' repeated \(first at line 2\)"),
        ("id,a\n7,x\n8,y\n", r"users\.csv: none of its 2 user ids is in the ratings"),
        ("id\n10\n", r"users\.csv:1: expected a header"),
    ],
)
def test_bad_user_files_name_file_line_and_text(tmp_path, text, message):
    f = _write(tmp_path / "users.csv", text)
    with pytest.raises(DataError, match=message):
        read_features(f, np.array([10, 20]), what="user")


def test_bad_release_rows_name_file_line_and_text(tmp_path, ml100k):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    src = Path(ml100k.source)
    users = (src / "u.user").read_text().splitlines()
    users[4] = users[4].replace("|", ";", 1)
    _write(folder / "u.user", "\n".join(users) + "\n")
    (folder / "u.item").write_bytes((src / "u.item").read_bytes())
    with pytest.raises(DataError, match=r"u\.user:5: expected 5 '\|'-separated fields .*got 4"):
        release_features("ml-100k", folder, ml100k)
    _write(folder / "u.user", (src / "u.user").read_text())
    items = (src / "u.item").read_text(encoding="latin-1").splitlines()
    items[9] = items[9][:-1] + "2"
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"u\.item:10: genre flags must be 0 or 1"):
        release_features("ml-100k", folder, ml100k)


@pytest.fixture(scope="module")
def ml1m_copy(tmp_path_factory) -> tuple[Path, Ratings]:
    """A generated ml-1m copy plus a users.dat in ml-1m's layout for every generated user."""
    folder = generate("ml-1m", 3_000, tmp_path_factory.mktemp("ml1m"), seed=3)
    ratings = read_ratings(folder / "ratings.dat", delimiter="::")
    rng = np.random.default_rng(0)
    lines = []
    for uid in range(1, int(ratings.user_ids.max()) + 3):  # two users beyond the ratings
        gender, age = "MF"[rng.integers(2)], [1, 18, 25, 35, 45, 50, 56][rng.integers(7)]
        lines.append(f"{uid}::{gender}::{age}::{rng.integers(21)}::{rng.integers(10000):05d}")
    _write(folder / "users.dat", "\n".join(lines) + "\n")
    return folder, ratings


def test_ml1m_users_dat_and_movies_dat(ml1m_copy):
    folder, ratings = ml1m_copy
    users, items = release_features("ml-1m", folder, ratings)
    assert users.n_entities == ratings.n_users and users.n_ignored >= 2
    assert set(users.kinds.values()) == {"categorical"}  # ml-1m's age and occupation are codes
    by_id = {int(x.split("::")[0]): x.split("::") for x in (folder / "users.dat").open()}
    for e in (0, ratings.n_users - 1):
        _, gender, age, occupation, zip_code = by_id[int(ratings.user_ids[e])]
        want = [f"gender={gender}", f"age={age}", f"occupation={occupation}", f"zip1={zip_code[0]}"]
        assert sorted(users.row(e)) == sorted(want)
    movies = (folder / "movies.dat").read_text(encoding="latin-1").splitlines()
    for line in movies[:50]:
        movie, title, genres = line.split("::")
        if int(movie) not in set(ratings.item_ids.tolist()):
            continue
        e = ratings.item_index(int(movie))
        want = {f"genre={g}" for g in genres.split("|")}
        assert set(_value(items, e, "genre")) == want
        lo, hi = _interval(_value(items, e, "year")[0])
        assert lo <= int(title[-5:-1]) < hi


def test_ml25m_movies_csv_reads_as_is_through_the_user_file_reader(tmp_path):
    folder = generate("ml-25m", 3_000, tmp_path, seed=5)
    ratings = read_ratings(folder / "ratings.csv")
    users, items = release_features("ml-25m", folder, ratings)
    assert users is None
    as_file = read_features(folder / "movies.csv", ratings.item_ids)
    assert as_file.kinds == {"title": "year", "genres": "multi"}  # the title itself is dropped
    assert [n.replace("genres=", "genre=") for n in as_file.names] == items.names
    np.testing.assert_array_equal(as_file.indptr, items.indptr)
    np.testing.assert_array_equal(as_file.indices, items.indices)
    with open(folder / "movies.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    quoted = [r for r in rows if "," in r[1]]  # titles with commas, quoted in the file
    assert quoted
    for movie, _, genres in quoted[:20]:
        if int(movie) in set(ratings.item_ids.tolist()):
            e = ratings.item_index(int(movie))
            assert set(_value(items, e, "genre")) == {f"genre={g}" for g in genres.split("|")}
    bad = tmp_path / "bad" / "ml-25m"
    bad.mkdir(parents=True)
    _write(bad / "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,oops\n")
    with pytest.raises(DataError, match=r"movies\.csv:3: expected 3 fields .*got 2: '2,oops'"):
        release_features("ml-25m", bad, ratings)


def test_hstack_puts_the_second_vocabulary_after_the_first(ml100k_split):
    train, _ = ml100k_split
    N, _ = implicit_feedback(train)
    users = read_features_for(train)
    both = users.hstack(N)
    assert both.n_features == users.n_features + N.n_features
    for u in (0, 5):
        assert both.row(u) == users.row(u) + N.row(u)


def read_features_for(train: Ratings):
    return release_features("ml-100k", train.source, train)[0]
