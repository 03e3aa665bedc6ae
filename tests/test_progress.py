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


# Reading the ratings: the parser reports bytes read (and the parse cache's hash bytes hashed)
# once per block, so the CLI shows a counted bar or ETA lines for it. The subprocess shrinks the
# blocks and hash pieces (and caches every file) so that a 0.4 MB file takes a dozen of each.
SMALL_BLOCKS = (
    "import sys; import mfrec.data.parse as P; P.BLOCK_BYTES = P.HASH_PIECE = 1 << 15; "
    "P.CACHE_MIN_BYTES = 0; from mfrec.cli import main; sys.exit(main(sys.argv[1:]))"
)
ETA_TAIL = r"\d+ s elapsed, ETA \d+ s"
TRAIN_ONE = ["train", "--model", "biased", "--factors", "2", "--epochs", "1"]


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """Every (user, item) pair of 400 users and 100 items, rated once: about 0.4 MB."""
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("progress") / "big.tsv"
    r = rng.integers(1, 6, 40_000)
    path.write_text("".join(f"{k // 100 + 1}\t{k % 100 + 1}\t{x}\n" for k, x in enumerate(r)))
    return path


def test_reading_reports_bytes_once_per_block(big, tmp_path, monkeypatch):
    import gzip

    from mfrec.data import parse

    packed = tmp_path / "big.tsv.gz"
    packed.write_bytes(gzip.compress(big.read_bytes()))
    calls: list[tuple[str, int, int]] = []

    def report(*call) -> None:
        calls.append(call)

    for path in (big, packed):
        calls.clear()
        whole = parse.read_ratings(path, cache=False, report=report)
        size = path.stat().st_size
        assert calls == [("reading", 0, size), ("reading", size, size)]  # one block, not a line
        monkeypatch.setattr(parse, "BLOCK_BYTES", 1 << 15)
        calls.clear()
        table = parse.read_ratings(path, cache=False, report=report)
        monkeypatch.undo()
        np.testing.assert_array_equal(table.ratings, whole.ratings)
        done = [d for _, d, _ in calls]
        assert {w for w, _, _ in calls} == {"reading"} and {t for *_, t in calls} == {size}
        assert done[0] == 0 and done[-1] == size and done == sorted(done)
        blocks = -(-big.stat().st_size // (1 << 15))  # of the content: compressed, fewer bytes
        assert blocks <= len(calls) - 1 <= blocks + 1


def test_text_ids_are_read_again_from_byte_0(tmp_path):
    from mfrec.data import parse

    path = tmp_path / "text.tsv"
    path.write_text("".join(f"u{k}\ti{k % 7}\t{k % 5 + 1}\n" for k in range(1000)))
    calls: list[tuple[str, int, int]] = []
    table = parse.read_ratings(path, cache=False, report=lambda *c: calls.append(c))
    size = path.stat().st_size
    assert table.user_ids[0] == "u0"  # read by the text path, after the kernel gave up
    assert calls == [("reading", 0, size), ("reading", 0, size), ("reading", size, size)]


def test_a_counted_display_quiets_the_stage_ticker(capsys, monkeypatch):
    import time

    from mfrec.progress import counted, stage

    monkeypatch.setenv("MFREC_PROGRESS_SECONDS", "0")  # the ticker at its floor, every 0.2 s
    with stage("reading", say=print, lines=True):
        with counted("r.tsv", bar=False, lines=True) as report:
            report("reading", 0, 300)
            for done in (100, 200, 300):
                time.sleep(0.25)
                report("reading", done, 300)
    out, err = capsys.readouterr()
    assert out.splitlines() == ["reading ..."]  # no "reading: 0 s elapsed" beside the ETA lines
    lines = err.splitlines()  # the clock starts at the first block: no line for it
    assert len(lines) == 2 and re.fullmatch(rf"  reading r\.tsv: 200/300B, {ETA_TAIL}", lines[0])
    assert re.fullmatch(r"  reading r\.tsv: 300/300B, \d+ s elapsed, ETA 0 s", lines[1])


def test_the_cache_hash_reports_bytes_hashed(big, monkeypatch):
    import os

    from mfrec.data import parse

    monkeypatch.setattr(parse, "HASH_PIECE", 1 << 15)
    calls: list[tuple[str, int, int]] = []
    size = big.stat().st_size
    fd = os.open(big, os.O_RDONLY)
    try:
        digest = parse.content_digest(fd, size, lambda *c: calls.append(c))
        assert digest == parse.content_digest(fd, size)  # the hook changes nothing
    finally:
        os.close(fd)
    pieces = -(-size // (1 << 15))
    assert calls[0] == ("hashing", 0, size) and calls[-1] == ("hashing", size, size)
    assert [d for _, d, _ in calls[1:]] == [min(k << 15, size) for k in range(1, pieces + 1)]


def test_a_terminal_gets_a_byte_bar_for_reading_and_hashing(big, tmp_path):
    # Every update drawn (tqdm reads its defaults from TQDM_*), so the bar shows an ETA.
    environ = env(tmp_path, TQDM_MININTERVAL="0", TQDM_MINITERS="1")
    code, out, tty = run_under_pty(["-c", SMALL_BLOCKS, *TRAIN_ONE, "--ratings", str(big)],
                                   environ)  # fmt: skip
    assert code == 0, tty[-2000:]
    # "reading big.tsv:  41%|████      | 164k/400k [00:00<00:00, 9.87MB/s]"
    eta = r"\[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]?B/s\]"
    for what in ("reading", "hashing"):
        bar = rf"{what} big\.tsv: +\d+%\|[^|]*\| [\d.]+k/[\d.]+k {eta}"
        assert re.search(bar, tty), tty[-3000:]
    split = r"splitting \(shuffle \+ index\): +\d+%\|[^|]*\| [\d.]+k/80\.0k \[\d\d:\d\d<\d\d:\d\d"
    assert re.search(split, tty), tty[-3000:]
    assert "test RMSE" in out


def test_a_file_gets_eta_lines_for_reading_and_hashing(big, tmp_path):
    import gzip

    from tqdm import tqdm

    packed = tmp_path / "big.tsv.gz"
    packed.write_bytes(gzip.compress(big.read_bytes()))
    for path in (big, packed):
        log = tmp_path / "err.txt"
        with open(log, "w") as err:
            argv = [sys.executable, "-c", SMALL_BLOCKS, *TRAIN_ONE, "--ratings", str(path)]
            environ = env(tmp_path, MFREC_PROGRESS_SECONDS="0")
            proc = subprocess.run(argv, stderr=err, stdout=subprocess.PIPE, text=True,
                                  timeout=300, env=environ)  # fmt: skip
        assert proc.returncode == 0, log.read_text()
        text = log.read_text()
        assert "\r" not in text  # no bar drawn into a file
        size = path.stat().st_size
        total = tqdm.format_sizeof(size)  # "389k"
        for what, least in (("reading", 3), ("hashing", -(-size // (1 << 15)) - 1)):
            line = rf"  {what} {re.escape(path.name)}: ([\d.]+k?)/([\d.]+k)B, {ETA_TAIL}"
            seen = [m for m in map(re.compile(line).fullmatch, text.splitlines()) if m]
            assert len(seen) >= least, text  # a line a block (piece) after the first
            assert {m[2] for m in seen} == {total} and seen[-1][1] == total, text
            assert seen[-1][0].endswith("ETA 0 s"), text
        split = rf"  splitting \(shuffle \+ index\): [\d.]+k/80\.0k ratings, {ETA_TAIL}"
        assert any(re.fullmatch(split, x) for x in text.splitlines()), text


def test_quiet_silences_the_reading_bar_and_lines(big, tmp_path):
    environ = env(tmp_path, TQDM_MININTERVAL="0", TQDM_MINITERS="1", MFREC_PROGRESS_SECONDS="0")
    code, out, tty = run_under_pty(["-c", SMALL_BLOCKS, *TRAIN_ONE, "--ratings", str(big),
                                    "--quiet"], environ)  # fmt: skip
    assert code == 0 and tty == "", tty[-2000:]
    assert out.startswith("numba (MatrixFactorization): test RMSE")
