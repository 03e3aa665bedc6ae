"""mfrec._internal.atomic_write: the one temp-file-then-rename writer."""

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from mfrec._internal import ORPHAN_AGE_S, atomic_write, remove_orphans


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_file_has_the_mode_open_would_give(tmp_path, umask_022):
    target = tmp_path / "model.npz"
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npz")
        tmp.write_bytes(b"x")
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o644


def test_failure_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_missing_parent_is_an_error_unless_asked(tmp_path):
    target = tmp_path / "no" / "such" / "file.txt"
    with pytest.raises(FileNotFoundError, match=str(target.parent)), atomic_write(target):
        pass
    with atomic_write(target, parents=True) as tmp:
        tmp.write_text("ok")
    assert target.read_text() == "ok"


WRITER = """
import sys, time
from mfrec._internal import atomic_write
with atomic_write(sys.argv[1]) as tmp:
    tmp.write_bytes(b"partial")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_killed_writers_leave_no_temp_file_past_the_next_save(tmp_path):
    """kill -9 during a write leaves its temp file; the next write of the target removes it."""
    target = tmp_path / "m.npz"
    for round_ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline() == "writing\n"
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        orphans = [p for p in tmp_path.iterdir() if p.name != "m.npz"]
        assert len(orphans) == 1 and f".{writer.pid}." in orphans[0].name
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"round %d" % round_)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
        assert target.read_bytes() == b"round %d" % round_


def test_cleanup_keeps_live_writers_and_other_files(tmp_path):
    target = tmp_path / "m.npz"
    live = tmp_path / f".m.npz.{os.getppid()}.abc.tmp.npz"  # a live process: kept
    old_style = tmp_path / ".m.npz.k2j3h4.tmp.npz"  # no pid: removed once a day old
    other = tmp_path / ".n.npz.999999999.abc.tmp.npz"  # another target's: kept
    for p in (live, old_style, other):
        p.write_bytes(b"x")
    with atomic_write(target) as tmp:
        tmp.write_bytes(b"new")
    assert live.exists() and old_style.exists() and other.exists()
    day_old = time.time() - ORPHAN_AGE_S - 60
    os.utime(old_style, (day_old, day_old))
    assert remove_orphans(target) == [old_style]
    assert live.exists() and other.exists()
