"""MovieLens 100k: find it locally, or download, verify and cache the official archive."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from data.dataset import Ratings

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# The published archive (GroupLens lists its MD5 0e33842e24a9c977be4e0107933c0723).
ML100K_ZIP_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
# The extracted files, checked after unzipping whatever the source of the archive.
ML100K_FILE_SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
}


class DownloadError(RuntimeError):
    """A download failed or did not match its checksum; nothing was cached."""


def default_cache_dir() -> Path:
    """``$MFREC_CACHE``, else ``data/cache`` beside this package (git-ignored)."""
    env = os.environ.get("MFREC_CACHE")
    return Path(env) if env else Path(__file__).resolve().parent / "cache"


def _has_ml100k(d: Path) -> Path | None:
    for cand in (d / "ml-100k", d):
        if (cand / "u.data").is_file() and (cand / "u.item").is_file():
            return cand
    return None


def find_ml100k(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    url: str = ML100K_URL,
    sha256: str | None = ML100K_ZIP_SHA256,
) -> Path:
    """The ml-100k folder: ``data_dir``, then ``$MFREC_DATA``, then the cache, else download."""
    places = [Path(p) for p in (data_dir, os.environ.get("MFREC_DATA")) if p]
    cache = default_cache_dir()
    for place in [*places, cache]:
        found = _has_ml100k(place)
        if found is not None:
            return found
    if data_dir is not None and not download:
        raise FileNotFoundError(f"no ml-100k (u.data, u.item) under {data_dir}")
    if not download:
        raise FileNotFoundError(
            f"no ml-100k found in {', '.join(map(str, [*places, cache]))} and download=False"
        )
    return download_ml100k(cache, url=url, sha256=sha256)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_ml100k(
    cache_dir: Path, url: str = ML100K_URL, sha256: str | None = ML100K_ZIP_SHA256
) -> Path:
    """Download ``url`` into ``cache_dir``, verify and unzip it; the folder appears atomically."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / "ml-100k"
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".ml-100k-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "ml-100k.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(archive, "wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as e:
            raise DownloadError(f"could not download {url}: {e}") from None
        got = sha256_file(archive)
        if sha256 is not None and got != sha256:
            raise DownloadError(f"{url}: SHA-256 {got} does not match the expected {sha256}")
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp / "x")
        except zipfile.BadZipFile as e:
            raise DownloadError(f"{url}: not a zip archive ({e})") from None
        extracted = _has_ml100k(tmp / "x")
        if extracted is None:
            raise DownloadError(f"{url}: the archive holds no ml-100k/u.data and u.item")
        for name, want in ML100K_FILE_SHA256.items():
            if sha256 == ML100K_ZIP_SHA256 and sha256_file(extracted / name) != want:
                raise DownloadError(f"{url}: {name} does not match its known SHA-256")
        if final.exists():
            return final
        os.replace(extracted, final)
    return final


def load_ml100k(data_dir: str | os.PathLike | None = None, download: bool = True) -> Ratings:
    """MovieLens 100k as a :class:`Ratings` table, with movie titles (latin-1) by raw item id."""
    root = find_ml100k(data_dir, download=download)
    raw = np.loadtxt(root / "u.data", dtype=np.int64, delimiter="\t", ndmin=2)
    if raw.shape[1] != 4:
        raise ValueError(f"{root / 'u.data'}: expected 4 tab-separated columns")
    titles = {}
    with open(root / "u.item", encoding="latin-1") as f:
        for line in f:
            fields = line.rstrip("\n").split("|")
            if len(fields) > 1:
                titles[int(fields[0])] = fields[1]
    return Ratings.from_raw(
        raw[:, 0],
        raw[:, 1],
        raw[:, 2].astype(np.float64),
        raw[:, 3],
        titles=titles,
        source=str(root),
    )
