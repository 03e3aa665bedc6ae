"""SVD++ in torch: ``mode="exact"`` equals the Numba kernel step for step; the minibatch step is
the mean of the per-sample gradients; minibatch training reaches the reference's accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from naive_svdpp import sample_gradients
from test_svdpp import as_lists, random_features

from mfrec.data import canonical_split, release_features
from mfrec.reference import rmse
from mfrec.reference.svdpp import SVDpp
from mfrec.torch_impl.svdpp import TorchSVDpp, gather_bags

PARAMS = ("P_free", "Q_free", "bu", "bi", "Y", "Z", "P", "Q")


def _case(seed: int, n_users=30, n_items=20, n=300):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n, replace=False)
    users, items = pairs // n_items, pairs % n_items
    ratings = rng.integers(1, 6, n).astype(np.float64)
    return users, items, ratings, random_features(rng, n_users, 4), random_features(rng, n_items, 5)


@pytest.mark.parametrize("features", [True, False])
def test_exact_equals_numba_on_random_data(features):
    users, items, ratings, uf, itf = _case(0)
    kw = dict(n_factors=3, n_epochs=3, lr=0.02, reg=0.05, seed=4)
    feats = dict(user_features=uf, item_features=itf) if features else {}
    ref = SVDpp(**kw).fit(users, items, ratings, **feats)
    emb = TorchSVDpp(mode="exact", **kw).fit(users, items, ratings, **feats)
    # float64, same steps in the same order; only the grouping of float sums differs (1e-12).
    for name in PARAMS:
        ref_x, torch_x = getattr(ref, name), getattr(emb, name)
        np.testing.assert_allclose(torch_x, ref_x, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(emb.history_, ref.history_, rtol=1e-12)


def test_exact_equals_numba_for_3_epochs_on_an_ml100k_subsample(ml100k):
    """u1.base of ML-100k's first 100 users (all their ratings, every item kept), with the
    release's user and item features and the implicit feedback. A subsample because exact mode
    takes one autograd step per rating: 1–5 ms each on the 2-core VM, so the 3 × 80,000 steps of
    the whole u1.base would take 5–20 minutes; the 1e-9 bound is the whole-data test's."""
    train_index, test_index = canonical_split(ml100k, "u1")
    train, test = ml100k.subset(train_index), ml100k.subset(test_index)
    keep, keep_test = train.users < 100, test.users < 100
    u, i, r = train.users[keep], train.items[keep], train.ratings[keep]
    users, items = release_features("ml-100k", ml100k.source, ml100k)
    users.indptr = users.indptr[:101]  # the 100 users' rows (indices beyond are never read)
    kw = dict(n_factors=10, n_epochs=3, lr=0.007, reg=0.02, seed=0)
    fit = dict(user_features=users, item_features=items)
    ref = SVDpp(**kw).fit(u, i, r, 100, ml100k.n_items, **fit)
    emb = TorchSVDpp(mode="exact", **kw).fit(u, i, r, 100, ml100k.n_items, **fit)
    assert u.shape[0] > 5_000
    for name in PARAMS:
        ref_x, torch_x = getattr(ref, name), getattr(emb, name)
        assert np.abs(ref_x - torch_x).max() <= 1e-9, name
    tu, ti, tr = test.users[keep_test], test.items[keep_test], test.ratings[keep_test]
    ref_rmse, torch_rmse = rmse(tr, ref.predict(tu, ti)), rmse(tr, emb.predict(tu, ti))
    assert abs(ref_rmse - torch_rmse) <= 1e-9


def test_minibatch_step_is_lr_times_the_summed_sample_gradients():
    users, items, ratings, uf, itf = _case(1)
    B, lr, reg = 50, 0.01, 0.05
    m = TorchSVDpp(mode="minibatch", batch_size=B, n_factors=3, n_epochs=0, lr=lr, reg=reg)
    m.fit(users, items, ratings, user_features=uf, item_features=itf)
    before = {n: getattr(m, n).copy() for n in ("P_free", "Q_free", "bu", "bi", "Y", "Z")}
    params = {"P": before["P_free"], "Q": before["Q_free"]}
    params.update(bu=before["bu"], bi=before["bi"], Y=before["Y"], Z=before["Z"])
    batch = np.arange(B)
    want = {n: np.zeros_like(a) for n, a in params.items()}
    A, G = as_lists(m.A), as_lists(m.G)
    for j in batch:
        u, i = users[j], items[j]
        g = sample_gradients(params, A, G, u, i, ratings[j], m.mu, reg)
        want["bu"][u] += g["bu"]
        want["bi"][i] += g["bi"]
        want["P"][u] += g["P"]
        want["Q"][i] += g["Q"]
        for table in ("Y", "Z"):
            for row, d in g[table].items():
                want[table][row] += d
    mod = m.module
    A_t = [torch.from_numpy(a) for a in m.A]
    G_t = [torch.from_numpy(a) for a in m.G]
    u_t, i_t, r_t = (torch.from_numpy(a) for a in (users, items, ratings))
    opt = torch.optim.SGD(mod.parameters(), lr=lr * B)
    m._minibatch_epoch(u_t, i_t, r_t, torch.from_numpy(batch), A_t, G_t, opt)
    m._sync_numpy()
    # One step of −lr·B·mean = −lr·sum of the per-sample gradients; float64 rounding (1e-12).
    pairs = (("P_free", "P"), ("Q_free", "Q"), ("bu", "bu"), ("bi", "bi"), ("Y", "Y"), ("Z", "Z"))
    for name, key in pairs:
        np.testing.assert_allclose(getattr(m, name), before[name] - lr * want[key], atol=1e-12)


def test_gather_bags_feeds_embedding_bag_each_entity_s_rows():
    indptr = torch.tensor([0, 2, 2, 5])
    idx = torch.tensor([4, 1, 0, 3, 2])
    wt = torch.tensor([0.5, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    inp, offsets, weights = gather_bags(indptr, idx, wt, torch.tensor([2, 1, 0, 2]))
    assert inp.tolist() == [0, 3, 2, 4, 1, 0, 3, 2]
    assert offsets.tolist() == [0, 3, 3, 5]
    assert weights.tolist() == [1.0, 2.0, 3.0, 0.5, 0.5, 1.0, 2.0, 3.0]


def test_minibatch_reaches_the_reference_accuracy_on_a_u1_subsample(ml100k):
    """u1 of ML-100k's first 200 users (a subsample: minibatch epochs on all of u1.base take
    30-60 s each on the loaded 2-core VM)."""
    train_index, test_index = canonical_split(ml100k, "u1")
    train, test = ml100k.subset(train_index), ml100k.subset(test_index)
    keep, keep_test = train.users < 200, test.users < 200
    args = (train.users[keep], train.items[keep], train.ratings[keep], 200, ml100k.n_items)
    kw = dict(n_factors=10, n_epochs=10, lr=0.005, reg=0.05, seed=0)
    ref = SVDpp(**kw).fit(*args)
    mb = TorchSVDpp(mode="minibatch", batch_size=64, **kw).fit(*args)
    tu, ti, tr = test.users[keep_test], test.items[keep_test], test.ratings[keep_test]
    ref_rmse, mb_rmse = rmse(tr, ref.predict(tu, ti)), rmse(tr, mb.predict(tu, ti))
    # A different order and step (batches of 64, Y stepped with each): within 0.01 RMSE.
    assert abs(mb_rmse - ref_rmse) <= 0.01, (ref_rmse, mb_rmse)
