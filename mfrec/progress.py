"""Progress bars that stay out of the way: off under --quiet, --json, or when not a terminal."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


def progress_enabled(quiet: bool = False, json_out: bool = False) -> bool:
    """True only for an interactive run: neither quiet nor JSON, and stderr is a terminal."""
    return not (quiet or json_out) and sys.stderr.isatty()


def epoch_bar(total: int, enabled: bool, desc: str = "training"):
    """A tqdm bar over epochs on stderr (a no-op object when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=False)


def eta_bar(total: int, enabled: bool, desc: str, lines: bool = True):
    """A tqdm bar on stderr with elapsed time and ETA; when not a terminal and ``lines``, a
    plain stderr line at every tenth of the way (once past :data:`QUIET_SECONDS`) with the
    elapsed time and the ETA."""
    from tqdm import tqdm

    if enabled or not lines:
        return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not enabled)
    return _LineProgress(total, desc)


QUIET_SECONDS = 3.0
"""A stage that has run for less than this prints no progress lines yet."""


class _LineProgress:
    """The non-interactive stand-in for a tqdm bar: ``update`` prints at each tenth."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n = max(int(total), 1), desc, 0
        self.start = time.perf_counter()
        self.next_tenth = 1

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n * 10 >= self.next_tenth * self.total:
            while self.n * 10 >= self.next_tenth * self.total:
                self.next_tenth += 1
            spent = time.perf_counter() - self.start
            if spent < QUIET_SECONDS:
                return
            eta = spent * (self.total - self.n) / self.n
            print(
                f"  {self.desc}: {self.n}/{self.total}, {spent:.0f} s elapsed, ETA {eta:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        """Nothing to tear down (tqdm's interface)."""


@contextmanager
def stage(name: str, say=print):
    """Time a stage that has no steps to count: ``say`` its name when it starts and, when it
    took a second or more, its duration, so a long parse or scoring pass is never silent."""
    start = time.perf_counter()
    say(f"{name} ...")
    yield
    seconds = time.perf_counter() - start
    if seconds >= 1.0:
        say(f"{name}: {seconds:.1f} s")
