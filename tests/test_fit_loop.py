"""SGDModel's one fit loop (its EpochRunner protocol), the divergence message, the GPU walks'
one stream, and the one validation carver."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mfrec.data.splits import UNKNOWN, carve_validation, unseen_as_unknown
from mfrec.reference import DivergenceError, MatrixFactorization
from mfrec.reference.ensemble import BlendedEnsemble
from mfrec.reference.mf import SGDModel
from mfrec.reference.sampling import EpochWalks, epoch_order, walk_step
from mfrec.torch_impl.model import TorchMatrixFactorization


def small(seed: int = 0, n: int = 300, n_users: int = 20, n_items: int = 15):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    return u, i, rng.integers(1, 6, n).astype(float)


class Recorder:
    """An EpochRunner that records what the loop asks of it; Σ e² = 10·lr."""

    def __init__(self, with_run_all: bool) -> None:
        self.calls: list = []
        if with_run_all:
            self.run_all = lambda lrs: (
                self.calls.append(("run_all", list(lrs))) or np.array([10 * lr for lr in lrs])
            )

    def run(self, lr: float) -> float:
        self.calls.append(("run", lr))
        return 10 * lr

    def copy_out(self) -> None:
        self.calls.append(("copy_out",))


class Recorded(SGDModel):
    def __init__(self, runner: Recorder, **params) -> None:
        super().__init__(**params)
        self.runner = runner

    def _runs_on(self) -> str:
        return "a recorder"

    def _start(self, u, i, r, P, Q, mu, rng):
        self.P, self.Q, self.mu = P, Q, mu
        self.bu, self.bi = np.zeros(P.shape[0]), np.zeros(Q.shape[0])
        return self.runner, 0


@pytest.mark.parametrize("with_run_all", [True, False])
def test_the_loop_drives_every_runner_by_one_protocol(with_run_all):
    u, i, r = small(n=10)
    lrs = [0.1 * 0.5**e for e in range(3)]
    runner = Recorder(with_run_all)
    model = Recorded(runner, n_epochs=3, lr=0.1, lr_decay=0.5).fit(u, i, r)
    if with_run_all:  # nothing needs the host between epochs: all epochs in one call
        assert runner.calls == [("run_all", lrs)]
    else:
        assert runner.calls == [c for lr in lrs for c in (("run", lr), ("copy_out",))]
    assert model.history_ == [10 * lr / 10 for lr in lrs]
    # A callback needs the host after every epoch: run + copy_out, even where run_all exists.
    seen = []
    runner = Recorder(True)
    Recorded(runner, n_epochs=3, lr=0.1, lr_decay=0.5).fit(
        u, i, r, callback=lambda e, m: seen.append((e, runner.calls[-1]))
    )
    assert runner.calls == [c for lr in lrs for c in (("run", lr), ("copy_out",))]
    assert seen == [(e, ("copy_out",)) for e in range(3)]


@pytest.mark.parametrize("cls", [MatrixFactorization, TorchMatrixFactorization])
def test_divergence_names_the_decayed_learning_rate_of_its_epoch(cls):
    u, i, r = small()
    model = cls(n_factors=4, n_epochs=40, lr=0.02, lr_decay=2.0, biased=True)
    with pytest.raises(DivergenceError) as caught:
        model.fit(u, i, r)
    message = str(caught.value)
    epoch = int(re.search(r"diverged at epoch (\d+)", message).group(1)) - 1
    assert epoch > 0, message  # diverged after some decay, so the two rates differ
    assert f"learning rate {0.02 * 2.0**epoch:g} " in message, message
    assert "lr=0.02 × lr_decay=2^" in message, message


def test_constructors_take_keywords_only():
    with pytest.raises(TypeError):
        MatrixFactorization(5, 4)
    with pytest.raises(TypeError):
        TorchMatrixFactorization(5)


def test_epoch_walks_draw_one_order_at_a_time_from_the_fit_generator():
    n, put = 50, []
    walks = EpochWalks(np.random.default_rng(3), n, True, "host", lambda o: put.append(o) or o)
    got = [walks() for _ in range(3)]
    g = np.random.default_rng(3)
    for order, a, b in got:
        np.testing.assert_array_equal(order, epoch_order(g, n, True))
        assert (a, b) == (1, 0)
    assert len(put) == 3 and all(o.shape == (n,) for o in put)  # one epoch's order per put
    walks = EpochWalks(np.random.default_rng(3), n, True, "device", lambda o: put.append(o) or o)
    g = np.random.default_rng(3)
    pi = epoch_order(g, n, True)
    for _ in range(3):
        order, a, b = walks()
        np.testing.assert_array_equal(order, pi)
        assert (a, b) == walk_step(g, n)
    assert len(put) == 4  # the device walk puts its one permutation once
    with pytest.raises(ValueError, match="order must be one of"):
        EpochWalks(g, n, True, "gpu", lambda o: o)


def test_carve_validation_maps_ids_absent_from_the_fit_part_to_unknown():
    u = np.array([0, 0, 1, 1, 2, 3, 3, 4, 4, 4])
    i = np.array([0, 1, 0, 1, 2, 0, 1, 3, 0, 1])
    r = np.arange(10, dtype=float)
    carved = carve_validation(u, i, r, 0.3, seed=5)
    perm = np.random.default_rng(5).permutation(10)
    np.testing.assert_array_equal(carved.fit_rows, np.sort(perm[3:]))
    val_rows = np.sort(perm[:3])
    vu, vi, vr = carved.val
    np.testing.assert_array_equal(vr, r[val_rows])
    fit_users, fit_items = set(u[carved.fit_rows]), set(i[carved.fit_rows])
    want_u = [x if x in fit_users else UNKNOWN for x in u[val_rows]]
    want_i = [x if x in fit_items else UNKNOWN for x in i[val_rows]]
    np.testing.assert_array_equal(vu, want_u)
    np.testing.assert_array_equal(vi, want_i)
    assert carved.n_unknown == int(np.sum((vu == UNKNOWN) | (vi == UNKNOWN)))
    # Seed 5 holds out rows 1, 6 and 7; row 7 holds item 3's only rating, so item 3 is unknown.
    np.testing.assert_array_equal(val_rows, [1, 6, 7])
    np.testing.assert_array_equal(vi, [1, 1, UNKNOWN])
    np.testing.assert_array_equal(vu, [0, 3, 4])
    assert carved.n_unknown == 1
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        carve_validation(u, i, r, 1.0, seed=0)


def test_carve_validation_holds_out_at_least_one_rating():
    u, i, r = small(n=10)
    assert carve_validation(u, i, r, 0.01, seed=0).val[2].shape == (1,)


def test_blended_ensemble_validates_unseen_ids_by_the_fallback():
    # 40 users with one rating each: about a tenth of them are held out and unseen in the rest.
    rng = np.random.default_rng(1)
    u = np.concatenate([rng.integers(0, 10, 400), np.arange(10, 50)])
    i = rng.integers(0, 12, 440)
    r = rng.integers(1, 6, 440).astype(float)
    member = MatrixFactorization(n_factors=3, n_epochs=3, lr=0.01, biased=True)
    model = BlendedEnsemble([member], val_fraction=0.25, refit=False, seed=0)
    model.fit(u, i, r, 50, 12)
    carved = carve_validation(u, i, r, 0.25, (0, 7))
    assert model.n_val_unknown_ == carved.n_unknown > 0


def test_unseen_as_unknown_marks_indices_the_fit_part_lacks():
    users, items, n_unknown = unseen_as_unknown(
        np.array([0, 2, UNKNOWN, 5]), np.array([1, 1, 0, 3]), np.array([0, 0, 2]), np.array([1, 3])
    )
    np.testing.assert_array_equal(users, [0, 2, UNKNOWN, UNKNOWN])
    np.testing.assert_array_equal(items, [1, 1, UNKNOWN, 3])
    assert n_unknown == 2


def test_neural_validates_unseen_ids_by_the_fallback():
    from mfrec.torch_impl.neural import NeuralMF

    rng = np.random.default_rng(2)
    u = np.concatenate([rng.integers(0, 10, 400), np.arange(10, 50)])
    i = rng.integers(0, 12, 440)
    r = rng.integers(1, 6, 440).astype(float)
    model = NeuralMF(n_factors=3, n_epochs=2, hidden=(4,), batch_size=64, val_fraction=0.25)
    model.fit(u, i, r, 50, 12)
    carved = carve_validation(u, i, r, 0.25, np.random.default_rng(0))  # the fit's stream
    assert model.n_val_unknown_ == carved.n_unknown > 0
