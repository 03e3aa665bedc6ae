"""MovieLens releases: find them locally, or download, verify and cache the official archives."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from mfrec.data.dataset import Ratings
from mfrec.data.download import DownloadError, download_file, fetch_archive, sha256_file
from mfrec.data.parse import DataError, Report, default_cache_dir, read_ratings
from mfrec.data.registry import Release, get_release

__all__ = [
    "DownloadError",
    "download_dir",
    "download_file",
    "fetch_release",
    "find_ml100k",
    "find_release",
    "load_ml100k",
    "load_movielens",
    "sha256_file",
]

# ml-100k's extracted files, checked after unzipping whatever the source of the archive.
ML100K_FILE_SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
}


def download_dir() -> Path:
    """Where downloads go: ``$MFREC_DATA`` when set, else the user's cache directory."""
    env = os.environ.get("MFREC_DATA")
    return Path(env) if env else default_cache_dir()


def _has_release(d: Path, rel: Release) -> Path | None:
    for cand in (d / rel.name, d / rel.folder, d):
        if (cand / rel.ratings_file).is_file() and (cand / rel.movies_file).is_file():
            return cand
    return None


def find_release(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    url: str | None = None,
    progress: bool = False,
) -> Path:
    """The folder of release ``name``: ``data_dir``, ``$MFREC_DATA``, the cache, else download.

    ``url`` overrides the official address (tests serve an archive from 127.0.0.1); the
    registry's checksums are still enforced.
    """
    rel = get_release(name)
    places = [Path(p) for p in (data_dir, os.environ.get("MFREC_DATA"), default_cache_dir()) if p]
    for place in places:
        found = _has_release(place, rel)
        if found is not None:
            return found
    if not download:
        where = ", ".join(map(str, places))
        raise FileNotFoundError(f"no {name} ({rel.ratings_file}, {rel.movies_file}) in {where}")
    root = Path(data_dir) if data_dir is not None else download_dir()
    return fetch_release(name, root, url=url, progress=progress)


def fetch_release(name: str, root: Path, url: str | None = None, progress: bool = False) -> Path:
    """Download release ``name`` into ``root/name`` (verified, atomic); returns the folder."""
    rel = get_release(name)
    required = (rel.ratings_file, rel.movies_file)
    folder = fetch_archive(
        url or rel.url, root, rel.name, rel.folder, required, rel.md5, rel.sha256, progress
    )
    if name == "ml-100k":
        for fname, want in ML100K_FILE_SHA256.items():
            if sha256_file(folder / fname) != want:
                raise DownloadError(f"{folder / fname} does not match its known SHA-256")
    return folder


def place_release(name: str, root: Path, progress: bool = False) -> tuple[Path, Path | None]:
    """(folder, copied_from): release ``name`` in ``root``, already there, copied from where
    :func:`find_release` finds it on this machine, or downloaded (``copied_from`` is None then).

    A copy goes to a temp folder in ``root`` first, then is renamed to ``root/name``; a
    ``root/name`` that exists but does not hold the release is an error, never overwritten.
    """
    import shutil
    import tempfile

    if root.exists() and not root.is_dir():
        raise ValueError(f"--data-dir {root}: not a folder")
    try:
        here = find_release(name, root, download=False) if root.is_dir() else None
    except FileNotFoundError:
        here = None
    if here is not None and here.resolve().is_relative_to(root.resolve()):
        return here, None
    try:
        found = find_release(name, None, download=False)
    except FileNotFoundError:
        found = None
    if found is None:  # nowhere on this machine: download it into root
        return fetch_release(name, root, progress=progress), None
    root.mkdir(parents=True, exist_ok=True)
    final = root / get_release(name).name
    if final.exists():
        raise ValueError(f"{final} exists but does not hold {name}; move it away first")
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{final.name}-") as tmp:
        staged = Path(tmp) / final.name
        shutil.copytree(found, staged)
        os.replace(staged, final)
    return final, found


# duplicates: load_movielens names find_release's parameters (passed on), for help() and pyright
def load_movielens(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    url: str | None = None,
    progress: bool = False,
    cache: bool | None = None,
    report: Report | None = None,
) -> Ratings:
    """A MovieLens release as a :class:`Ratings` table, with movie titles by raw movie id.

    The ratings count is checked against the registry (a truncated or edited copy is an error).
    ``progress`` draws a download's bar; ``report`` hears the bytes of the ratings file read
    and hashed (:data:`~mfrec.data.parse.Report`).
    """
    rel = get_release(name)
    root = find_release(name, data_dir, download=download, url=url, progress=progress)
    table = read_ratings(
        root / rel.ratings_file,
        delimiter=rel.delimiter,
        rating_scale=rel.scale,
        cache=cache,
        report=report,
    )
    if len(table) != rel.n_ratings:
        raise DataError(
            f"{root / rel.ratings_file}: {len(table):,} ratings, but {name} has "
            f"{rel.n_ratings:,}: the copy is incomplete or modified (delete it to re-download)"
        )
    table.titles = read_titles(root / rel.movies_file, rel.movies_format, rel.movies_encoding)
    table.source = str(root)
    return table


def read_titles(path: Path, fmt: str, encoding: str) -> dict[int, str]:
    """Movie titles by raw id from ``u.item`` (pipe), ``movies.dat`` (colons) or ``movies.csv``."""
    titles: dict[int, str] = {}
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        if fmt == "csv":
            rows = csv.reader(f)
            next(rows, None)
        else:
            sep = "|" if fmt == "pipe" else "::"
            rows = (line.rstrip("\r\n").split(sep) for line in f)
        for n, fields in enumerate(rows, start=2 if fmt == "csv" else 1):
            if len(fields) < 2 or not fields[0].strip().isdigit():
                if any(fields):
                    raise DataError(f"{path}:{n}: expected 'movie id, title, ...', got {fields!r}")
                continue
            titles[int(fields[0])] = fields[1]
    return titles


def find_ml100k(
    data_dir: str | os.PathLike | None = None, download: bool = True, url: str | None = None
) -> Path:
    """The ml-100k folder: ``data_dir``, then ``$MFREC_DATA``, then the cache, else download."""
    return find_release("ml-100k", data_dir, download=download, url=url)


def load_ml100k(data_dir: str | os.PathLike | None = None, download: bool = True) -> Ratings:
    """MovieLens 100k as a :class:`Ratings` table, with movie titles (latin-1) by raw item id."""
    return load_movielens("ml-100k", data_dir, download=download)
