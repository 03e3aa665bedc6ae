"""mfrec._internal.atomic_write: the one temp-file-then-rename writer."""

import os
import stat

import pytest

from mfrec._internal import atomic_write


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
