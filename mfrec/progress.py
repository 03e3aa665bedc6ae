"""Progress a person sees, and that stays out of the way.

On a terminal (stderr a TTY) every counted stage gets a tqdm bar with its rate and ETA, and an
uncounted one (a parse, a save) a live elapsed-time line. When stderr is a file, a line every
:data:`LINE_SECONDS` instead: counted stages say steps done, elapsed time and ETA on stderr,
uncounted ones the elapsed time beside their own start and end lines (stdout). ``--quiet``
silences both; ``--json`` keeps the lines (on stderr, as all its human output) and drops the
bars.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

LINE_SECONDS = 5.0
"""Seconds between two progress lines when stderr is not a terminal (``$MFREC_PROGRESS_SECONDS``
overrides it)."""


def line_seconds() -> float:
    """:data:`LINE_SECONDS`, or ``$MFREC_PROGRESS_SECONDS`` when set."""
    return float(os.environ.get("MFREC_PROGRESS_SECONDS", LINE_SECONDS))


def progress_enabled(quiet: bool = False, json_out: bool = False) -> bool:
    """True only for an interactive run: neither quiet nor JSON, and stderr is a terminal."""
    return not (quiet or json_out) and sys.stderr.isatty()


def eta_bar(total: int, enabled: bool, desc: str, lines: bool = True, unit: str = "step"):
    """A tqdm bar over ``total`` steps on stderr (rate, elapsed, ETA) when ``enabled``; else,
    with ``lines``, a stderr line every :data:`LINE_SECONDS` with steps done, elapsed time and
    ETA; else nothing (an object with tqdm's ``update``/``set_postfix``/``close``)."""
    from tqdm import tqdm

    if enabled or not lines:
        return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=not enabled)
    return _LineProgress(total, desc, unit)


class _LineProgress:
    """The non-interactive stand-in for a tqdm bar. The clock starts at the first step (so a
    first epoch's compilation does not count in the ETA of the rest); a line is printed when
    :data:`LINE_SECONDS` have passed since the last one."""

    def __init__(self, total: int, desc: str, unit: str = "step") -> None:
        self.total, self.desc, self.unit, self.n = max(int(total), 1), desc, unit, 0
        self.start: float | None = None
        self.last, self.n0 = 0.0, 0

    def update(self, n: int = 1) -> None:
        now = time.perf_counter()
        self.n += n
        if self.start is None:
            self.start = self.last = now
            self.n0 = self.n
            return
        if now - self.last < line_seconds():
            return
        self.last = now
        spent = now - self.start
        eta = spent * (self.total - self.n) / (self.n - self.n0)
        print(
            f"  {self.desc}: {self.n}/{self.total} {self.unit}s, {spent:.0f} s elapsed, "
            f"ETA {eta:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def set_postfix(self, *args, **kwargs) -> None:
        """Nothing to show between lines (tqdm's interface)."""

    def close(self) -> None:
        """Nothing to tear down (tqdm's interface)."""


@contextmanager
def stage(name: str, say=print, bar: bool = False, lines: bool = False, tick=None):
    """A stage that has no steps to count: ``say`` its name when it starts and, when it took a
    second or more, its duration. Meanwhile a live elapsed-time display on the terminal
    (``bar``), or a line every :data:`LINE_SECONDS` passed to ``tick`` (default ``say``:
    beside the stage's own lines, so an error line stays the first on stderr), shows it is
    alive (``lines``)."""
    start = time.perf_counter()
    say(f"{name} ...")
    ticker = _Ticker(name, bar, lines, tick or say) if bar or lines else None
    try:
        yield
    finally:
        if ticker is not None:
            ticker.stop()
    seconds = time.perf_counter() - start
    if seconds >= 1.0:
        say(f"{name}: {seconds:.1f} s")


class _Ticker:
    """Elapsed time of an uncounted stage, from a background thread: a tqdm counter on the
    terminal, or a line every :data:`LINE_SECONDS` through ``say``."""

    def __init__(self, name: str, bar: bool, lines: bool, say) -> None:
        from tqdm import tqdm

        self.name, self.start, self.say = name, time.perf_counter(), say
        self.bar = tqdm(desc=name, bar_format="{desc}: {elapsed}", leave=False) if bar else None
        self.lines = lines and not bar
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        every = 0.5 if self.bar is not None else max(line_seconds(), 0.2)
        while not self.done.wait(every):
            if self.bar is not None:
                self.bar.refresh()
            elif self.lines:
                try:
                    self.say(f"  {self.name}: {time.perf_counter() - self.start:.0f} s elapsed")
                except (OSError, ValueError):  # stdout closed (`| head`): the main thread
                    return  # reports it when it next writes; this one just stops ticking

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        if self.bar is not None:
            self.bar.close()
