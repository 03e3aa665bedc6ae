"""Data-parallel training: N ranks equal one process, a dead rank stops the others, resume is exact.

The multi-rank tests start real processes (gloo on 127.0.0.1) so they run on CI's 2-core CPU box.
Tolerance 1e-6 in float64 (the issue's bound): the only difference from one process is the order
in which the all-reduce sums the ranks' gradient rows, a rounding effect of ~1e-16 per step.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from mfrec.cli import main
from mfrec.data import read_ratings
from mfrec.torch_impl import TorchMatrixFactorization
from mfrec.torch_impl.distributed import (
    DistributedMatrixFactorization,
    init_distributed,
    read_checkpoint,
    shard_bounds,
    write_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-6
# Small data, uneven sizes: 997 ratings in batches of 96 leave a last batch of 37, split 18/19.
N_RATINGS, BATCH = 997, 96
MODEL_FLAGS = ["--factors", "8", "--lr", "0.02", "--reg", "0.05", "--batch-size", str(BATCH)]
LAUNCH_TIMEOUT_S = 180


def write_ratings(path: Path, seed: int, n_users: int = 60, n_items: int = 90) -> Path:
    """A random 'user item rating' file of N_RATINGS lines.

    The default 150 table rows are under 2·BATCH, so ``sync="auto"`` all-reduces whole tables;
    400 + 600 rows make it all-reduce the touched rows.
    """
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, N_RATINGS, replace=False)  # each (user, item) once
    users, items = pairs // n_items + 1, pairs % n_items + 1
    ratings = rng.integers(1, 6, N_RATINGS)
    lines = [f"{u}\t{i}\t{r}" for u, i, r in zip(users, items, ratings, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def single_process(train_file: Path, epochs: int) -> TorchMatrixFactorization:
    """The one-process minibatch run whose batches are the union of the ranks' batches."""
    train = read_ratings(train_file)
    model = TorchMatrixFactorization(
        n_factors=8, n_epochs=epochs, lr=0.02, reg=0.05, biased=True, seed=0,
        dtype="float64", mode="minibatch", batch_size=BATCH,
    )  # fmt: skip
    return model.fit(train.users, train.items, train.ratings, train.n_users, train.n_items)


def assert_same_model(saved: Path, torch_model: TorchMatrixFactorization) -> None:
    dist_arrays = np.load(saved)
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_allclose(dist_arrays[name], getattr(torch_model, name), rtol=0, atol=TOL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_argv(tmp_path: Path, epochs: int, *extra: str) -> list[str]:
    files = ["--train", str(tmp_path / "train.txt"), "--test", str(tmp_path / "train.txt")]
    return ["train", *files, "--backend", "torch", "--distributed", "--quiet",
            "--epochs", str(epochs), *MODEL_FLAGS, *extra]  # fmt: skip


def start_ranks(argv: list[str], world_size: int = 2) -> list[subprocess.Popen]:
    """``python -m mfrec ...`` once per rank with the environment torchrun would set."""
    port = str(free_port())
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, PYTHONPATH=str(ROOT), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
        env.update(OMP_NUM_THREADS="1")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mfrec", *argv],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"rank did not exit within {timeout} s; stderr:\n{err}")
    return proc.returncode, out, err


def test_shards_partition_every_batch():
    for n in (1, 2, 37, 96):
        for world_size in (1, 2, 3, 8):
            bounds = [shard_bounds(n, r, world_size) for r in range(world_size)]
            covered = [j for lo, hi in bounds for j in range(lo, hi)]
            assert covered == list(range(n))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_two_ranks_under_torchrun_equal_one_process(tmp_path):
    write_ratings(tmp_path / "train.txt", seed=1, n_users=400, n_items=600)  # touched-row sync
    saved = tmp_path / "dist.npz"
    argv = train_argv(tmp_path, 2, "--save", str(saved))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    proc = subprocess.run(
        [*torchrun, "--nproc_per_node=2", "-m", "mfrec", *argv],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("test RMSE") == 1  # rank 0 alone reports
    torch_model = single_process(tmp_path / "train.txt", epochs=2)
    assert_same_model(saved, torch_model)


@pytest.mark.parametrize("fault", ["killed", pytest.param("hung", marks=pytest.mark.slow)])
def test_lost_rank_stops_the_other_then_resume_matches(tmp_path, fault):
    """Rank 1 dies (SIGKILL) or hangs (SIGSTOP) mid-run: rank 0 exits non-zero with a clear
    message, bounded by --dist-timeout; resuming from the last checkpoint gives the same model
    as one uninterrupted run. Small tables: the dense sync runs here."""
    write_ratings(tmp_path / "train.txt", seed=2)
    ckpt = tmp_path / "ck.npz"
    epochs, dist_timeout = 400, 15
    argv = train_argv(tmp_path, epochs, "--checkpoint", str(ckpt), "--dist-timeout", "15")
    rank0, rank1 = start_ranks(argv)
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        while not ckpt.exists():
            assert rank0.poll() is None, rank0.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
        os.kill(rank1.pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        start = time.monotonic()
        code, out, err = finish(rank0, timeout=dist_timeout + 30)
        elapsed = time.monotonic() - start
    finally:
        rank1.kill()
        rank1.communicate()
    assert code != 0
    assert "mfrec: error: rank 0 lost contact with the other ranks" in err
    assert "Traceback" not in err
    assert elapsed < dist_timeout + 30
    done = read_checkpoint(ckpt, {})[0]["epochs_done"]
    assert 1 <= done < epochs

    resumed = tmp_path / "resumed.npz"
    argv = train_argv(tmp_path, done + 2, "--checkpoint", str(ckpt), "--resume")
    procs = start_ranks([*argv, "--save", str(resumed)])
    codes = [finish(p, LAUNCH_TIMEOUT_S)[0] for p in procs]
    assert codes == [0, 0]
    assert_same_model(resumed, single_process(tmp_path / "train.txt", epochs=done + 2))


@pytest.fixture
def one_rank_group(monkeypatch):
    """A process group of world size 1 in this process (gloo)."""
    env = dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    init_distributed(timeout_s=30)
    yield
    dist.destroy_process_group()


def fit_one_rank(train, epochs: int, **kw) -> DistributedMatrixFactorization:
    model = DistributedMatrixFactorization(
        n_factors=4, n_epochs=epochs, lr=0.02, reg=0.05, biased=True, batch_size=64, **kw
    )
    return model.fit(train.users, train.items, train.ratings, train.n_users, train.n_items)


def test_resume_continues_to_the_uninterrupted_model(tmp_path, one_rank_group):
    train = read_ratings(write_ratings(tmp_path / "train.txt", seed=3))
    ckpt = tmp_path / "ck.npz"
    fit_one_rank(train, 2, checkpoint=ckpt)
    resumed = fit_one_rank(train, 5, checkpoint=ckpt, resume=True)
    straight = fit_one_rank(train, 5)
    np.testing.assert_array_equal(resumed.P, straight.P)
    np.testing.assert_array_equal(resumed.bi, straight.bi)
    assert resumed.history_ == straight.history_
    assert read_checkpoint(ckpt, {})[0]["epochs_done"] == 5


def test_rows_and_dense_sync_train_the_same_model(tmp_path, one_rank_group):
    train = read_ratings(write_ratings(tmp_path / "train.txt", seed=6))
    rows_model = fit_one_rank(train, 2, sync="rows")
    dense_model = fit_one_rank(train, 2, sync="dense")
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_allclose(getattr(rows_model, name), getattr(dense_model, name), atol=TOL)


def test_resume_refuses_another_configuration(tmp_path, one_rank_group):
    train = read_ratings(write_ratings(tmp_path / "train.txt", seed=4))
    ckpt = tmp_path / "ck.npz"
    fit_one_rank(train, 1, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"checkpoint has lr=0.02 but this run has lr=0.03"):
        DistributedMatrixFactorization(
            n_factors=4, n_epochs=2, lr=0.03, reg=0.05, biased=True, batch_size=64,
            checkpoint=ckpt, resume=True,
        ).fit(train.users, train.items, train.ratings)  # fmt: skip


def test_checkpoint_write_is_atomic_and_read_rejects_garbage(tmp_path):
    ckpt = tmp_path / "ck.npz"
    meta = {"format": "mfrec-checkpoint", "version": 1, "config": {"seed": 0}, "epochs_done": 1}
    write_checkpoint(ckpt, meta, {"P": np.ones((2, 2))})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temp file left behind
    assert read_checkpoint(ckpt, {"seed": 0})[0]["epochs_done"] == 1
    assert read_checkpoint(tmp_path / "none.npz", {}) is None
    ckpt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an mfrec checkpoint"):
        read_checkpoint(ckpt, {})


def test_checkpoints_and_model_files_share_one_format_and_reader(tmp_path):
    from mfrec.modelio import ModelFileError, load_model, read_record, save_model

    model = TorchMatrixFactorization(n_factors=2, n_epochs=1, mode="minibatch")
    model.fit(np.array([0, 1]), np.array([1, 0]), np.array([4.0, 2.0]))
    saved = save_model(tmp_path / "model.npz", model, np.arange(2), np.arange(2))
    ckpt = write_checkpoint(tmp_path / "ck.npz", {"config": {}, "epochs_done": 1}, {"P": model.P})
    assert read_record(ckpt, "mfrec-checkpoint", 1)[0]["epochs_done"] == 1
    assert read_record(saved, "mfrec-model", 1)[0]["class"] == "TorchMatrixFactorization"
    with pytest.raises(ModelFileError, match="not an mfrec checkpoint \\(format 'mfrec-model'"):
        read_checkpoint(saved, {})
    with pytest.raises(ModelFileError, match="not an mfrec model file \\(format 'mfrec-check"):
        load_model(ckpt)
    newer = write_checkpoint(tmp_path / "new.npz", {"config": {}}, {})
    meta, arrays = read_record(newer, "mfrec-checkpoint", 1)
    np.savez(newer, meta=np.array(json.dumps({**meta, "version": 2})), **arrays)
    with pytest.raises(ModelFileError, match="newer mfrec \\(format version 2"):
        read_checkpoint(newer, {})


def test_cli_distributed_outside_torchrun_is_a_clear_error(tmp_path, monkeypatch, capsys):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    write_ratings(tmp_path / "train.txt", seed=5)
    assert main(train_argv(tmp_path, 1)) == 2
    assert "mfrec: error: --distributed runs under torchrun" in capsys.readouterr().err
    assert main([*train_argv(tmp_path, 1), "--backend", "numba"]) == 2
    assert "--distributed trains the torch minibatch model" in capsys.readouterr().err
