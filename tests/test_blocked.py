"""The LibMF-style blocked kernel against the exact reference ``_sgd_epoch``."""

from __future__ import annotations

import numpy as np
import pytest
from child import run_python
from problems import random_problem, random_ratings

from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.blocked import BlockedEpochs
from mfrec.reference.kernels import _sgd_epoch


def fisher_yates(draws):
    """The permutation that Fisher–Yates with uniform ``draws`` (one per position) makes:
    for t = m−1 … 1, swap t with ⌊draws[t]·(t + 1)⌋."""
    perm = np.arange(draws.shape[0])
    for t in range(draws.shape[0] - 1, 0, -1):
        j = min(int(draws[t] * (t + 1)), t)
        perm[t], perm[j] = perm[j], perm[t]
    return perm


def visiting_order(users, items, draws, B, user_block, item_block, rows, cols, steps):
    """The rating indices a blocked epoch visits, rebuilt independently: a stable sort by block,
    then each block shuffled by the seeded draws the layout made (one per rating)."""
    block = user_block[users] * B + item_block[items]
    by_block = np.argsort(block, kind="stable")
    ptr = np.searchsorted(block[by_block], np.arange(B * B + 1))
    in_blocks = [
        by_block[ptr[b] : ptr[b + 1]][fisher_yates(draws[ptr[b] : ptr[b + 1]])]
        for b in range(B * B)
    ]
    G = len(steps)
    m = B // G
    seq = [
        rows[a * m + x] * B + cols[((a + s) % G) * m + y]
        for s in steps
        for a in range(G)
        for x in range(m)
        for y in range(m)
    ]
    return np.concatenate([in_blocks[b] for b in seq])


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("biased", [False, True])
def test_blocked_epochs_equal_reference_in_their_visiting_order(biased, n_threads):
    rng = np.random.default_rng(11)
    users, items, ratings, arrays = random_problem(rng, k=16)
    ref_arrays = [a.copy() for a in arrays]
    blocked_arrays = [a.copy() for a in arrays]
    B = 4
    epochs = BlockedEpochs(
        users, items, ratings, 60, 40, 16, np.random.default_rng(5), True, n_threads, B
    )
    # The same seeded draws the layout made: the within-block shuffle, then each epoch's schedule.
    draws = np.random.default_rng(5)
    in_block_draws = draws.random(ratings.shape[0])  # drive each block's shuffle
    hyper = (3.0, 0.01, 0.02, biased)
    for _ in range(3):
        schedule = [draws.permutation(B), draws.permutation(B), draws.permutation(2)]
        blocks = (epochs.user_block, epochs.item_block)
        order = visiting_order(users, items, in_block_draws, B, *blocks, *schedule)
        assert np.array_equal(np.sort(order), np.arange(ratings.shape[0]))  # every rating once
        ref_sse = _sgd_epoch(users, items, ratings, order, *ref_arrays, *hyper)
        blocked_sse = epochs(*blocked_arrays, *hyper)
        assert blocked_sse == pytest.approx(ref_sse, rel=1e-10)
    # float64: the blocked kernel reassociates the k-term dot product (SIMD, FMA), a few ulps
    # per step that SGD at lr=0.01 does not amplify over 3 epochs (as for the fast kernel).
    for ref_a, blocked_a in zip(ref_arrays, blocked_arrays, strict=True):
        np.testing.assert_allclose(blocked_a, ref_a, rtol=0, atol=1e-12)
    assert np.abs(ref_arrays[0] - arrays[0]).max() > 1e-3  # training moved P


def test_two_threads_equal_one_thread_bit_for_bit():
    # Blocks run at the same time touch disjoint rows, so their updates commute exactly.
    rng = np.random.default_rng(2)
    users, items, ratings, _ = random_problem(rng, n=5000, n_users=90, n_items=70)
    fits = [
        MatrixFactorization(
            n_factors=8, n_epochs=4, biased=True, kernel="blocked", n_threads=t
        ).fit(users, items, ratings)
        for t in (1, 2)
    ]
    for a in ("P", "Q", "bu", "bi", "history_"):
        np.testing.assert_array_equal(getattr(fits[1], a), getattr(fits[0], a))


def test_more_threads_cut_another_grid_reproducibly():
    # G = max(2, n_threads): 4 threads give a 4×4 super-block grid, hence another visiting
    # order than 2 threads, but the same model on every run.
    rng = np.random.default_rng(3)
    users, items, ratings, _ = random_problem(rng, n=4000, n_users=80, n_items=64)
    kw = dict(n_factors=6, n_epochs=3, biased=True, kernel="blocked")
    four = [MatrixFactorization(**kw, n_threads=4).fit(users, items, ratings) for _ in range(2)]
    two = MatrixFactorization(**kw, n_threads=2).fit(users, items, ratings)
    np.testing.assert_array_equal(four[0].P, four[1].P)
    assert four[0].history_ == four[1].history_
    assert not np.array_equal(four[0].P, two.P)


def test_layout_keeps_every_rating_once_grouped_by_block():
    rng = np.random.default_rng(4)
    users, items, ratings, _ = random_problem(rng, n=2000, n_users=37, n_items=23)
    ep = BlockedEpochs(users, items, ratings, 37, 23, 8, np.random.default_rng(0), n_blocks=6)
    assert ep.U.dtype == np.int32 and ep.I.dtype == np.int32 and ep.R.dtype == np.float64
    assert ep.ptr[-1] == ratings.shape[0]
    block = ep.user_block[ep.U] * 6 + ep.item_block[ep.I]
    assert np.array_equal(block, np.repeat(np.arange(36), np.diff(ep.ptr)))
    user_ratings = np.bincount(ep.user_block[users], minlength=6)  # ratings per user-block
    assert user_ratings.max() - user_ratings.min() <= 2 * np.bincount(users).max()
    key = lambda u, i, r: np.sort(u * 10_000 + i * 10 + r.astype(np.int64))  # noqa: E731
    assert np.array_equal(key(ep.U, ep.I, ep.R), key(users, items, ratings))


def blocked_threads_agree() -> None:
    """One and two threads of the blocked kernel fit the same model, and its training MSE falls
    (the test below runs this in a child under NUMBA_DISABLE_JIT=1)."""
    u, i, r = random_ratings(np.random.default_rng(0), 200, 9, 7)
    kw = dict(n_factors=4, n_epochs=2, biased=True, kernel="blocked")
    a, b = (MatrixFactorization(**kw, n_threads=t).fit(u, i, r) for t in (1, 2))
    if not (np.array_equal(a.P, b.P) and np.array_equal(a.Q, b.Q)):
        raise SystemExit("two threads differ from one")
    if not a.history_[1] < a.history_[0]:
        raise SystemExit(f"training MSE did not fall: {a.history_}")


def test_pure_python_blocked_kernels_run_and_agree():
    # Under NUMBA_DISABLE_JIT=1 nothing reassociates and prange runs serially: the serial and
    # two-thread epochs are then the reference kernel in the same visiting order, bit for bit.
    code = "from test_blocked import blocked_threads_agree; blocked_threads_agree()"
    proc = run_python(code, NUMBA_DISABLE_JIT="1")
    assert proc.returncode == 0, proc.stderr


def test_blocked_keeps_ml100k_test_rmse(ml100k_split):
    train, test = ml100k_split  # tests/conftest.py: the seed-0 80/20 split
    n_users, n_items = train.n_users, train.n_items
    hyper = dict(n_factors=20, n_epochs=20, lr=0.01, reg=0.05, biased=True, seed=0)
    rmses = {}
    for name, kw in {"exact": {}, "blocked": dict(kernel="blocked", n_threads=2)}.items():
        model = MatrixFactorization(**hyper, **kw)
        model.fit(train.users, train.items, train.ratings, n_users, n_items)
        rmses[name] = rmse(test.ratings, model.predict(test.users, test.items))
    assert rmses["exact"] < 1.0  # the serial reference learned something
    assert abs(rmses["blocked"] - rmses["exact"]) <= 0.003, rmses


def test_grid_side_must_split_into_thread_super_blocks():
    rng = np.random.default_rng(0)
    users, items, ratings, _ = random_problem(rng, n=100)
    with pytest.raises(ValueError, match="multiple of max"):
        BlockedEpochs(users, items, ratings, 60, 40, 4, rng, n_threads=2, n_blocks=5)
