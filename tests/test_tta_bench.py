"""The time-to-accuracy benchmark's synthetic problem and its bookkeeping."""

from __future__ import annotations

import numpy as np

from benchmarks.time_to_accuracy import NOISE, reached, render, synthetic, trace
from mfrec.reference import MatrixFactorization, rmse


def test_synthetic_problem_holds_out_a_tenth_and_its_floor_is_the_noise():
    train, test, (n_users, n_items) = synthetic(200_000, seed=1)
    n = len(train[2]) + len(test[2])
    assert n == 200_000
    assert 0.08 < len(test[2]) / n < 0.12
    assert (n_users, n_items) == (1300, 472)  # the ML-25M grid scaled by 200k / 25M
    assert train[0].max() < n_users and test[1].max() < n_items
    assert train[2].dtype == np.float32
    # Same seed, same problem; another seed, another.
    again = synthetic(200_000, seed=1)[0]
    assert all(np.array_equal(a, b) for a, b in zip(train, again, strict=True))
    assert not np.array_equal(synthetic(200_000, seed=2)[0][2], train[2])
    # A fit gets well below the ratings' spread but cannot pass the noise floor.
    model = MatrixFactorization(n_factors=16, n_epochs=15, lr=0.01, reg=0.02, biased=True)
    model.fit(*train, n_users, n_items)
    fitted = rmse(test[2], model.predict(test[0], test[1]))
    assert NOISE < fitted < 0.8 * float(np.std(test[2]))


def test_trace_records_every_epoch_and_reached_finds_the_first():
    train, test, shape = synthetic(50_000, seed=0)
    points = trace(MatrixFactorization(n_factors=4, n_epochs=3), train, test, shape)
    assert [p[0] for p in points] == [1, 2, 3]
    assert all(b[1] > a[1] for a, b in zip(points, points[1:], strict=False))  # time grows
    assert reached(points, points[1][2]) in (points[0], points[1])
    assert reached(points, -1.0) is None
    text = render("synthetic", "x", {"p": {"device": "cpu", "points": points}}, -1.0, 0.5)
    assert "| p | cpu | not reached |" in text
