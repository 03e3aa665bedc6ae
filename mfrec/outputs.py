"""Checks on the files a run will write, made before any work: nothing is lost at the end.

:func:`check_outputs` refuses an output that could not be written (its folder is missing or
read-only: a temp file is created and removed there), an empty name, an output that is an
input (the same path once resolved, or the same file by inode: a hard link or a symlink), two
outputs that are one file, and an output inside the parse cache folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_outputs(
    outputs: dict[str, str | os.PathLike | None],
    inputs: dict[str, str | os.PathLike | None] | list[tuple[str, str | os.PathLike | None]],
    cache_dir: str | os.PathLike | None = None,
) -> None:
    """Raise ``ValueError`` (one line naming both flags) unless every output can be written
    and is neither an input, another output, nor inside ``cache_dir``.

    ``outputs`` maps a label (the command-line flag) to a path, None where absent; ``inputs``
    likewise, or is a list of (label, path) pairs (one label for the files of a release).
    """
    for label, p in outputs.items():
        if p is not None and str(p) == "":
            raise ValueError(f"{label}: empty file name; give a path such as model.npz")
    outs = {label: Path(p) for label, p in outputs.items() if p is not None}
    pairs = inputs.items() if isinstance(inputs, dict) else inputs
    ins = [(label, Path(p)) for label, p in pairs if p is not None]
    for label, path in outs.items():
        check_writable(label, path)
    seen: list[tuple[str, Path]] = []
    for label, path in outs.items():
        for in_label, in_path in ins:
            if same_file(path, in_path):
                raise ValueError(
                    f"{label} {path} is the {in_label} file {in_path}: an output may not "
                    "replace an input; write it elsewhere"
                )
        for other_label, other in seen:
            if same_file(path, other):
                raise ValueError(
                    f"{label} {path} and {other_label} {other} are the same file: "
                    "each output needs its own"
                )
        if cache_dir is not None and path.resolve().is_relative_to(Path(cache_dir).resolve()):
            raise ValueError(
                f"{label} {path} is inside the parse cache {cache_dir} (mfrec replaces and "
                "removes files there); write it elsewhere"
            )
        seen.append((label, path))


def check_writable(label: str, path: Path) -> None:
    """``path`` names a file (not a folder) whose folder exists and takes a new file."""
    if path.is_dir():
        raise ValueError(f"{label} {path}: is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{label} {path}: no folder {folder} (create it first)")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mfrec-probe-"):
            pass
    except OSError as e:
        raise ValueError(
            f"{label} {path}: cannot write in {folder} ({e.strerror or e}); nothing was run"
        ) from None


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: equal once resolved, or (both existing) the same
    device and inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
