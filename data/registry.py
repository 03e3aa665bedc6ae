"""Every MovieLens release mfrec knows: where it lives, how to check it, how its files look.

Checksums are the archive digests GroupLens publishes (``<url>.md5``); the SHA-256 of ml-100k
was computed from the archive itself. ``n_ratings`` is checked after every load; the user and
movie counts are the README's and are documentation (see data/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_URL = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Release:
    """One MovieLens release: archive, checksums, file layout and published counts."""

    name: str
    folder: str  # the top folder inside the archive
    ratings_file: str
    delimiter: str
    movies_file: str
    movies_format: str  # "pipe" (u.item), "colons" (movies.dat) or "csv" (movies.csv)
    movies_encoding: str
    scale: tuple[float, float]
    n_ratings: int
    n_users: int
    n_movies: int
    md5: str | None
    sha256: str | None = None

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.zip"


def _csv(name: str, n_ratings: int, n_users: int, n_movies: int, md5: str | None) -> Release:
    return Release(
        name, name, "ratings.csv", ",", "movies.csv", "csv", "utf-8", (0.5, 5.0),
        n_ratings, n_users, n_movies, md5,
    )  # fmt: skip


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            "ml-100k",
            "ml-100k",
            "u.data",
            "\t",
            "u.item",
            "pipe",
            "latin-1",
            (1.0, 5.0),
            100_000,
            943,
            1_682,
            "0e33842e24a9c977be4e0107933c0723",
            "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        ),
        Release(
            "ml-1m",
            "ml-1m",
            "ratings.dat",
            "::",
            "movies.dat",
            "colons",
            "latin-1",
            (1.0, 5.0),
            1_000_209,
            6_040,
            3_706,
            "c4d9eecfca2ab87c1945afe126590906",
        ),
        Release(
            "ml-10m",
            "ml-10M100K",
            "ratings.dat",
            "::",
            "movies.dat",
            "colons",
            "utf-8",
            (0.5, 5.0),
            10_000_054,
            69_878,
            10_677,
            "ce571fd55effeba0271552578f2648bd",
        ),
        _csv("ml-20m", 20_000_263, 138_493, 26_744, "cd245b17a1ae2cc31bb14903e1204af3"),
        _csv("ml-25m", 25_000_095, 162_541, 59_047, "6b51fb2759a8657d3bfcbfc42b592ada"),
        _csv("ml-32m", 32_000_204, 200_948, 84_432, "d472be332d4daa821edc399621853b57"),
        _csv("ml-latest-small", 100_836, 610, 9_724, None),
    )  # fmt: skip
}


def get_release(name: str) -> Release:
    """The release called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return RELEASES[name]
    except KeyError:
        known = ", ".join(RELEASES)
        raise ValueError(f"unknown MovieLens release {name!r} (known: {known})") from None
