"""Safe downloads: stream to a temp file, verify, rename; unzip to a temp folder, rename.

A failed, corrupt or interrupted download leaves no file or folder under its final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from mfrec._internal import atomic_write

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed or did not match its checksum; nothing was cached."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    url: str,
    dest: Path,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking length and the given digests.

    Raises :class:`DownloadError` (and leaves nothing at ``dest``) on a network error, an HTTP
    error, a truncated body or a checksum mismatch.
    """
    dest = Path(dest)
    with atomic_write(dest, parents=True) as tmp:
        with open(tmp, "wb") as out:
            got_md5, got_sha = _stream(url, out, progress, timeout)
        for algo, want, got in (("MD5", md5, got_md5), ("SHA-256", sha256, got_sha)):
            if want is not None and got != want.lower():
                raise DownloadError(f"{url}: {algo} {got} does not match the expected {want}")
    return dest


def _stream(url: str, out, progress: bool, timeout: float) -> tuple[str, str]:
    """Copy the body of ``url`` into ``out``; returns its (md5, sha256) hex digests."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = _bar(total, url, progress)
            done = 0
            try:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
    except OSError as e:  # URLError, HTTPError, timeouts, connection resets, IncompleteRead
        raise DownloadError(f"could not download {url}: {e}") from None
    if total is not None and done != total:
        raise DownloadError(f"could not download {url}: got {done} of {total} bytes (truncated)")
    return md5.hexdigest(), sha.hexdigest()


def _bar(total: int | None, url: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=url.rsplit("/", 1)[-1],
        disable=not enabled,
        leave=False,
    )


def fetch_archive(
    url: str,
    root: Path,
    name: str,
    folder: str,
    required: tuple[str, ...],
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = False,
) -> Path:
    """Download a zip, verify it, and unpack its ``folder`` as ``root/name`` in one rename.

    ``required`` files must be in the unpacked folder. Returns ``root/name``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        tmp = Path(tmp)
        archive = download_file(url, tmp / f"{name}.zip", md5, sha256, progress)
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp / "x")
        except (zipfile.BadZipFile, OSError) as e:
            raise DownloadError(f"{url}: could not unpack the archive ({e})") from None
        unpacked = tmp / "x" / folder
        missing = [f for f in required if not (unpacked / f).is_file()]
        if missing:
            raise DownloadError(f"{url}: the archive lacks {folder}/{', '.join(missing)}")
        if final.exists():  # another process finished first; theirs is as good as ours
            return final
        os.replace(unpacked, final)
    return final
