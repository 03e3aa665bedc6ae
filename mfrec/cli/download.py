"""``mfrec download``: find or fetch a MovieLens release, verified."""

from __future__ import annotations

import os
from pathlib import Path

from mfrec.cli._common import (
    HelpFormatter,
)
from mfrec.data import (
    RELEASES,
    find_release,
    get_release,
)
from mfrec.progress import progress_enabled


def add_parser(sub) -> None:
    """Register ``mfrec download``."""
    fmt = HelpFormatter
    d = sub.add_parser(
        "download", help="download and verify a MovieLens release", formatter_class=fmt
    )
    d.add_argument("name", choices=list(RELEASES), help="the release")
    d.add_argument(
        "--data-dir",
        help="put the release in DIR/NAME (copied from where it is found, else downloaded); "
        "default: find it in $MFREC_DATA or the cache, else download it there",
    )
    d.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_download(args) -> int:
    """Find or download, verify and unpack one release; with --data-dir, put it there."""
    progress = progress_enabled(args.quiet)
    if args.data_dir is None:
        folder = find_release(args.name, progress=progress)
    else:
        folder = release_into(args.name, Path(args.data_dir), progress)
    print(f"{args.name} is in {folder}")
    return 0


def release_into(name: str, root: Path, progress: bool) -> Path:
    """Release ``name`` in ``root``: already there, copied from where it is found, or downloaded.

    A copy goes to a temp folder in ``root`` first, then is renamed to ``root/name``.
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
        return here
    try:
        found = find_release(name, None, download=False)
    except FileNotFoundError:
        found = None
    if found is None:  # nowhere on this machine: download it into root
        from mfrec.data import fetch_release

        return fetch_release(name, root, progress=progress)
    root.mkdir(parents=True, exist_ok=True)
    rel = get_release(name)
    final = root / rel.name
    if final.exists():
        raise ValueError(f"{final} exists but does not hold {name}; move it away first")
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{rel.name}-") as tmp:
        staged = Path(tmp) / rel.name
        shutil.copytree(found, staged)
        os.replace(staged, final)
    print(f"copied {name} from {found}")
    return final
