"""MovieLens-like synthetic ratings in each release's own layout, with a known low-rank truth.

Run: ``python -m benchmarks.synthetic --like ml-25m --ratings 25000000 --out DIR`` (or call
:func:`generate`). Writes ``DIR/<release folder>/`` holding the release's ratings and movies
files (``u.data`` + ``u.item``, ``ratings.dat`` + ``movies.dat`` or ``ratings.csv`` +
``movies.csv``: the separators, header, rating format and title encoding of the real files) and
``users.csv``, user attributes for ``mfrec train --user-features`` (``userId,age,gender,
occupation``), and ``synthetic.json``, the truth's parameters and its noise floor.

The truth: ``x = mu + d_t + bu + bi + p_u·q_i`` (``--factors`` columns), the observed rating
``x + noise`` rounded to the release's stars (half stars from ml-10m on, where 45% of ratings
are whole stars, as raters favour them) and clipped to its scale. ``floor_rmse`` is the RMSE
of the best possible predictor, ``E[rating | x]``: no model can expect a lower test RMSE.
Side information shapes the truth, so a model that uses it can be checked to gain:
``--feature-share`` s of the variance of each item's ``bi`` and ``q_i`` comes from its genres
(the movies file's; per genre a bias and a factor vector, summed over the item's genres over
√(their count)), and s of each user's ``bu`` and ``p_u`` from its attributes in ``users.csv``
(age group, gender, occupation, likewise); the rest is the entity's own. ``d_t`` is a drift
of the mean by calendar month (a random walk of standard deviation ``--date-effect``), so
the ratings' timestamps carry information too. ``synthetic.json`` reports ``features_rmse``:
the RMSE of the best predictor that knows the features, dates and ``mu`` but no id's own part.
User activity is Pareto (at least 20 ratings per user, as in MovieLens), item popularity Zipf;
each user's items are drawn without replacement, so no (user, item) pair repeats. Users are
generated in chunks of about a million ratings, so memory stays bounded at any size; the same
seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from mfrec._internal import atomic_write, njit
from mfrec.data.features import date_periods
from mfrec.data.registry import Release, get_release

VERSION = 3
OUT = Path(__file__).resolve().parent / "out" / "synthetic"
CHUNK = 1 << 20  # ratings generated and written at a time
MIN_PER_USER = 20  # MovieLens keeps users with at least 20 ratings
MAX_DENSITY = 0.2  # tiny copies get more users and items than the scaling gives
USER_ALPHA = 1.8  # Pareto tail of ratings per user (ml-25m: mean 154, median 71)
ITEM_ZIPF = 1.5  # popularity of the item at rank r is (r + r0)^-ITEM_ZIPF
ITEM_OFFSET = 0.0035  # r0 as a fraction of the item count (top movie ~0.3% of ratings)
WHOLE_STARS = 0.45  # on half-star scales, the share rounded to whole stars (raters favour them)
FLOOR_SAMPLE = 1 << 16  # ratings per chunk whose conditional variance makes the floor
# Seconds since 1970 of each release's first and last rating, and its highest movie id per
# movie (ids have gaps: ml-25m's 62,423 movies span 1..209,171).
TIME_SPAN = {
    "ml-100k": (874_724_710, 893_286_638),
    "ml-1m": (956_703_932, 1_046_454_590),
    "ml-10m": (789_652_009, 1_231_131_736),
    "ml-20m": (789_652_009, 1_427_784_002),
    "ml-25m": (789_652_009, 1_574_327_703),
    "ml-32m": (789_652_009, 1_697_164_000),
    "ml-latest-small": (828_124_615, 1_537_799_250),
}
ID_SPAN = {
    "ml-100k": 1.0,
    "ml-1m": 1.07,
    "ml-10m": 6.1,
    "ml-20m": 4.8,
    "ml-25m": 3.35,
    "ml-32m": 3.34,
    "ml-latest-small": 19.9,
}
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western")  # fmt: skip
GENRE_RATE = 0.12  # each genre's chance per movie
AGES = (12, 18, 25, 35, 45, 50, 56, 71)  # ml-1m's age groups' bounds; an age is drawn in one
OCCUPATIONS = 21  # ml-1m's occupation codes 0..20, written as "occ<code>"
USERS_FILE = "users.csv"


def default_shape(rel: Release, n_ratings: int) -> tuple[int, int]:
    """(users, items) for ``n_ratings`` like ``rel``: users scale linearly, items as the root."""
    f = n_ratings / rel.n_ratings
    n_users = max(1, min(round(rel.n_users * f), n_ratings // MIN_PER_USER))
    n_items = max(4, min(rel.n_movies, round(rel.n_movies * math.sqrt(f))))
    grow = math.sqrt(n_ratings / (n_users * n_items) / MAX_DENSITY)  # > 1 for tiny copies
    if grow > 1:
        n_users, n_items = math.ceil(n_users * grow), math.ceil(n_items * grow)
    return n_users, n_items


def user_degrees(rng: np.random.Generator, n_ratings: int, n_users: int, cap: int) -> np.ndarray:
    """Ratings per user: Pareto above a floor, capped at ``cap``, summing to ``n_ratings``."""
    if n_users * cap < n_ratings:
        raise ValueError(f"{n_ratings:,} ratings do not fit {n_users:,} users × {cap:,} items each")
    floor = min(MIN_PER_USER, n_ratings // n_users, cap)
    x = rng.pareto(USER_ALPHA, n_users)
    lo, hi = 0.0, 1.0
    while np.minimum(cap, floor + hi * x).sum() < n_ratings:
        hi *= 2
    for _ in range(100):  # bisect the scale c so that sum(min(cap, floor + c x)) = n_ratings
        c = (lo + hi) / 2
        lo, hi = (c, hi) if np.minimum(cap, floor + c * x).sum() < n_ratings else (lo, c)
    d = np.minimum(cap, np.floor(floor + hi * x)).astype(np.int64)
    excess = int(d.sum()) - n_ratings  # a few from rounding: one more or less for random users
    while excess != 0:
        step = np.sign(excess)
        pick = np.flatnonzero(d > floor) if step > 0 else np.flatnonzero(d < cap)
        pick = rng.choice(pick, min(abs(excess), pick.size), replace=False)
        d[pick] -= step
        excess = int(d.sum()) - n_ratings
    return d


def _pick_items(rng, degrees: np.ndarray, cdfs: list[np.ndarray], n_items: int):
    """(local user, item) pairs, ``degrees[u]`` distinct items per user, sorted by both.

    Each user draws items one after another from the popularity ``cdfs``, skipping items it
    already has (weighted sampling without replacement), in rounds of vectorised draws; a
    user still short after a round draws again from a flatter law, finally the uniform one.
    """
    n = degrees.shape[0]
    have = np.empty(0, dtype=np.int64)  # sorted keys u * n_items + i
    need = degrees.copy()
    for attempt in range(200):
        short = np.flatnonzero(need > 0)
        if short.size == 0:
            return have // n_items, have % n_items
        draws = np.ceil(need[short] * 1.2).astype(np.int64) + 2
        u = np.repeat(short, draws)  # grouped by user, each user's draws in drawing order
        cdf = cdfs[min(attempt, len(cdfs) - 1)]
        i = np.minimum(np.searchsorted(cdf, rng.random(u.shape[0]) * cdf[-1], "right"), n_items - 1)
        keys = u * n_items + i
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        new = np.empty(keys.shape[0], dtype=np.bool_)  # first draw of its key, not had before
        new[order] = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        if have.size:
            pos = np.minimum(np.searchsorted(have, keys), have.size - 1)
            new &= have[pos] != keys
        count = np.cumsum(new)  # new draws so far; minus the count before each user's group
        starts = np.cumsum(draws) - draws
        before = count[starts] - new[starts]
        rank = count - new - np.repeat(before, draws)
        take = new & (rank < np.repeat(need[short], draws))
        need -= np.bincount(u[take], minlength=n)
        have = np.sort(np.concatenate([have, keys[take]]), kind="stable")  # two sorted runs
    raise RuntimeError("could not draw distinct items (degrees too close to the item count)")


@njit
def _write_digits(out, p, v):
    """Decimal digits of non-negative ``v`` into ``out`` at ``p``; returns the new position."""
    start = p
    while True:
        out[p] = 48 + v % 10
        p += 1
        v //= 10
        if v == 0:
            break
    out[start:p] = out[start:p][::-1].copy()
    return p


@njit
def _format_rows(users, items, halves, stamps, sep, style, out):
    """``user SEP item SEP rating SEP timestamp\\n`` rows into ``out``; returns the bytes used.

    Ratings are ``halves / 2``; ``style`` 0 writes whole stars (``4``), 1 always one decimal
    (``4.0``, ``4.5``: the CSV releases), 2 a decimal only for half stars (``4``, ``4.5``).
    """
    p = 0
    for j in range(users.shape[0]):
        p = _write_digits(out, p, users[j])
        for b in sep:
            out[p] = b
            p += 1
        p = _write_digits(out, p, items[j])
        for b in sep:
            out[p] = b
            p += 1
        p = _write_digits(out, p, halves[j] // 2)
        if style == 1 or halves[j] % 2:
            out[p] = 46
            out[p + 1] = 48 + 5 * (halves[j] % 2)
            p += 2
        for b in sep:
            out[p] = b
            p += 1
        p = _write_digits(out, p, stamps[j])
        out[p] = 10
        p += 1
    return p


def format_rows(users, items, halves, stamps, delimiter: str = ",", style: int = 1) -> bytes:
    """``user SEP item SEP rating SEP timestamp\n`` rows as bytes; ratings are ``halves / 2``.

    ``style`` 0 writes whole stars (``4``), 1 one decimal always (``4.0``, ``4.5``: the CSV
    releases), 2 a decimal only for half stars (``4``, ``4.5``: ml-10m's ``ratings.dat``).
    """
    cols = [np.ascontiguousarray(a, dtype=np.int64) for a in (users, items, halves, stamps)]
    if not all(c.shape == cols[0].shape and c.ndim == 1 for c in cols):
        raise ValueError("users, items, halves and stamps must be 1-D and of equal length")
    if cols[0].size == 0:
        return b""
    if min(int(c.min()) for c in cols) < 0:
        raise ValueError("ids, halves and timestamps must be >= 0")
    if style not in (0, 1, 2):
        raise ValueError(f"style must be 0, 1 or 2, got {style!r}")
    width = sum(len(str(int(c.max()))) for c in cols) + 3 * len(delimiter.encode()) + 3
    out = np.empty(width * cols[0].shape[0], dtype=np.uint8)
    sep = np.frombuffer(delimiter.encode(), dtype=np.uint8)
    end = _format_rows(*cols, sep, style, out)
    return out[:end].tobytes()


def _floor_variance(x: np.ndarray, sigma: float, lo: float, hi: float) -> np.ndarray:
    """Var[r | x] of the generated ratings: on a half-star scale a mixture of whole stars
    (share ``WHOLE_STARS``, from 1) and half stars, else whole stars."""
    if lo != 0.5:
        return _conditional_moments(x, sigma, lo, hi, 1.0)[1]
    m1, v1 = _conditional_moments(x, sigma, 1.0, hi, 1.0)
    m2, v2 = _conditional_moments(x, sigma, lo, hi, 0.5)
    w = WHOLE_STARS
    mean = w * m1 + (1 - w) * m2
    return w * (v1 + m1 * m1) + (1 - w) * (v2 + m2 * m2) - mean * mean


def _conditional_moments(x: np.ndarray, sigma: float, lo: float, hi: float, step: float):
    """E[r | x] and Var[r | x] for r = clip(round_step(x + N(0, sigma²)), lo, hi)."""
    levels = np.arange(lo, hi + step / 2, step)
    # S_j = P(r >= level_j) = P(x + noise >= level_j - step/2), with S_0 = 1.
    S = [np.ones_like(x)] + [ndtr((x - (v - step / 2)) / sigma) for v in levels[1:]]
    S.append(np.zeros_like(x))
    mean = np.zeros_like(x)
    second = np.zeros_like(x)
    for j, v in enumerate(levels):
        p = S[j] - S[j + 1]
        mean += v * p
        second += v * v * p
    return mean, np.maximum(second - mean * mean, 0.0)


def _title(raw_id: int, year: int, utf8: bool) -> tuple[str, str]:
    """(kind, title): titles that exercise each file format: commas, quotes, colons, accents."""
    if raw_id % 7 == 0:
        return "comma", f"Movie {raw_id}, The ({year})"  # quoted in movies.csv
    if raw_id % 11 == 0:
        return "accents", f"Café {raw_id}: Première ({year})"  # latin-1 or UTF-8; one colon
    if utf8 and raw_id % 13 == 0:
        return "quotes", f'"Tōkyō" {raw_id}, 東京 ({year})'  # "" inside quotes in movies.csv
    return "plain", f"Movie {raw_id} ({year})"


def _movies_text(rel: Release, raw_ids: np.ndarray, years: np.ndarray, picks: np.ndarray):
    """(text, sample): the movies file (``u.item``, ``movies.dat`` or ``movies.csv``) of movies
    ``raw_ids`` released in ``years`` with the genres ``picks`` ((n, len(GENRES)) flags) and the
    first title of each kind as ``{kind: [raw id, title]}``."""
    lines = ["movieId,title,genres"] if rel.movies_format == "csv" else []
    sample: dict[str, list] = {}
    for raw, year, pick in zip(raw_ids.tolist(), years.tolist(), picks, strict=True):
        kind, title = _title(raw, year, rel.movies_encoding != "latin-1")
        sample.setdefault(kind, [raw, title])
        if rel.movies_format == "pipe":
            flags = "|".join("1" if g else "0" for g in pick)
            url = f"http://us.imdb.com/M/title-exact?Movie%20{raw}%20({year})"
            lines.append(f"{raw}|{title}|01-Jan-{year}||{url}|0|{flags}")
            continue
        genres = "|".join(g for g, on in zip(GENRES, pick, strict=True) if on) or "(no genres)"
        if rel.movies_format == "colons":
            lines.append(f"{raw}::{title}::{genres}")
        else:
            if any(c in title for c in ',"'):
                title = '"' + title.replace('"', '""') + '"'
            lines.append(f"{raw},{title},{genres}")
    return "\n".join(lines) + "\n", sample


def _users_text(age: np.ndarray, gender: np.ndarray, occupation: np.ndarray) -> str:
    """``users.csv``: ``userId,age,gender,occupation`` for users 1..n (a file for
    ``--user-features``: age numeric, the others categorical)."""
    columns = zip(age.tolist(), gender.tolist(), occupation.tolist(), strict=True)
    rows = (f"{u},{a},{'MF'[g]},occ{o}" for u, (a, g, o) in enumerate(columns, start=1))
    return "userId,age,gender,occupation\n" + "\n".join(rows) + "\n"


def _side_truth(rng, flags: np.ndarray, bias_std: float, factor_std: float, k: int):
    """The part of n entities' (bias, factors) that their binary features ``flags`` (n, F)
    explain: per feature a N(0, bias_std²) bias and N(0, factor_std²) factor vector, summed
    over the entity's features over √(their count), so each part has about the own part's
    variance (an entity without features gets zeros)."""
    b = rng.normal(0.0, bias_std, flags.shape[1])
    V = rng.normal(0.0, factor_std, (flags.shape[1], k))
    scale = 1.0 / np.sqrt(np.maximum(flags.sum(1), 1))
    X = flags * scale[:, None]
    return X @ b, X @ V


def _month_drift(rng, t_lo: int, t_hi: int, std: float) -> tuple[int, np.ndarray]:
    """(first month, drift): a random walk over the calendar months of [t_lo, t_hi] (as
    :func:`mfrec.data.features.date_periods` counts them), centred and scaled to ``std``."""
    first, last = (int(m) for m in date_periods(np.array([t_lo, t_hi]), "month"))
    walk = np.cumsum(rng.normal(0.0, 1.0, last - first + 1))
    walk -= walk.mean()
    return first, walk * (std / max(float(walk.std()), 1e-12)) if std > 0 else walk * 0.0


def generate(
    like: str = "ml-25m",
    n_ratings: int | None = None,
    out: str | Path = OUT,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    n_factors: int = 10,
    noise: float = 0.8,
    feature_share: float = 0.3,
    date_effect: float = 0.1,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Write a synthetic copy of release ``like`` under ``out``; returns its folder.

    ``n_ratings`` defaults to the release's count (so :func:`mfrec.data.load_movielens` accepts
    the copy as is); users and items scale with it unless given. An existing copy with the same
    parameters is kept unless ``force``. The folder's ``synthetic.json`` holds the parameters,
    ``noise`` and ``floor_rmse``. ``feature_share`` (0 to 1) and ``date_effect`` shape the
    truth by the features and dates (see the module doc; 0 and 0: ids alone).
    """
    rel = get_release(like)
    n_ratings = rel.n_ratings if n_ratings is None else int(n_ratings)
    if n_ratings < 1:
        raise ValueError(f"n_ratings must be positive, got {n_ratings}")
    shape = default_shape(rel, n_ratings)
    n_users = shape[0] if n_users is None else int(n_users)
    n_items = shape[1] if n_items is None else int(n_items)
    if n_users < 1 or n_items < 2:
        raise ValueError(f"need at least 1 user and 2 items, got {n_users} and {n_items}")
    if noise <= 0 or n_factors < 1:
        raise ValueError(f"noise must be > 0 and n_factors >= 1, got {noise}, {n_factors}")
    if not 0.0 <= feature_share <= 1.0 or date_effect < 0:
        raise ValueError(
            f"feature_share must be in [0, 1] and date_effect >= 0, got {feature_share}, "
            f"{date_effect}"
        )
    params = dict(like=like, n_ratings=n_ratings, n_users=n_users, n_items=n_items,
                  n_factors=n_factors, noise=noise, feature_share=feature_share,
                  date_effect=date_effect, seed=seed, version=VERSION)  # fmt: skip
    folder = Path(out) / rel.folder
    sidecar = folder / "synthetic.json"
    if not force and sidecar.is_file():
        try:
            old = json.loads(sidecar.read_text())
        except ValueError:
            old = {}
        files = (folder / rel.ratings_file, folder / rel.movies_file, folder / USERS_FILE)
        if old.get("params") == params and all(f.is_file() for f in files):
            return folder
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    cap = max(1, n_items // 2)
    degrees = user_degrees(rng, n_ratings, n_users, cap)
    # Item popularity: Zipf by a random rank; flatter laws when a user's draws run dry.
    rank = rng.permutation(n_items).astype(np.float64)
    pop = (rank + max(1.0, ITEM_OFFSET * n_items)) ** -ITEM_ZIPF
    cdfs = [np.cumsum(pop), np.cumsum(np.sqrt(pop)), np.arange(1.0, n_items + 1)]
    raw_ids = np.sort(rng.choice(max(n_items, round(ID_SPAN[like] * n_items)), n_items, False))
    raw_ids += 1
    # The truth: biases (the 5% most popular movies rated 0.3 higher, as in MovieLens), then k
    # factors whose dot product has standard deviation ~0.5.
    lo, hi = rel.scale
    step = 0.5 if lo == 0.5 else 1.0
    mu = 3.5
    sd = (0.25 / n_factors) ** 0.25
    bu = rng.normal(0.0, 0.35, n_users)
    bi = rng.normal(0.0, 0.45, n_items)
    P = rng.normal(0.0, sd, (n_users, n_factors))
    Q = rng.normal(0.0, sd, (n_items, n_factors))
    # Side information and its part of the truth (its own generator: the ids' draws above
    # are those of feature_share 0).
    srng = np.random.default_rng((seed, 1))
    years = srng.integers(1920, 2020, n_items)
    genres = srng.random((n_items, len(GENRES))) < GENRE_RATE
    n_ages = len(AGES) - 1
    age_group = srng.integers(0, n_ages, n_users)
    edges = np.array(AGES)
    age = edges[age_group] + (srng.random(n_users) * np.diff(edges)[age_group]).astype(np.int64)
    gender = (srng.random(n_users) < 0.28).astype(np.int64)  # ml-1m: 28% women
    occupation = srng.integers(0, OCCUPATIONS, n_users)
    attrs = np.zeros((n_users, n_ages + 2 + OCCUPATIONS), dtype=np.bool_)
    attrs[np.arange(n_users), age_group] = True
    attrs[np.arange(n_users), n_ages + gender] = True
    attrs[np.arange(n_users), n_ages + 2 + occupation] = True
    bu_f, P_f = _side_truth(srng, attrs, 0.35, sd, n_factors)
    bi_f, Q_f = _side_truth(srng, genres, 0.45, sd, n_factors)
    own, side = math.sqrt(1.0 - feature_share), math.sqrt(feature_share)
    bu, P = (own * bu + side * bu_f).astype(np.float32), (own * P + side * P_f).astype(np.float32)
    bi = (own * bi + side * bi_f).astype(np.float32) + 0.3 * np.float32(rank < n_items / 20)
    Q = (own * Q + side * Q_f).astype(np.float32)
    t_lo, t_hi = TIME_SPAN[like]
    month0, drift = _month_drift(srng, t_lo, t_hi, date_effect)
    t_start = rng.integers(t_lo, t_hi, n_users)
    t_span = np.minimum(t_hi - t_start, rng.exponential(3e7, n_users).astype(np.int64) + 1)
    style = 0 if step == 1.0 else (1 if rel.delimiter == "," else 2)
    ends = np.searchsorted(np.cumsum(degrees), np.arange(CHUNK, n_ratings, CHUNK), side="right")
    bounds = np.unique(np.r_[0, ends, n_users])
    chunk_rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(bounds))]
    var_sum, sq_truth, sq_side, n_floor, moments = 0.0, 0.0, 0.0, 0, np.zeros(3)
    with atomic_write(folder / rel.ratings_file, parents=True) as tmp, open(tmp, "wb") as f:
        if rel.delimiter == ",":
            f.write(b"userId,movieId,rating,timestamp\n")
        for c in range(len(bounds) - 1):
            crng = chunk_rngs[c]
            a, b = int(bounds[c]), int(bounds[c + 1])
            u_loc, i = _pick_items(crng, degrees[a:b], cdfs, n_items)
            u = u_loc + a
            stamps = t_start[u] + (crng.random(u.shape[0]) * t_span[u]).astype(np.int64)
            d = drift[date_periods(stamps, "month") - month0]
            x = mu + d + bu[u] + bi[i] + np.einsum("nk,nk->n", P[u], Q[i])
            y = x + crng.normal(0.0, noise, x.shape[0])
            r = np.clip(np.round(y / step) * step, lo, hi)
            if step == 0.5:
                whole = crng.random(y.shape[0]) < WHOLE_STARS
                r[whole] = np.clip(np.round(y[whole]), 1.0, hi)
            at = crng.choice(x.shape[0], min(FLOOR_SAMPLE, x.shape[0]), replace=False)
            xs = x[at].astype(np.float64)
            var = _floor_variance(xs, noise, lo, hi)
            var_sum += float(var.sum())
            sq_truth += float(np.sum((np.clip(xs, lo, hi) - r[at]) ** 2))
            # What the features and dates alone predict: the side parts' terms (the ids' own
            # parts have mean 0 and are independent of them; the popularity bonus is left out).
            ua, ia = u[at], i[at]
            x_side = mu + d[at] + side * (bu_f[ua] + bi_f[ia])
            x_side += feature_share * np.einsum("nk,nk->n", P_f[ua], Q_f[ia])
            sq_side += float(np.sum((np.clip(x_side, lo, hi) - r[at]) ** 2))
            n_floor += at.shape[0]
            moments += (r.shape[0], r.sum(), np.square(r).sum())
            halves = np.round(r * 2).astype(np.int64)
            users, items = u + 1, raw_ids[i]
            if like == "ml-100k":  # u.data is in no order
                perm = crng.permutation(u.shape[0])
                users, items, halves, stamps = users[perm], items[perm], halves[perm], stamps[perm]
            f.write(format_rows(users, items, halves, stamps, rel.delimiter, style))
    movies, sample = _movies_text(rel, raw_ids, years, genres)
    with atomic_write(folder / rel.movies_file) as tmp:
        tmp.write_bytes(movies.encode(rel.movies_encoding))
    with atomic_write(folder / USERS_FILE) as tmp:
        tmp.write_text(_users_text(age, gender, occupation))
    count, total, total_sq = moments
    mean = total / count
    meta = {
        "params": params,
        "release": like,
        "ratings_file": rel.ratings_file,
        "movies_file": rel.movies_file,
        "noise": noise,
        "floor_rmse": math.sqrt(var_sum / n_floor),
        "truth_rmse": math.sqrt(sq_truth / n_floor),
        "features_rmse": math.sqrt(sq_side / n_floor),
        "floor_sample": n_floor,
        "rating_mean": mean,
        "rating_std": math.sqrt(max(total_sq / count - mean * mean, 0.0)),
        "max_user_ratings": int(degrees.max()),
        "sample_titles": sample,
        "seconds": round(time.perf_counter() - t0, 2),
        "note": "floor_rmse: RMSE of E[rating | truth], the best any model can expect; "
        "truth_rmse: RMSE of the clipped noiseless score; features_rmse: that of the clipped "
        "score of the features' and dates' parts alone",
    }
    with atomic_write(sidecar) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_truth(folder: str | Path) -> dict:
    """The ``synthetic.json`` sidecar of a generated copy."""
    return json.loads((Path(folder) / "synthetic.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--like", default="ml-25m", help="the release whose layout to copy")
    parser.add_argument("--ratings", type=int, help="how many (default: the release's count)")
    parser.add_argument("--out", default=str(OUT), help="parent folder of the release folder")
    parser.add_argument("--users", type=int, help="default: scaled from the release")
    parser.add_argument("--items", type=int, help="default: scaled from the release")
    parser.add_argument("--factors", type=int, default=10, help="rank of the truth")
    parser.add_argument("--noise", type=float, default=0.8, help="std of the rating noise")
    parser.add_argument("--feature-share", type=float, default=0.3,
                        help="share of the biases' and factors' variance the genres and user "
                        "attributes explain")  # fmt: skip
    parser.add_argument("--date-effect", type=float, default=0.1,
                        help="std of the mean's drift by calendar month")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rewrite an identical copy")
    args = parser.parse_args(argv)
    folder = generate(
        args.like, args.ratings, args.out, n_users=args.users, n_items=args.items,
        n_factors=args.factors, noise=args.noise, feature_share=args.feature_share,
        date_effect=args.date_effect, seed=args.seed, force=args.force,
    )  # fmt: skip
    print(folder)
    print(json.dumps(read_truth(folder), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
