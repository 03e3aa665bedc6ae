"""Progress as a person sees it: a tqdm bar with rate and ETA under a terminal (a pty), a line
with elapsed time and ETA when stderr is a file, and nothing under --quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["-m", "mfrec", "train", "--model", "biased", "--factors", "2", "--epochs", "40"]


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    pairs = np.unique(np.column_stack([rng.integers(1, 60, 3000), rng.integers(1, 40, 3000)]),
                      axis=0)  # fmt: skip
    path = tmp_path_factory.mktemp("progress") / "r.tsv"
    r = rng.integers(1, 6, len(pairs))
    path.write_text("".join(f"{u}\t{i}\t{x}\n" for (u, i), x in zip(pairs, r, strict=True)))
    return path


def env(tmp_path: Path, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "MFREC_CACHE": str(tmp_path), **extra}


def run_under_pty(argv: list[str], environ: dict) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout a pipe); returns (status, stdout, tty)."""
    master, slave = pty.openpty()
    # A fresh pty is 0 columns wide (tqdm would draw an empty bar): size it as a terminal.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=slave,
                            env=environ)  # fmt: skip
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read().decode()
    os.close(master)
    return proc.wait(timeout=300), out, seen.decode(errors="replace")


def test_a_terminal_gets_a_bar_with_rate_and_eta(ratings, tmp_path):
    code, out, tty = run_under_pty([*TRAIN, "--ratings", str(ratings)], env(tmp_path))
    assert code == 0, tty[-2000:]
    # tqdm's bar: "numba:  45%|████▌     | 18/40 [00:01<00:01, 17.2epoch/s]"
    assert re.search(r"numba: +\d+%\|.*\| \d+/40 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(epoch/s|s/epoch)",
                     tty), tty[-2000:]  # fmt: skip
    assert "test RMSE" in out and "epoch  40/40" not in out  # the bar replaces epoch lines


def test_a_file_gets_lines_with_elapsed_time_and_eta(ratings, tmp_path):
    log = tmp_path / "err.txt"
    with open(log, "w") as err:
        proc = subprocess.run([sys.executable, *TRAIN, "--ratings", str(ratings)], stderr=err,
                              stdout=subprocess.PIPE, text=True, timeout=300,
                              env=env(tmp_path, MFREC_PROGRESS_SECONDS="0"))  # fmt: skip
    assert proc.returncode == 0
    lines = log.read_text().splitlines()
    eta = [x for x in lines if re.fullmatch(r"  numba: \d+/40 epochs, \d+ s elapsed, ETA \d+ s", x)]
    assert len(eta) == 39, lines  # every epoch after the first (the clock starts at epoch 1)
    assert "epoch  40/40" in proc.stdout  # the per-epoch RMSE lines stay on stdout
    assert "\r" not in log.read_text()  # no bar drawn into a file


def test_quiet_silences_bar_and_lines(ratings, tmp_path):
    code, out, tty = run_under_pty([*TRAIN, "--ratings", str(ratings), "--quiet"],
                                   env(tmp_path, MFREC_PROGRESS_SECONDS="0"))  # fmt: skip
    assert code == 0 and tty == "", tty[-2000:]
    assert out.startswith("numba (MatrixFactorization): test RMSE")


def test_uncounted_stages_tick_elapsed_time_on_a_file(capsys, monkeypatch):
    import time

    from mfrec.progress import stage

    monkeypatch.setenv("MFREC_PROGRESS_SECONDS", "0")  # ticks at the floor, every 0.2 s
    with stage("parsing", say=print, lines=True):
        time.sleep(0.5)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "parsing ..."  # under a second: no closing duration line
    ticks = out[1:]
    assert 1 <= len(ticks) <= 3 and all(re.fullmatch(r"  parsing: 0 s elapsed", x) for x in ticks)
