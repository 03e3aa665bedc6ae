"""Hostile input (issue 21): one row per case, each run through the command line's entry point.

Every row asserts the exit status, one line of stderr (the error, or the note of a case that
recovers), that stderr stays short (a huge line is quoted cut) and that no file in the case's
folder changed. All rows run in one child process (``python tests/test_bad_input.py CASES``)
that calls ``mfrec.cli.main`` for each, so Numba compiles the kernels once and the whole file
stays fast; the child caches every ratings file (``CACHE_MIN_BYTES = 0``) so that the parse
cache cases need only small files. Files of 256 MiB and 5 GiB are sparse (``truncate``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

TRAIN = ["train", "--model", "plain", "--factors", "2", "--epochs", "1", "--test-size", "0"]
N_ROWS = 160


def ratings_text(extra: str = "", header: str = "user,item,rating") -> str:
    """20 users x 8 distinct items of 30, integer stars: ``N_ROWS`` rows."""
    rng = np.random.default_rng(0)
    lines = [header] if header else []
    for u in range(1, 21):
        for i in rng.choice(np.arange(1, 31), 8, replace=False):
            lines.append(f"{u},{i},{rng.integers(1, 6)}{extra}")
    return "\n".join(lines) + "\n"


# Set-up steps the child runs (by name) between command-line runs -----------------------------


def _cache_file(source: str) -> Path:
    from mfrec.data.parse import cache_path

    return cache_path(source)


def edit_keep_size_and_mtime(source: str) -> None:
    """Replace the last row by a bad line of the same length, then restore size and mtime."""
    path = Path(source)
    st = path.stat()
    text = path.read_text().splitlines()
    text[-1] = "x" * len(text[-1])
    path.write_text("\n".join(text) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def replace_by_mv_same_size_and_mtime(source: str) -> None:
    """``mv`` another file (same size, same mtime, one bad line) over the source."""
    path = Path(source)
    st = path.stat()
    other = path.with_name("other.csv")
    text = path.read_text().splitlines()
    text[1] = "?" * len(text[1])
    other.write_text("\n".join(text) + "\n")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, path)


def damage_cache(source: str, how: str) -> None:
    """Damage the parse cache entry of ``source``: bytes (flip, truncate) or arrays (rewritten,
    with the stored checksum recomputed when ``how`` ends in ``+checksum``)."""
    from mfrec.data.parse import _arrays_digest

    target = _cache_file(source)
    blob = bytearray(target.read_bytes())
    if how == "flip":
        blob[len(blob) // 2] ^= 0xFF
        target.write_bytes(bytes(blob))
        return
    if how.startswith("truncate:"):
        size = how.split(":")[1]
        target.write_bytes(bytes(blob[: len(blob) // 2 if size == "half" else int(size)]))
        return
    with np.load(target, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    what, _, fix = how.partition("+")
    if what == "nan":
        a["ratings"] = a["ratings"].astype(np.float64)
        a["ratings"][3] = np.nan
    elif what == "index":
        a["users"] = a["users"].copy()
        a["users"][0] = 10_000
    elif what == "short":
        a["users"] = a["users"][:-5]
    if fix:
        arrays = {k: v for k, v in a.items() if k not in ("key", "checksum")}
        a["checksum"] = np.array(_arrays_digest(arrays))
    with open(target, "wb") as f:
        np.savez(f, **a)


STEPS = {
    "edit_keep_size_and_mtime": edit_keep_size_and_mtime,
    "replace_by_mv_same_size_and_mtime": replace_by_mv_same_size_and_mtime,
    "damage_cache": damage_cache,
}


def run_cases(spec: list[dict]) -> list[dict]:
    """The child: run every case's steps; record the last command-line run of each."""
    import mfrec.data.parse as parse
    from mfrec.cli import main

    parse.CACHE_MIN_BYTES = 0
    results = []
    for case in spec:
        os.chdir(case["cwd"])
        os.environ["MFREC_CACHE"] = case["cache"]
        for step in case["steps"]:
            if step[0] != "cli":
                STEPS[step[0]](*step[1:])
                continue
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = main(step[1])
            except BaseException as e:  # a traceback is a failure the row reports
                code = f"raised {type(e).__name__}: {e}"
            result = {"name": case["name"], "code": code, "stdout": out.getvalue()}
            result["stderr"] = err.getvalue()
        results.append(result)
    return results


# Rows ---------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    code: int
    line: str  # a regex one line of stderr must match in full
    files: dict[str, bytes | str] = field(default_factory=dict)
    steps: list = field(default_factory=list)
    json: dict = field(default_factory=dict)  # fields the JSON result must hold


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def _zst(text: str) -> bytes:
    try:
        import zstandard  # pyright: ignore[reportMissingImports] (optional, may be absent)
    except ImportError:
        return b"\x28\xb5\x2f\xfd" + b"\0" * 16  # the magic: enough to be recognised
    return zstandard.ZstdCompressor().compress(text.encode())


def _has_zstandard() -> bool:
    try:
        import zstandard  # noqa: F401  # pyright: ignore[reportMissingImports] (optional)
    except ImportError:
        return False
    return True


GOOD = ratings_text()
TRAIN_R = [*TRAIN, "--ratings", "r.csv", "--json"]
ERR = r"mfrec: error: "
NOTE = r"(?:mfrec: note: )?"  # notes are logged to "mfrec.data"; a CLI may prefix them


def cache_case(name: str, how: str, why: str) -> Case:
    """A damaged cache entry: re-parsed, one note, the right number of ratings."""
    return Case(
        name,
        0,
        rf"{NOTE}r\.csv: ignoring its damaged parse cache .*\({why}.*\); parsed again",
        {"r.csv": GOOD},
        [["cli", TRAIN_R], ["damage_cache", "r.csv", how], ["cli", TRAIN_R]],
        {"n_train": N_ROWS},
    )


def changed_source(name: str, step: str, error: str) -> Case:
    """``r.csv`` parsed (and cached), changed by ``step`` behind the cache's back, then read
    again: exit 2 and the error ``error`` (after ``mfrec: error: ``) of the new content."""
    return Case(
        name, 2, ERR + error, {"r.csv": GOOD}, [["cli", TRAIN_R], [step, "r.csv"], ["cli", TRAIN_R]]
    )


def bad_ratings(name: str, file: str, content: str, error: str) -> Case:
    """``train --ratings FILE`` with ``content`` in FILE (see :func:`_make`): exit 2 and the
    error ``error`` (after ``mfrec: error: ``)."""
    return Case(name, 2, ERR + error, {file: content}, [["cli", [*TRAIN, "--ratings", file]]])


def read_ratings_case(name: str, content: str | bytes, line: str = "") -> Case:
    """``train --ratings r.csv --json`` reading all ``N_ROWS`` ratings of ``content``, with a
    stderr line ``line`` when given."""
    return Case(name, 0, line, {"r.csv": content}, [["cli", TRAIN_R]], {"n_train": N_ROWS})


def bad_model(name: str, content: str | bytes, error: str) -> Case:
    """``recommend --model m.npz`` with ``content`` in m.npz: exit 2 and the error ``error``
    (after ``mfrec: error: m.npz: ``)."""
    command = ["recommend", "--model", "m.npz", "--user", "1"]
    return Case(name, 2, rf"{ERR}m\.npz: {error}", {"m.npz": content}, [["cli", command]])


def model_case(name: str, why: str, **change) -> Case:
    """A model file with the fields ``change`` replaced: a corrupt model file, for ``why``."""
    return bad_model(name, model_file(**change), rf"corrupt model file \({why}\)")


def model_file(meta_change=None, **arrays) -> bytes:
    """A valid model file's bytes (3 users, 4 items, k=2), with ``arrays`` and ``meta_change``
    replacing fields."""
    rng = np.random.default_rng(1)
    meta = {
        "format": "mfrec-model",
        "version": 1,
        "class": "MatrixFactorization",
        "params": {"n_factors": 2, "r_min": 1.0, "r_max": 5.0},
        "mu": 3.5,
        "biased": True,
    }
    meta.update(meta_change or {})
    a = {
        "P": rng.normal(size=(3, 2)),
        "Q": rng.normal(size=(4, 2)),
        "bu": np.zeros(3),
        "bi": np.zeros(4),
        "user_ids": np.array([1, 2, 3]),
        "item_ids": np.array([10, 20, 30, 40]),
        "seen_indptr": np.array([0, 1, 2, 3]),
        "seen_indices": np.array([0, 1, 2]),
        "title_ids": np.array([10, 20]),
        "title_names": np.array(["Ten", "Twenty"]),
    }
    a.update(arrays)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **a)
    return buf.getvalue()


def zip_bomb() -> bytes:
    """A ~100 KiB model file whose P member inflates to 100 MiB of zeros (an honest header)."""
    buf = io.BytesIO()
    n = 100 << 20
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("meta.npy", _npy(np.array(json.dumps({"format": "mfrec-model", "version": 1}))))
        with z.open("P.npy", "w") as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f8", "fortran_order": False, "shape": (n // 8, 1)}
            )
            f.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(n >> 20):
                f.write(zeros)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def build_cases() -> list[Case]:
    """The rows (built in the test process only: the child gets them as JSON)."""
    return [
        # No output ever replaces an input or another output (checked before any work).
        Case(
            "output: --save is the --ratings file",
            2,
            rf"{ERR}--save r\.csv is the --ratings file r\.csv: an output may not replace an "
            r"input; write it elsewhere",
            {"r.csv": GOOD},
            [["cli", [*TRAIN, "--ratings", "r.csv", "--save", "r.csv"]]],
        ),
        Case(
            "output: --save and --plot are one file",
            2,
            rf"{ERR}--plot out\.npz and --save out\.npz are the same file: each output needs .*",
            {"r.csv": GOOD},
            [["cli", [*TRAIN, "--ratings", "r.csv", "--save", "out.npz", "--plot", "out.npz"]]],
        ),
        # The parse cache is keyed on content.
        changed_source(
            "cache: edited keeping size and mtime",
            "edit_keep_size_and_mtime",
            rf"r\.csv:{N_ROWS + 1}: expected 'user item rating \[timestamp\]', got 'xxx.*'",
        ),
        changed_source(
            "cache: replaced by mv, same size and mtime",
            "replace_by_mv_same_size_and_mtime",
            r"r\.csv:2: expected 'user item rating \[timestamp\]', got '\?\?\?.*'",
        ),
        # Every cache read is validated: a damaged entry is re-parsed, with one note.
        cache_case("cache: NaN rating, stale checksum", "nan", "checksum mismatch"),
        cache_case("cache: NaN rating, valid checksum", "nan+checksum", "a rating not finite"),
        cache_case("cache: bit flip", "flip", ""),
        cache_case("cache: truncated to half", "truncate:half", ""),
        cache_case("cache: truncated to 100 bytes", "truncate:100", ""),
        cache_case("cache: truncated to 0 bytes", "truncate:0", ""),
        cache_case("cache: index out of range", "index+checksum", "an index out of range"),
        cache_case("cache: short users array", "short+checksum", "columns of different lengths"),
        # Bounded work on hostile ratings files.
        bad_ratings("FIFO with no writer", "f.csv", "fifo", r"f\.csv: is a FIFO .*"),
        bad_ratings(
            "256 MiB of NUL bytes", "z.csv", "sparse:256M", r"z\.csv:1: line longer than 64 KiB .*"
        ),
        bad_ratings(
            "5 GiB sparse file", "z.csv", "sparse:5G", r"z\.csv:1: line longer than 64 KiB .*"
        ),
        bad_ratings(
            "a 10 MB garbage line",
            "g.csv",
            "1 2 3\n" + "1" * 10_000_000 + "\n2 3 4\n",
            r"g\.csv:2: line longer than 64 KiB \(starts '1111.*",
        ),
        bad_ratings(
            "a long line quoted cut",
            "g.csv",
            "1,2,3\n1,2," + "y" * 30_000 + "\n",
            r"g\.csv:2: rating 'y+'\.\.\. \(30000 characters\) is not .*",
        ),
        bad_ratings(
            "first MiB only blank lines",
            "b.csv",
            "\n" * (2 << 20) + GOOD,
            r"b\.csv: the first 1 MiB hold no data .*",
        ),
        # One rating grammar on both paths.
        bad_ratings(
            "integer ids, rating 1_0",
            "r.csv",
            "user,item,rating\n1,2,3\n1,3,1_0\n",
            r"r\.csv:3: rating '1_0' is not a number .*",
        ),
        bad_ratings(
            "text ids, rating 1_0",
            "r.csv",
            "user,item,rating\nu1,i2,3\nu1,i3,1_0\n",
            r"r\.csv:3: rating '1_0' is not a number .*",
        ),
        bad_ratings(
            "text ids, Arabic-Indic digits",
            "r.csv",
            "user,item,rating\nu1,i2,3\nu1,i3,\u0663\n",
            r"r\.csv:3: rating '\u0663' is not a number .*",
        ),
        bad_ratings(
            "integer ids, Arabic-Indic digits",
            "r.csv",
            "user,item,rating\n1,2,3\n1,3,\u0663\n",
            r"r\.csv:3: rating '\u0663' is not a .*",
        ),
        # An unused column is named in one line.
        read_ratings_case(
            "a fifth column",
            ratings_text(",1,comedy", "user,item,rating,timestamp,genre"),
            rf"{NOTE}r\.csv: column 5 \('genre'\) not used: .*",
        ),
        # Compressed ratings files, recognised by their first bytes.
        read_ratings_case("gzip", _gz(GOOD)),
        read_ratings_case("bzip2", __import__("bz2").compress(GOOD.encode())),
        read_ratings_case("xz", lzma.compress(GOOD.encode())),
        read_ratings_case("zstd", _zst(GOOD))
        if _has_zstandard()
        else Case(
            "zstd, no module",
            2,
            rf"{ERR}r\.csv: is zstd-compressed; install .*",
            {"r.csv": _zst(GOOD)},
            [["cli", TRAIN_R]],
        ),
        bad_ratings("a zip archive", "r.zip", "zip", r"r\.zip: is a zip archive; unpack it .*"),
        # Memory is estimated before the factors are allocated.
        Case(
            "factors that cannot fit",
            2,
            rf"{ERR}P and Q \(20 \+ \d+ rows x 10000000000 factors\) would need [\d.]+ GiB of "
            r"memory but [\d.]+ [GM]iB is available; .*",
            {"r.csv": GOOD},
            [
                [
                    "cli",
                    [*TRAIN[:3], "--factors", "10000000000", "--epochs", "1", "--ratings", "r.csv"],
                ]
            ],
        ),
        # Model files: sizes capped before inflating, every field validated, the file named.
        bad_model(
            "model: zip member expands 1000x",
            zip_bomb(),
            r"not an mfrec model file \(its members would expand to \d+ bytes, "
            r"more than the cap of \d+\)",
        ),
        bad_model("model: a FIFO", "fifo", "is not a regular file, expected an mfrec model file"),
        model_case(
            "model: P as strings",
            r"P must hold real floats, got dtype <U\d+",
            P=np.array([["a", "b"]] * 3),
        ),
        model_case(
            "model: P complex",
            r"P must hold real floats, got dtype complex128",
            P=np.ones((3, 2), dtype=complex),
        ),
        model_case(
            "model: Q bool",
            r"Q must hold real floats, got dtype bool",
            Q=np.ones((4, 2), dtype=bool),
        ),
        model_case(
            "model: seen_indices floats",
            r"seen_indices must hold integers, got dtype float64",
            seen_indices=np.array([0.0, 1.0, 2.0]),
        ),
        model_case(
            "model: seen_indptr not monotone",
            r"seen-items index out of range",
            seen_indptr=np.array([0, 2, 1, 3]),
        ),
        model_case(
            "model: one user id 3 times",
            r"user_ids repeats id 7 3 times",
            user_ids=np.array([7, 7, 7]),
        ),
        model_case(
            "model: titles of different lengths",
            r"title_ids and title_names differ .*",
            title_names=np.array(["Ten"]),
        ),
        model_case(
            "model: params a list",
            r"params must be an object, got list",
            meta_change={"params": [1, 2]},
        ),
        model_case(
            "model: mu null", r"mu must be a finite number, got None", meta_change={"mu": None}
        ),
        model_case(
            "model: mu a string",
            r"mu must be a finite number, got 'abc'",
            meta_change={"mu": "abc"},
        ),
        model_case(
            "model: scale_min a string",
            r"params\.scale_min must be a finite number, .*",
            meta_change={"params": {"scale_min": "one", "scale_max": 5}},
        ),
        model_case("model: version true", r"format version True", meta_change={"version": True}),
    ]


CASES = build_cases() if __name__ != "__main__" else []


def _make(folder: Path, files: dict) -> None:
    folder.mkdir(parents=True)
    for name, content in files.items():
        path = folder / name
        if content == "fifo":
            os.mkfifo(path)
        elif content == "zip":
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("ratings.csv", GOOD)
        elif isinstance(content, str) and content.startswith("sparse:"):
            subprocess.run(["truncate", "-s", content.split(":")[1], str(path)], check=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def snapshot(folder: Path) -> dict:
    """Every entry's kind, size and content hash (size, mtime and inode for big files)."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = p.lstat()
        if not p.is_file() or st.st_size > 64 << 20:
            out[p.name] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
        else:
            out[p.name] = (st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every row in one child process; per row: result and the folder's snapshots."""
    root = tmp_path_factory.mktemp("bad_input")
    spec, before = [], {}
    for k, case in enumerate(CASES):
        folder = root / f"case{k}"
        _make(folder, case.files)
        spec.append(
            {
                "name": case.name,
                "cwd": str(folder),
                "cache": str(root / f"cache{k}"),
                "steps": case.steps,
            }
        )
        before[case.name] = folder
    # Set-up runs (all steps but the last) change the folder; snapshot right before the last.
    setup = [dict(s, steps=s["steps"][:-1]) for s in spec if len(s["steps"]) > 1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MFREC_CACHE", None)
    cases_file = root / "cases.json"

    def child(cases: list[dict]) -> list[dict]:
        cases_file.write_text(json.dumps(cases))
        proc = subprocess.run(
            [sys.executable, __file__, str(cases_file)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.splitlines()[-1])

    if setup:
        child([dict(s, steps=[*s["steps"], ["cli", ["--version"]]]) for s in setup])
    snaps = {name: snapshot(folder) for name, folder in before.items()}
    last = [dict(s, steps=s["steps"][-1:]) for s in spec]
    out = {r["name"]: r for r in child(last)}
    for name, folder in before.items():
        out[name]["unchanged"] = snapshot(folder) == snaps[name]
        shutil.rmtree(folder, ignore_errors=True)  # the sparse files cost no disk, but go
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(results, case):
    got = results[case.name]
    assert got["code"] == case.code, got["stderr"][-2000:]
    assert "Traceback" not in got["stderr"]
    lines = got["stderr"].splitlines()
    if case.line:
        assert any(re.fullmatch(case.line, ln) for ln in lines), got["stderr"][-2000:]
    assert len(got["stderr"]) < 4000  # a huge line is never echoed
    if case.code != 0:
        assert sum(ln.startswith("mfrec: error:") for ln in lines) == 1
    for key, value in case.json.items():
        assert json.loads(got["stdout"])[key] == value
    assert got["unchanged"], "a file in the case's folder changed"


if __name__ == "__main__":
    print(json.dumps(run_cases(json.loads(Path(sys.argv[1]).read_text()))))
