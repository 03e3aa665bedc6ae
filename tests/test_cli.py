"""The mfrec command line: every user mistake ends in `mfrec: error: ...`, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_run import low_rank, run

from mfrec.cli import build_parser
from mfrec.configs import SGD_DEFAULTS
from mfrec.modelio import FORMAT_VERSION, load_model

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["train", "cv", "recommend", "similar", "download"]


pytestmark = pytest.mark.usefixtures("cache_in_tmp")


@pytest.fixture
def files(tmp_path):
    """Train and test files of a small low-rank problem (40 users, 30 items)."""
    rng = np.random.default_rng(0)
    lines = [f"{u + 1}\t{i + 101}\t{np.clip(x, 1, 5):.3f}" for u, i, x in low_rank(rng, 0.6)]
    rng.shuffle(lines)
    cut = int(0.8 * len(lines))
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("\n".join(lines[:cut]) + "\n")
    test.write_text("\n".join(lines[cut:]) + "\n")
    return train, test


def train_args(files, *extra):
    train, test = files
    return ["train", "--train", train, "--test", test, "--factors", 3, "--epochs", 5, *extra]


@pytest.fixture
def model(capsys, files, tmp_path):
    """A model trained on ``files`` and saved as model.npz."""
    path = tmp_path / "model.npz"
    assert run(capsys, *train_args(files, "--save", path, "--quiet"))[0] == 0
    return path


def assert_user_error(code, err, *needles):
    assert code != 0
    assert err.startswith("mfrec: error: ") or err.startswith("usage: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_help_for_every_subcommand_shows_defaults(capsys, cmd):
    code, out, _ = run(capsys, cmd, "--help")
    assert code == 0
    assert "usage: mfrec " + cmd in out
    if cmd in ("train", "recommend", "similar"):
        assert "(default: 10)" in out


def test_json_last_line_and_save(capsys, files, tmp_path):
    model = tmp_path / "m" / "model.npz"
    model.parent.mkdir()
    code, out, err = run(capsys, *train_args(files, "--json", "--save", model))
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert {"rmse", "mse", "n_train", "n_test", "seconds"} <= set(result)
    assert 0 < result["rmse"] < 1.5
    assert model.is_file() and not list(model.parent.glob(".*"))
    m, user_ids, item_ids, titles = load_model(model)
    assert m.params["n_factors"] == 3 and m.params["lr"] == SGD_DEFAULTS["lr"]
    assert user_ids.tolist() == list(range(1, 41))


HYPER = [
    (["--lr", "0"], "--lr must be > 0"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--lr", "nan"], "--lr must be > 0"),
    (["--factors", "0"], "--factors must be > 0"),
    (["--epochs", "-1"], "--epochs must be >= 0"),
    (["--reg", "-0.1"], "--reg must be >= 0"),
    (["--test-size", "1.5"], "--test-size"),
    (["--plot", "x.nope"], "unknown image format"),
]


@pytest.mark.parametrize(("flags", "message"), HYPER)
def test_hyper_parameters_out_of_range(capsys, files, tmp_path, flags, message):
    code, _, err = run(capsys, *train_args(files, "--save", tmp_path / "m.npz", *flags))
    assert_user_error(code, err, message)
    assert not (tmp_path / "m.npz").exists()


def test_api_names_the_parameter():
    from mfrec.reference import MatrixFactorization

    for kw, name in [({"lr": 0}, "lr"), ({"n_factors": 0}, "n_factors"),
                     ({"n_epochs": -1}, "n_epochs"), ({"reg": -1.0}, "reg")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"^{name} must be"):
            MatrixFactorization(**kw)


def test_divergence_names_lr_and_epoch_and_saves_nothing(capsys, files, tmp_path):
    model = tmp_path / "m.npz"
    code, _, err = run(capsys, *train_args(files, "--lr", "50", "--save", model, "--quiet"))
    assert_user_error(code, err, "diverged at epoch", "lr=50", "no model was saved")
    assert not model.exists() and not list(tmp_path.glob(".m.npz*"))


BAD_FILES = [
    ("1\t2\n", "train.tsv:1:", "expected 'user item rating"),
    ("1\t2\t3\n1\t3\tfour\n", "train.tsv:2:", "rating 'four' is not a number"),
    ("1\t2\tnan\n", "train.tsv:1:", "not a finite number"),
    ("1\t2\t3\n1\t2\t4\n", "train.tsv:2:", "repeats line 1"),
    ("u1\tabc\n", "train.tsv:1:", "expected 'user item rating"),  # text ids: same errors
    ("", "train.tsv", "the file is empty"),
]


@pytest.mark.parametrize(("text", "where", "what"), BAD_FILES)
def test_bad_training_file(capsys, files, text, where, what):
    files[0].write_text(text)
    code, _, err = run(capsys, *train_args(files))
    assert_user_error(code, err, where, what)


def test_rating_scale_missing_file_and_duplicates_flag(capsys, files, tmp_path):
    code, _, err = run(capsys, *train_args(files, "--rating-scale", "1", "4"))
    assert_user_error(code, err, "train.tsv:", "outside the rating scale [1, 4]")
    code, _, err = run(capsys, "train", "--ratings", tmp_path / "nope.csv")
    assert_user_error(code, err, "nope.csv: no such file")
    files[0].write_text(files[0].read_text() + "1\t101\t2.0\n")
    code, _, err = run(capsys, *train_args(files, "--duplicates", "last", "--quiet"))
    assert code == 0, err


def test_usage_errors_are_not_tracebacks(capsys, files):
    code, _, err = run(capsys, "train", "--factors", "many")
    assert_user_error(code, err, "invalid int value: 'many'")
    code, _, err = run(capsys, "train", "--train", files[0])
    assert_user_error(code, err, "--train and --test go together")
    code, _, err = run(
        capsys, *train_args(files, "--backend", "torch", "--mode", "exact", "--compile")
    )
    assert_user_error(code, err, "compile=True needs mode='minibatch'")


def test_model_files_corrupt_foreign_newer(capsys, model, tmp_path):
    good = model.read_bytes()
    cases = {
        "truncated.npz": good[: len(good) // 2],
        "text.npz": b"hello, not a model",
    }
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, P=np.zeros((2, 2)))
    z = dict(np.load(model))
    meta = json.loads(str(z["meta"]))
    newer = tmp_path / "newer.npz"
    np.savez(newer, **{**z, "meta": np.array(json.dumps({**meta, "version": FORMAT_VERSION + 1}))})
    shapes = tmp_path / "shapes.npz"
    np.savez(shapes, **{**z, "bu": z["bu"][:-1]})
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    expect = {
        "truncated.npz": "not an mfrec model file",
        "text.npz": "not an mfrec model file",
        "foreign.npz": "not an mfrec model file",
        "newer.npz": "newer mfrec (format version 2",
        "shapes.npz": "corrupt model file",
        "missing.npz": "no such model file",
    }
    for name, message in expect.items():
        code, _, err = run(capsys, "recommend", "--model", tmp_path / name, "--user", 1)
        assert_user_error(code, err, str(tmp_path / name), message)


def test_recommend_known_unknown_and_new_user(capsys, model):
    code, out, err = run(capsys, "recommend", "--model", model, "--user", 3, "-k", 4)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "top 4 unseen movies for user 3:"
    assert all(line.split()[2] == "item" for line in lines[1:])  # no titles in a plain file
    # An unknown user is said to be unknown, then served by the item biases (issue 3's fallback).
    code, out, err = run(capsys, "recommend", "--model", model, "--user", 999, "-k", 4)
    assert code == 0, err
    assert "user 999 is not in" in out and "--rate" in out and "Traceback" not in err
    assert out.splitlines()[1] == "top 4 unseen movies for user 999:"
    code, out, err = run(capsys, "recommend", "--model", model, "--rate", "101=5", "102=2", "-k", 3)
    assert code == 0, err
    assert out.startswith("top 3 movies for a new user with 2 ratings:")
    assert "item 101" not in out and "item 102" not in out
    for bad, message in [("101", "ITEM=RATING"), ("x=3", "item x is not in"), ("999=3", "item 999"),
                         ("101=inf", "finite")]:  # fmt: skip
        code, _, err = run(capsys, "recommend", "--model", model, "--rate", bad)
        assert_user_error(code, err, message)


def test_similar(capsys, model):
    code, out, err = run(capsys, "similar", "--model", model, "--item", 105, "-k", 5)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "5 items most similar to item 105 (cosine):"
    cos = [float(line.split()[1]) for line in lines[1:]]
    assert cos == sorted(cos, reverse=True) and all(-1 <= c <= 1 for c in cos)
    assert "item 105" not in "\n".join(lines[1:])
    code, _, err = run(capsys, "similar", "--model", model, "--item", 7)
    assert_user_error(code, err, "item 7 is not in")


def test_plot_both_backends(capsys, files, tmp_path):
    png = tmp_path / "curves.png"
    code, out, err = run(capsys, *train_args(files, "--backend", "both", "--plot", png, "--json"))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["backend"] == "both" and "torch" in result


def test_plot_without_matplotlib(capsys, files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(capsys, *train_args(files, "--plot", tmp_path / "c.png"))
    assert_user_error(code, err, "--plot needs matplotlib", "mfrec[plot]")


def test_same_seed_same_bits_serial_numba(capsys, files, tmp_path):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for p in paths:
        assert run(capsys, *train_args(files, "--save", p, "--quiet", "--seed", 3))[0] == 0
    a, b = (dict(np.load(p)) for p in paths)
    for key in ("P", "Q", "bu", "bi"):
        assert a[key].tobytes() == b[key].tobytes(), key
    assert run(capsys, *train_args(files, "--save", paths[1], "--quiet", "--seed", 4))[0] == 0
    assert dict(np.load(paths[1]))["P"].tobytes() != a["P"].tobytes()


def subprocess_run(*argv, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MFREC_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "mfrec", *map(str, argv)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


def test_real_process_bad_file_and_bad_lr(files, tmp_path):
    files[0].write_text("1\t2\t3\n1\t2\toops\n")
    proc = subprocess_run(*train_args(files), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mfrec: error: ") and "train.tsv:2:" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess_run(*train_args(files, "--lr", "-1"), cwd=tmp_path)
    assert proc.returncode == 2 and "--lr must be > 0" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_parser_knows_every_subcommand():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)


def _ml100k_root() -> Path | None:
    for cand in (os.environ.get("MFREC_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "ml-100k" / "u.data").is_file():
            return Path(cand)
    return None


def test_recommend_prints_movielens_titles(capsys, tmp_path):
    root = _ml100k_root()
    if root is None:
        pytest.skip("MovieLens 100k not found: set MFREC_DATA or place ../shared/data/ml-100k")
    model = tmp_path / "m.npz"
    argv = ["train", "--data-dir", root, "--epochs", 1, "--factors", 2, "--quiet", "--save", model]
    assert run(capsys, *argv)[0] == 0
    code, out, err = run(capsys, "recommend", "--model", model, "--user", 196, "-k", 10)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "top 10 unseen movies for user 196:" and len(lines) == 11
    m, _, item_ids, titles = load_model(model)
    for line in lines[1:]:
        rank, score, title = line.split(maxsplit=2)
        assert title in titles.values() and 1.0 <= float(score) <= 6.0


def test_missing_release_without_download(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MFREC_DATA", raising=False)
    code, _, err = run(
        capsys, "train", "--dataset", "ml-1m", "--data-dir", tmp_path, "--no-download"
    )
    assert_user_error(code, err, "no ml-1m (ratings.dat, movies.dat) in", str(tmp_path))


def test_delimiter_flag_by_name(capsys, files):
    for path in files:
        path.write_text(path.read_text().replace("\t", ";"))
    code, _, err = run(capsys, *train_args(files, "--delimiter", ";", "--quiet"))
    assert code == 0, err
    code, _, err = run(capsys, *train_args(files, "--delimiter", "tab"))
    assert_user_error(code, err, "train.tsv:1: expected 'user item rating")


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_validation_split_early_stopping_keeps_the_best_epoch(capsys, files, backend):
    train, test = files
    args = ["train", "--train", train, "--test", test, "--factors", 20, "--epochs", 300,
            "--lr", 0.05, "--reg", 0, "--no-biased", "--val-fraction", 0.2, "--patience", 3,
            "--lr-decay", 0.999, "--backend", backend, "--json"]  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    # Unregularised k=20 on ~480 ratings overfits long before 300 epochs: patience stops it.
    assert result["epochs_run"] < 300
    n_lines = len(train.read_text().splitlines())
    assert result["n_train"] == n_lines - round(0.2 * n_lines)  # validation carved out
    best = int(re.search(r"validation RMSE best at epoch (\d+)", err).group(1))
    assert best == result["epochs_run"] - 3  # stopped exactly `patience` epochs after the best


@pytest.mark.parametrize(
    "flags, message",
    [(["--patience", "2"], "--patience needs a validation split"),
     (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
     (["--lr-decay", "0"], "--lr-decay must be > 0"),
     (["--threads", "2"], "kernel='exact' runs on one thread")],
)  # fmt: skip
def test_schedule_flags_are_checked(capsys, files, flags, message):
    code, _, err = run(capsys, *train_args(files, *flags))
    assert_user_error(code, err, message)
