"""Fail before the work: every output is checked before training (writable, not an input, not
another output, not in the parse cache), and a misspelt flag is an error, not a prefix match."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from mfrec.cli import main


@pytest.fixture()
def ratings(tmp_path) -> Path:
    path = tmp_path / "mine.csv"
    path.write_text(
        "".join(f"{u},{i},{(u * i) % 5 + 1}\n" for u in range(1, 9) for i in range(1, 7))
    )
    return path


def refused(capsys, argv: list[str]) -> str:
    """Run ``mfrec train ARGV``; it must exit 2 before training, with one error line."""
    assert main(["train", "--model", "biased", "--epochs", "1", *argv]) == 2
    out, err = capsys.readouterr()
    assert "test RMSE" not in out and "reading" not in out  # nothing ran
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mfrec: error: "), err
    return lines[0]


@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink"])
def test_save_over_the_ratings_file_is_refused_naming_both_flags(ratings, capsys, how,
                                                                  monkeypatch):  # fmt: skip
    before = ratings.read_bytes()
    target = {"same": ratings, "relative": Path("mine.csv")}.get(how)
    if target is None:
        target = ratings.parent / f"{how}.csv"
        (os.symlink if how == "symlink" else os.link)(ratings, target)
    monkeypatch.chdir(ratings.parent)
    line = refused(capsys, ["--ratings", str(ratings), "--save", str(target)])
    assert f"--save {target} is the --ratings file {ratings}" in line
    assert ratings.read_bytes() == before


def test_two_outputs_that_are_one_file_are_refused(ratings, tmp_path, capsys):
    out = tmp_path / "out.npz"
    line = refused(capsys, ["--ratings", str(ratings), "--save", str(out), "--plot",
                            str(tmp_path / "." / "out.npz")])  # fmt: skip
    assert "--plot" in line and "--save" in line and "are the same file" in line
    assert not out.exists()


def test_checkpoint_over_the_test_file_is_refused(ratings, tmp_path, capsys):
    line = refused(capsys, ["--train", str(ratings), "--test", str(ratings), "--checkpoint",
                            str(ratings)])  # fmt: skip
    assert f"--checkpoint {ratings} is the --train file" in line


def test_an_output_in_the_parse_cache_is_refused(ratings, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MFREC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "parsed").mkdir(parents=True)
    line = refused(capsys, ["--ratings", str(ratings), "--save",
                            str(tmp_path / "cache" / "parsed" / "m.npz")])  # fmt: skip
    assert "is inside the parse cache" in line


def test_an_empty_save_name_says_so(ratings, capsys):
    line = refused(capsys, ["--ratings", str(ratings), "--save", ""])
    assert line == "mfrec: error: --save: empty file name; give a path such as model.npz"


def test_an_unwritable_folder_is_refused_before_training(ratings, tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if can_create_in(folder):  # root writes anywhere: use a folder nobody may write
            folder = Path("/sys")
            if not folder.is_dir() or can_create_in(folder):
                pytest.skip("no folder here refuses a new file to this user")
        line = refused(capsys, ["--ratings", str(ratings), "--save", str(folder / "m.npz")])
        assert f"cannot write in {folder}" in line and "nothing was run" in line
    finally:
        (tmp_path / "locked").chmod(0o700)


def can_create_in(folder: Path) -> bool:
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def test_a_misspelt_flag_is_an_error_not_a_prefix(ratings, capsys):
    assert main(["train", "--ratings", str(ratings), "--epoch", "3"]) == 2
    err = capsys.readouterr().err
    assert "mfrec train: error: unrecognized arguments: --epoch 3" in err
