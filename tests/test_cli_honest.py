"""Issue 14: every flag changes what runs or is refused, labels name what ran, a model can be
trained on every rating, text ids work, --json is one document, pipes close quietly."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_run import run, run_json

from mfrec import cli
from mfrec.modelio import load_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("MFREC_CACHE", str(tmp_path / "cache"))


def ratings_lines(prefix_user: str = "", prefix_item: str = "") -> list[str]:
    """A small low-rank problem: 40 users, 30 items, about half the pairs rated."""
    rng = np.random.default_rng(0)
    P, Q = rng.normal(0, 0.6, (40, 3)), rng.normal(0, 0.6, (30, 3))
    rows = [(u, i) for u in range(40) for i in range(30) if rng.random() < 0.5]
    return [
        f"{prefix_user}{u + 1},{prefix_item}{i + 101},{np.clip(3 + P[u] @ Q[i], 1, 5):.3f}"
        for u, i in rows
    ]


@pytest.fixture
def ratings(tmp_path) -> Path:
    path = tmp_path / "r.csv"
    path.write_text("\n".join(ratings_lines()) + "\n")
    return path


def refused(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2 and err.startswith("mfrec: error: "), (code, err)
    assert "Traceback" not in err and "epoch" not in out + err.split("\n", 1)[-1]
    return err


# 1. A named model applies the hyper-parameter flags it takes and refuses the others.
def test_named_model_applies_the_flags_it_is_given(capsys, ratings, tmp_path):
    model = tmp_path / "m.npz"
    argv = ["train", "--ratings", ratings, "--model", "plain", "--epochs", 3, "--factors", 5,
            "--dtype", "float32", "--save", model]  # fmt: skip
    result, err = run_json(capsys, *argv)
    assert result["class"] == "MatrixFactorization" and result["epochs_run"] == 3
    assert result["params"]["n_factors"] == 5 and result["params"]["dtype"] == "float32"
    assert result["params"]["biased"] is False and result["params"]["reg"] == 0.0  # plain's own
    assert "k=5, 3 epochs" in err and len(re.findall(r"^epoch ", err, re.M)) == 3
    m = load_model(model)[0]
    assert m.P.shape[1] == 5 and m.P.dtype == np.float32
    result, _ = run_json(capsys, "train", "--ratings", ratings, "--model", "als",
                         "--epochs", 2, "--factors", 4)  # fmt: skip
    assert result["class"] == "ALS" and result["params"]["n_iters"] == 2
    assert result["params"]["n_factors"] == 4
    assert "--lr does not apply to --model bayes" in refused(
        capsys, "train", "--ratings", ratings, "--model", "bayes", "--lr", 0.1
    )
    assert "--factors does not apply to --model default" in refused(
        capsys, "train", "--ratings", ratings, "--model", "default", "--factors", 3
    )


# 2. --backend runs the named model on that backend, or is refused; labels say what ran.
def test_backend_runs_the_named_model_or_is_refused(capsys, ratings):
    base = ["train", "--ratings", ratings, "--epochs", 2, "--factors", 3]
    result, _ = run_json(capsys, *base, "--model", "plain", "--backend", "torch")
    assert result["class"] == "TorchMatrixFactorization" and result["backend"] == "torch"
    assert result["mode"] == "minibatch" and result["device"] == "cpu"
    result, err = run_json(capsys, *base, "--model", "als", "--backend", "both")
    assert result["numba"]["class"] == "ALS" and result["torch"]["class"] == "TorchALS"
    assert "[numba] iteration" in err and "[torch] iteration" in err  # labelled blocks
    assert "max |P_numba − P_torch|" in err and "ALS on numba, TorchALS on torch" in err
    assert "no torch version" in refused(
        capsys, *base[:3], "--model", "bayes", "--backend", "torch"
    )
    assert "no numba version" in refused(capsys, *base, "--model", "neural", "--backend", "numba")
    assert "a torch flag" in refused(capsys, *base, "--mode", "exact")
    assert "--kernel does not apply" in refused(
        capsys, *base, "--backend", "torch", "--kernel", "fast"
    )
    result, err = run_json(capsys, *base[:3], "--backend", "torch")  # auto: says it is SGD MF
    assert result["model"] == "biased" and "--model auto: biased SGD MF (--backend torch" in err


def test_neural_runs_on_torch_and_is_labelled_so(capsys, ratings):
    result, err = run_json(capsys, "train", "--ratings", ratings, "--model", "neural",
                           "--epochs", 1, "--factors", 4)  # fmt: skip
    assert result["class"] == "NeuralMF" and result["backend"] == "torch"
    assert "NeuralMF(k=4, 1 epochs" in err and "on torch" in err and "numba" not in err


def test_neural_model_is_saved_as_a_state_record(capsys, ratings, tmp_path):
    path = tmp_path / "m.npz"
    code, out, _ = run(capsys, "train", "--ratings", ratings, "--model", "neural", "--epochs", 1,
                       "--factors", 4, "--save", path)  # fmt: skip
    assert code == 0 and type(load_model(path)[0]).__name__ == "NeuralMF"


# 3. --test-size 0 trains on every rating, evaluates nothing, and the saved model excludes
# everything each user rated.
def test_test_size_zero_trains_on_everything(capsys, ratings, tmp_path):
    model = tmp_path / "all.npz"
    result, err = run_json(capsys, "train", "--ratings", ratings, "--test-size", 0,
                           "--epochs", 2, "--factors", 3, "--save", model)  # fmt: skip
    lines = ratings.read_text().split()
    assert result["n_train"] == len(lines) and result["n_test"] == 0 and result["rmse"] is None
    assert "nothing is held out" in err
    rated = {int(l.split(",")[1]) for l in lines if l.split(",")[0] == "1"}  # noqa: E741
    result, _ = run_json(capsys, "recommend", "--model", model, "--user", 1, "-k", 30)
    got = {r["item"] for r in result["items"]}
    assert got and not got & rated and len(got) == 30 - len(rated)


# 4. Text ids work end to end: train, save, recommend, similar, --rate.
def test_text_ids_end_to_end(capsys, tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("user,item,rating\n" + "\n".join(ratings_lines("u", "i")) + "\n")
    model = tmp_path / "m.npz"
    result, _ = run_json(capsys, "train", "--ratings", path, "--epochs", 2, "--factors", 3,
                         "--save", model, "--user", "u4")  # fmt: skip
    assert all(r["item"].startswith("i") for r in result["top"])
    _, user_ids, item_ids, _ = load_model(model)
    assert "u4" in user_ids.tolist() and "i105" in item_ids.tolist()
    result, _ = run_json(capsys, "recommend", "--model", model, "--user", "u4", "-k", 3)
    assert result["user"] == "u4" and result["known_user"] and len(result["items"]) == 3
    result, _ = run_json(capsys, "similar", "--model", model, "--item", "i105", "-k", 3)
    assert result["item"] == "i105" and "i105" not in [r["item"] for r in result["similar"]]
    result, _ = run_json(capsys, "recommend", "--model", model, "--rate", "i105=5", "i106=2")
    assert {"i105", "i106"}.isdisjoint(r["item"] for r in result["items"])
    assert "item i999 is not in" in refused(capsys, "recommend", "--model", model, "--rate",
                                            "i999=3")  # fmt: skip


# 5. download --data-dir puts the release in that folder.
def test_download_data_dir_puts_the_release_there(capsys, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere" / "ml-100k"
    elsewhere.mkdir(parents=True)
    (elsewhere / "u.data").write_text("1\t1\t5\t0\n")
    (elsewhere / "u.item").write_text("1|Toy Story (1995)|\n")
    monkeypatch.setenv("MFREC_DATA", str(tmp_path / "elsewhere"))
    target = tmp_path / "mine"
    code, out, err = run(capsys, "download", "ml-100k", "--data-dir", target, "--quiet")
    assert code == 0, err
    assert (target / "ml-100k" / "u.data").read_text() == "1\t1\t5\t0\n"
    assert str(target / "ml-100k") in out
    code, out, _ = run(capsys, "download", "ml-100k", "--data-dir", target, "--quiet")
    assert code == 0 and "copied" not in out  # already there: nothing copied again


# 6. --json on recommend, similar and cv; cv has train's data options and its own usage line.
def test_json_everywhere_and_cv_data_options(capsys, ratings, tmp_path):
    model = tmp_path / "m.npz"
    result, err = run_json(capsys, "train", "--ratings", ratings, "--epochs", 2, "--factors", 3,
                           "--save", model)  # fmt: skip
    assert "epoch   1/2" in err and "saved model" in err  # the human part went to stderr
    result, _ = run_json(capsys, "recommend", "--model", model, "--user", 3, "-k", 4)
    assert [set(r) for r in result["items"]] == [{"item", "title", "rating"}] * 4
    result, _ = run_json(capsys, "similar", "--model", model, "--item", 105, "-k", 2)
    assert len(result["similar"]) == 2
    semi = tmp_path / "r.txt"
    semi.write_text(ratings.read_text().replace(",", ";"))
    result, err = run_json(capsys, "cv", "--ratings", semi, "--delimiter", ";", "--folds", 2,
                           "--model", "plain", "--rating-scale", 1, 5, "--quiet")  # fmt: skip
    assert len(result["folds"]) == 2 and "fold 1" not in err
    code, _, err = run(capsys, "cv", "--dataset", "ml-1m", "--no-download", "--data-dir",
                       tmp_path)  # fmt: skip
    assert code == 2 and "no ml-1m" in err
    code, _, err = run(capsys, "cv", "--bogus")
    assert code == 2 and err.startswith("usage: mfrec cv")


# 7. --rate values outside the model's rating scale are refused.
def test_rate_outside_the_rating_scale_is_refused(capsys, ratings, tmp_path):
    model = tmp_path / "m.npz"
    assert run(capsys, "train", "--ratings", ratings, "--epochs", 1, "--factors", 2, "--quiet",
               "--save", model)[0] == 0  # fmt: skip
    for bad in ("101=7", "101=-100"):
        err = refused(capsys, "recommend", "--model", model, "--rate", bad)
        assert "outside the model's rating scale" in err
    code, out, _ = run(capsys, "recommend", "--model", model, "--rate", "101=5")
    assert code == 0 and "with 1 rating:" in out


# 8. Written files get the umask's mode; a missing folder is refused before training.
def test_files_written_with_umask_mode_and_missing_folder_refused(capsys, ratings, tmp_path):
    model = tmp_path / "m.npz"
    old = os.umask(0o022)
    try:
        assert run(capsys, "train", "--ratings", ratings, "--epochs", 1, "--factors", 2,
                   "--quiet", "--save", model)[0] == 0  # fmt: skip
    finally:
        os.umask(old)
    assert model.stat().st_mode & 0o777 == 0o644
    for option, name in (("--save", "m.npz"), ("--plot", "c.png")):
        err = refused(capsys, "train", "--ratings", ratings, "--epochs", 1, option,
                      tmp_path / "nope" / name)  # fmt: skip
        assert f"{option} " in err and f"no folder {tmp_path / 'nope'}" in err
    assert not (tmp_path / "nope").exists()


# 9. A closed pipe ends the run quietly with 141 (128 + SIGPIPE).
def test_closed_pipe_ends_quietly_with_141(ratings, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MFREC_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "mfrec", "train", "--ratings", str(ratings), "--epochs", "6000",
            "--factors", "2"]  # fmt: skip  # ~6000 epoch lines: far more than a pipe buffer
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert first and err == ""


def test_shell_pipe_into_head(ratings, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MFREC_CACHE": str(tmp_path / "cache")}
    cmd = (f"set -o pipefail; {shlex.quote(sys.executable)} -m mfrec train --ratings "
           f"{shlex.quote(str(ratings))} --epochs 6000 --factors 2 | head -n 2")  # fmt: skip
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 141 and proc.stderr == "" and len(proc.stdout.splitlines()) == 2


# 10. The smaller items.
def test_smaller_items(capsys, ratings, tmp_path):
    code, out, _ = run(capsys, "train", "--help")
    assert "(default: None)" not in out and "(default: False)" not in out
    assert "-k/--top must be > 0" in refused(capsys, "train", "--ratings", ratings, "-k", 0)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, meta=np.array([{"a": 1}], dtype=object))
    err = refused(capsys, "recommend", "--model", foreign, "--user", 1)
    assert "not an mfrec model file" in err and "allow_pickle" not in err
    code, out, err = run(capsys, "train", "--ratings", ratings, "--model", "bayes",
                         "--factors", 2)  # fmt: skip
    assert code == 0, err
    steps = re.findall(r"^sweep +(\d+)/(\d+)", out, re.M)
    assert steps and all(int(s) % 10 == 0 or s == t for s, t in steps)
    assert "burn-in" in out and "epoch" not in out


def test_plot_title_names_the_series_that_ran(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from mfrec.plot import plot_curves

    matplotlib.rcParams["svg.fonttype"] = "none"  # keep text as text in the SVG
    one = {"step": [1], "train": [1.0], "test": [1.1], "unit": "epoch"}
    svg = plot_curves(tmp_path / "a.svg", {"numba": one}).read_text()
    assert "Learning curves: numba" in svg and "torch" not in svg
    svg = plot_curves(tmp_path / "b.svg", {"numba": one, "torch": one}).read_text()
    assert "thin dashed: torch" in svg
    assert svg.count("<use") >= 4  # one-epoch curves are drawn as markers, not nothing


def documented_commands() -> list[str]:
    """Every `mfrec ...` line in a code block of README.md and docs/cli.md."""
    commands = []
    for doc in (REPO / "README.md", REPO / "docs" / "cli.md"):
        blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", doc.read_text(), re.S)
        for block in blocks:
            for line in block.splitlines():
                line = line.split("  #")[0].strip()
                if line.startswith("mfrec ") or line.startswith("torchrun "):
                    commands.append(line)
    return commands


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_parses_and_plans(command, tmp_path, monkeypatch):
    """Each documented command parses, and its flags fit its model and backend."""
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command)
    argv = argv[argv.index("mfrec") + 1 :]
    args = cli.build_parser().parse_args(argv)  # an unknown flag or bad value exits: a failure
    assert args.command == argv[0]
    for name, values in documented_options(argv[1:]):  # each lands as written, in its own dest
        got = getattr(args, name.replace("-", "_"))
        got = got if isinstance(got, list) else [got]
        want = [True] if not values else [type(g)(v) for g, v in zip(got, values, strict=True)]
        assert got == want, (name, got, values)
    if args.command == "train":
        if args.plot:
            pytest.importorskip("matplotlib")
        cli.check_args(args)
        cli.resolve_plan(args)


def documented_options(tokens: list[str]) -> list[tuple[str, list[str]]]:
    """[(name, values)] of each ``--name value...`` in a command line (short flags skipped)."""
    options: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for token in tokens:
        if token.startswith("--"):
            current = []
            options.append((token[2:], current))
        elif token.startswith("-"):
            current = None
        elif current is not None:
            current.append(token)
    return options


def test_documented_train_examples_bound_their_cost():
    """No documented example asks for exact torch mode over many epochs (minutes per epoch)."""
    for command in documented_commands():
        if "--mode exact" in command:
            epochs = re.search(r"--epochs (\d+)", command)
            assert epochs and int(epochs.group(1)) <= 3, command


def flag_table() -> list[tuple[list[str], dict[str, str]]]:
    """docs/cli.md's table of which flags each model takes: (flags, {model: cell})."""
    text = (REPO / "docs" / "cli.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `--")]
    header = next(line for line in text.splitlines() if line.startswith("| flag |"))
    models = [c.strip().split()[0].rstrip(",") for c in header.strip("|").split("|")[1:]]
    models[0] = "plain"  # "plain, biased (SGD MF)"
    table = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != len(models) + 1:
            continue
        flags = re.findall(r"`(--[a-z-]+)", cells[0])
        table.append((flags, dict(zip(models, cells[1:], strict=True))))
    return table


def test_the_flag_table_in_the_docs_is_what_the_code_does():
    """Each cell: 'refused' (no backend takes it), 'numba'/'torch' (that one only), else both
    backends the model has."""
    table = flag_table()
    assert len(table) >= 10
    for flags, cells in table:
        for name in flags:
            for model, cell in cells.items():
                takes = set()
                for backend in ("numba", "torch"):
                    argv = ["train", "--model", model, "--backend", backend, name]
                    if name not in ("--biased", "--compile"):
                        value = {"--dtype": "float32", "--kernel": "fast", "--mode": "exact",
                                 "--device": "cpu"}.get(name, "2" if name in (
                                     "--factors", "--epochs", "--threads", "--patience",
                                     "--batch-size", "--samples", "--burn-in",
                                 ) else "0.1")  # fmt: skip
                        argv.append(value)
                    if name == "--patience":
                        argv += ["--val-fraction", "0.1"]
                    try:
                        args = cli.build_parser().parse_args(argv)
                        cli.resolve_plan(args)
                        takes.add(backend)
                    except ValueError as e:
                        assert "does not apply" in str(e) or "has no" in str(e), str(e)
                expect = {"refused": set(), "numba": {"numba"}, "torch": {"torch"}}.get(cell)
                if expect is None:  # "yes", "k", "iterations", ...: every backend it has
                    expect = {"plain": {"numba", "torch"}, "als": {"numba", "torch"},
                              "neural": {"torch"}, "bayes": {"numba"}}[model]  # fmt: skip
                assert takes == expect, (name, model, cell, takes)
