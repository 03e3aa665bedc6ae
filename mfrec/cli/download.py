"""``mfrec download``: find or fetch a MovieLens release, verified."""

from __future__ import annotations

from pathlib import Path

from mfrec.cli._common import add_command
from mfrec.data import RELEASES, find_release, place_release
from mfrec.progress import progress_enabled


def add_parser(sub) -> None:
    """Register ``mfrec download``."""
    d = add_command(sub, "download", "download and verify a MovieLens release")
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
        folder, copied_from = place_release(args.name, Path(args.data_dir), progress)
        if copied_from is not None:
            print(f"copied {args.name} from {copied_from}")
    print(f"{args.name} is in {folder}")
    return 0
