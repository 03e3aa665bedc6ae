"""The chapter-3 networks: forward passes as written, both tasks, the API, model files."""

from __future__ import annotations

from pathlib import Path

import naive_networks as naive
import numpy as np
import pytest
import torch

from mfrec.data.binary import binarize
from mfrec.modelio import ModelFileError, load_model, save_model
from mfrec.modelstate import predicts_probabilities, refusal, supports_binary
from mfrec.reference import rmse
from mfrec.reference.classification import auc
from mfrec.reference.mf import UNKNOWN
from mfrec.torch_impl.networks import (
    ConcatMLP,
    EmbeddingMLP,
    EmbeddingMLPModule,
    TwoTowerMF,
    as_features,
)
from mfrec.torch_impl.neural import NeuralMF


def synthetic(rng, n_users=30, n_items=25):
    """Every pair of a rank-2 rating matrix, and features that tell the users and items apart."""
    P, Q = rng.normal(0, 1, (n_users, 2)), rng.normal(0, 1, (n_items, 2))
    u, i = np.divmod(np.arange(n_users * n_items), n_items)
    r = np.clip(np.round(3 + (P @ Q.T)[u, i]), 1, 5)
    user_fields = np.stack([P[:, 0] > 0, P[:, 1] > 0, np.arange(n_users) % 3], 1).astype(np.int64)
    genres = [np.flatnonzero([Q[j, 0] > 0, Q[j, 1] > 0, j % 2 == 0]) for j in range(n_items)]
    indptr = np.concatenate([[0], np.cumsum([g.size for g in genres])])
    item_bags = (indptr, np.concatenate(genres))
    return u, i, r, user_fields, item_bags


def make(name, user_fields, item_bags, **kw):
    cls = {"two towers": TwoTowerMF, "concat": ConcatMLP, "embedding-mlp": EmbeddingMLP}[name]
    if cls is EmbeddingMLP:
        kw.update(user_features=user_fields, item_features=item_bags, feature_dim=3)
    return cls(**kw)


NAMES = ("two towers", "concat", "embedding-mlp")
FORWARD = {"two towers": naive.two_tower, "concat": naive.concat_mlp,
           "embedding-mlp": naive.embedding_mlp}  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_forward_pass_is_the_formula(name):
    rng = np.random.default_rng(0)
    u, i, r, uf, ib = synthetic(rng)
    model = make(name, uf, ib, n_factors=4, hidden=(5, 3), n_epochs=2, dtype="float64", lr=1e-2)
    model.fit(u, i, r, 30, 25)
    with torch.no_grad():
        torch_r_hat = model.module(torch.from_numpy(u), torch.from_numpy(i)).numpy()
    # float64: the same sums in another order, rounding only.
    np.testing.assert_allclose(torch_r_hat, FORWARD[name](model.module, u, i), rtol=0, atol=1e-12)


def test_two_towers_without_layers_are_the_dot_product():
    rng = np.random.default_rng(1)
    u, i, r, _, _ = synthetic(rng)
    model = TwoTowerMF(n_factors=3, hidden=(), n_epochs=1, dtype="float64").fit(u, i, r)
    want = model.mu + model.bu[u] + model.bi[i] + (model.P[u] * model.Q[i]).sum(1)
    np.testing.assert_allclose(model.raw_predict(u, i), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task", ["rating", "binary"])
def test_learns_shares_the_api_and_round_trips_a_model_file(name, task, tmp_path):
    rng = np.random.default_rng(2)
    u, i, r, uf, ib = synthetic(rng)
    y = binarize(r, 4) if task == "binary" else r
    perm = rng.permutation(u.size)
    fit, val = perm[:600], perm[600:]
    model = make(name, uf, ib, n_factors=8, hidden=(16, 8), n_epochs=25, lr=2e-2, batch_size=100,
                 task=task, seed=0)  # fmt: skip
    model.fit(u[fit], i[fit], y[fit], 30, 25, eval_set=(u[val], i[val], y[val]), patience=5)
    assert model.history_[-1] < 0.7 * model.history_[0]
    pred = model.predict(u[val], i[val])
    if task == "binary":
        assert pred.min() > 0 and pred.max() < 1
        assert auc(y[val], pred) > 0.75, "a rank-2 matrix must be learned"
    else:
        assert pred.min() >= 1 and pred.max() <= 5
        assert rmse(y[val], pred) < 0.8 * np.std(y[val]), "must beat predicting the mean"
    top, _ = model.recommend(0, 3)  # user 0 has 4 items left: the pairs not in ``fit``
    assert top.shape == (3,) and not np.isin(top, i[fit][u[fit] == 0]).any()
    assert np.all(np.diff(model.score_all(0)[top]) <= 0)
    assert supports_binary(model)
    path = save_model(tmp_path / "m.npz", model, np.arange(30) + 1, np.arange(25) + 1)
    loaded, _, item_ids, _ = load_model(path)
    assert type(loaded) is type(model) and predicts_probabilities(loaded) == (task == "binary")
    np.testing.assert_array_equal(item_ids, np.arange(25) + 1)
    np.testing.assert_allclose(loaded.predict(u, i), model.predict(u, i), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.recommend(0, 3)[0], top)
    unknown = loaded.predict([UNKNOWN], [3])[0]
    want = model.mu + model.bi[3]
    assert unknown == pytest.approx(1 / (1 + np.exp(-want)) if task == "binary" else want)
    for action in ("fold-in", "similar"):
        reason = refusal(loaded, action)
        assert reason is not None and f"a {type(model).__name__} cannot " in reason
    assert refusal(loaded, "save") is None


def test_neural_mf_saves_and_loads(tmp_path):
    rng = np.random.default_rng(3)
    u, i, r, _, _ = synthetic(rng)
    model = NeuralMF(n_factors=4, hidden=(8,), n_epochs=2, batch_size=64).fit(u, i, r)
    path = save_model(tmp_path / "n.npz", model, np.arange(30), np.arange(25))
    loaded = load_model(path)[0]
    assert type(loaded) is NeuralMF and loaded.hidden == (8,)
    np.testing.assert_allclose(loaded.predict(u, i), model.predict(u, i), rtol=0, atol=0)
    reason = refusal(loaded, "fold-in")
    assert reason is not None and "cannot fold in" in reason


def test_a_damaged_state_record_is_refused_naming_the_file(tmp_path):
    rng = np.random.default_rng(4)
    u, i, r, _, _ = synthetic(rng)
    model = ConcatMLP(n_factors=4, hidden=(8,), n_epochs=1).fit(u, i, r)
    path = save_model(tmp_path / "c.npz", model, np.arange(30), np.arange(25))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["state:mlp.0.weight"] = arrays["state:mlp.0.weight"][:, :3]  # a layer too narrow
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match=r"bad\.npz: corrupt ConcatMLP model file"):
        load_model(tmp_path / "bad.npz")


def test_features_are_validated():
    with pytest.raises(ValueError, match="user_features: field codes must be >= 0, found -1"):
        as_features("user_features", np.array([[0, -1]]))
    with pytest.raises(ValueError, match="item_features: indptr must start at 0"):
        as_features("item_features", (np.array([1, 2]), np.array([0, 1])))
    model = EmbeddingMLP(user_features=np.zeros((3, 1), np.int64),
                         item_features=np.zeros((4, 1), np.int64), n_epochs=1)  # fmt: skip
    with pytest.raises(ValueError, match="user_features has 3 rows but the data has 5"):
        model.fit([0, 4], [0, 3], [1.0, 2.0], 5, 4)  # indices: 5 users, 4 items


def ml100k_features(root: Path, user_ids: np.ndarray, item_ids: np.ndarray):
    """u.user as fields (age decade, gender, occupation) and u.item's genres as multi-hot CSR,
    in the order of the data set's user and item indices (a small test-only reader)."""
    users = {}
    for line in (root / "u.user").read_text(encoding="latin-1").splitlines():
        uid, age, gender, occupation, _ = line.split("|")
        users[int(uid)] = (int(age) // 10, gender, occupation)
    codes = [{v: n for n, v in enumerate(sorted({row[c] for row in users.values()}))}
             for c in range(3)]  # fmt: skip
    fields = np.array([[codes[c][users[int(x)][c]] for c in range(3)] for x in user_ids])
    genres = {}
    for line in (root / "u.item").read_text(encoding="latin-1").splitlines():
        cols = line.split("|")
        genres[int(cols[0])] = np.flatnonzero(np.array(cols[5:], dtype=int))
    bags = [genres[int(x)] for x in item_ids]
    indptr = np.concatenate([[0], np.cumsum([b.size for b in bags])])
    return fields.astype(np.int64), (indptr, np.concatenate(bags))


def test_embedding_mlp_on_ml100k_side_information(ml100k_split, ml100k):
    train, test = ml100k_split
    root = Path(ml100k.source).parent if Path(ml100k.source).is_file() else Path(ml100k.source)
    fields, bags = ml100k_features(root, train.user_ids, train.item_ids)
    sub = train.subset(np.arange(20000))
    model = EmbeddingMLP(user_features=fields, item_features=bags, n_factors=8, hidden=(16,),
                         n_epochs=2, lr=3e-3, batch_size=256, task="binary")  # fmt: skip
    model.fit(sub.users, sub.items, binarize(sub.ratings, 4), train.n_users, train.n_items)
    probs = model.predict(test.users[:5000], test.items[:5000])
    assert auc(binarize(test.ratings[:5000], 4), probs) > 0.6
    # The features reach the score: another occupation changes user 0's predictions.
    before = model.score_all(0)
    assert isinstance(model.module, EmbeddingMLPModule)
    model.module.user_features.fields[0, 2] = (fields[0, 2] + 1) % (fields[:, 2].max() + 1)
    assert np.abs(model.score_all(0) - before).max() > 1e-6
