"""Progress a person sees, and that stays out of the way.

On a terminal (stderr a TTY) every counted stage gets a tqdm bar with its rate and ETA (epochs,
sweeps, scoring; the bytes of a parse and of the parse cache's hash, the ratings of a split),
and an uncounted one (a save) a live elapsed-time line. When stderr is a file, a line every
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
from collections.abc import Callable, Iterator
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


def eta_bar(
    total: int,
    enabled: bool,
    desc: str,
    lines: bool = True,
    unit: str = "step",
    unit_scale: bool = False,
):
    """A tqdm bar over ``total`` steps on stderr (rate, elapsed, ETA) when ``enabled``; else,
    with ``lines``, a stderr line every :data:`LINE_SECONDS` with steps done, elapsed time and
    ETA; else nothing (an object with tqdm's ``update``/``set_postfix``/``close``).
    ``unit_scale`` writes counts as 12.3M (for bytes, ``unit="B"``: 12.3MB)."""
    from tqdm import tqdm

    if enabled or not lines:
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=unit_scale,
            leave=False,
            disable=not enabled,
        )
    return _LineProgress(total, desc, unit, unit_scale)


class _LineProgress:
    """The non-interactive stand-in for a tqdm bar. The clock starts at the first step (so a
    first epoch's compilation does not count in the ETA of the rest); a line is printed when
    :data:`LINE_SECONDS` have passed since the last one."""

    def __init__(self, total: int, desc: str, unit: str = "step", unit_scale: bool = False):
        self.total, self.desc, self.unit, self.n = max(int(total), 1), desc, unit, 0
        self.unit_scale = unit_scale
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
        eta = spent * (self.total - self.n) / max(self.n - self.n0, 1)
        if self.unit_scale:
            from tqdm import tqdm

            done = f"{tqdm.format_sizeof(self.n)}/{tqdm.format_sizeof(self.total)}{self.unit}"
        else:
            done = f"{self.n}/{self.total} {self.unit}s"
        print(
            f"  {self.desc}: {done}, {spent:.0f} s elapsed, ETA {eta:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def set_postfix(self, *args, **kwargs) -> None:
        """Nothing to show between lines (tqdm's interface)."""

    def close(self) -> None:
        """Nothing to tear down (tqdm's interface)."""


_counting = [0]
"""How many :func:`counted` displays are open: a :class:`_Ticker` prints no elapsed-time lines
meanwhile (the counted lines say it, with an ETA)."""


@contextmanager
def counted(
    name: str, bar: bool, lines: bool, unit: str = "B"
) -> Iterator[Callable[[str, int, int], None]]:
    """A ``report(what, done, total)`` callback for the library's progress hooks (the bytes
    :func:`mfrec.data.read_ratings` reads and hashes): one :func:`eta_bar` per step ``what``,
    named "``what`` ``name``", in scaled ``unit`` (a bar with rate and ETA on the terminal,
    with ``bar``; else an ETA line every :data:`LINE_SECONDS`, with ``lines``), closed when
    ``done`` reaches ``total``. A step that starts again (``done`` back to 0) gets a fresh
    display. Shows nothing when neither is wanted."""
    step: list = ["", 0, None]  # what, done, its display (None once through)

    def finish() -> None:
        if step[2] is not None:
            step[2].close()
            step[2] = None
            _counting[0] -= 1

    def report(what: str, done: int, total: int) -> None:
        if not (bar or lines):
            return
        if what != step[0] or done < step[1]:
            finish()
            desc = f"{what} {name}" if name else what
            step[:] = [what, 0, eta_bar(total, bar, desc, lines, unit, unit_scale=True)]
            _counting[0] += 1
        # No update for a step's start: the lines' clock starts at its first block (as at a first
        # epoch, compiling the kernels stays out of the ETA); the bar's at its creation.
        if step[2] is None or done <= step[1]:
            return
        step[2].update(done - step[1])
        step[1] = done
        if done >= total:
            finish()

    try:
        yield report
    finally:
        finish()


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
            elif self.lines and not _counting[0]:
                try:
                    self.say(f"  {self.name}: {time.perf_counter() - self.start:.0f} s elapsed")
                except (OSError, ValueError):  # stdout closed (`| head`): the main thread
                    return  # reports it when it next writes; this one just stops ticking

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        if self.bar is not None:
            self.bar.close()
