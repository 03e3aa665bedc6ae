"""Progress bars that stay out of the way: off under --quiet, --json, or when not a terminal."""

from __future__ import annotations

import sys


def progress_enabled(quiet: bool = False, json_out: bool = False) -> bool:
    """True only for an interactive run: neither quiet nor JSON, and stderr is a terminal."""
    return not (quiet or json_out) and sys.stderr.isatty()


def epoch_bar(total: int, enabled: bool, desc: str = "training"):
    """A tqdm bar over epochs on stderr (a no-op object when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=False)
