"""The public model API on raw ids: fit from a DataFrame of text ids, predict, batched
recommend, similar_items, save and ``mfrec.load``, for every model class.

The index-level fit is the reference: fitting on raw ids must be exactly the fit on the
indices :meth:`Ratings.from_raw` gives them (same code after the mapping, so equality is exact).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec.data import Ratings
from mfrec.job import DefaultModel
from mfrec.modelio import ModelFileError
from mfrec.reference import MatrixFactorization, top_k
from mfrec.reference.als import ALS
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.ensemble import BlendedEnsemble, Ensemble
from mfrec.reference.serving import similar_items
from mfrec.torch_impl import TorchMatrixFactorization
from mfrec.torch_impl.als import TorchALS
from mfrec.torch_impl.neural import NeuralMF

SGD = dict(n_factors=4, n_epochs=6, lr=0.02, reg=0.02, biased=True, seed=3)
MODELS = {
    "sgd-exact": lambda: MatrixFactorization(**SGD),
    "sgd-fast": lambda: MatrixFactorization(**SGD, kernel="fast"),
    "sgd-hogwild-1-thread": lambda: MatrixFactorization(**SGD, kernel="hogwild"),
    "sgd-blocked": lambda: MatrixFactorization(**SGD, kernel="blocked", n_threads=2),
    "sgd-unbiased": lambda: MatrixFactorization(**{**SGD, "biased": False}),
    "torch-exact": lambda: TorchMatrixFactorization(**SGD, mode="exact"),
    "torch-minibatch": lambda: TorchMatrixFactorization(**SGD, mode="minibatch", batch_size=16),
    "als": lambda: ALS(n_factors=3, n_iters=3, reg=0.1, biased=True, seed=1),
    "torch-als": lambda: TorchALS(n_factors=3, n_iters=3, reg=0.1, biased=True, seed=1),
    "bayes": lambda: BayesianMF(n_factors=3, n_samples=6, burn_in=3, seed=2),
    "neural": lambda: NeuralMF(n_factors=4, n_epochs=3, hidden=(8,), batch_size=64),
    "ensemble": lambda: Ensemble([MatrixFactorization(**SGD), ALS(n_factors=2, n_iters=2)]),
    "blended": lambda: BlendedEnsemble(
        [MatrixFactorization(**SGD), BayesianMF(n_factors=2, n_samples=4, burn_in=2)]
    ),
    "default": lambda: DefaultModel(n_threads=1),
}


def frame(n: int = 600, seed: int = 5) -> pd.DataFrame:
    """Text user and item ids (sorted as text, not as numbers), one rating per pair."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user": [f"u{x}" for x in rng.integers(0, 40, n)],
            "item": [f"m{x}" for x in rng.integers(0, 30, n)],
            "rating": rng.integers(1, 6, n).astype(float),
        }
    )
    return df.drop_duplicates(["user", "item"]).reset_index(drop=True)


@pytest.fixture(scope="module", params=list(MODELS))
def pair(request):
    """(name, fitted on the DataFrame's raw ids, fitted on the same data's indices, data)."""
    df = frame()
    data = Ratings.from_raw(df.user, df.item, df.rating)
    raw = MODELS[request.param]().fit(df.user, df.item, df.rating)
    index = MODELS[request.param]().fit(
        data.users, data.items, data.ratings, data.n_users, data.n_items
    )
    return request.param, raw, index, data


def test_raw_id_fit_is_the_index_fit_with_the_id_maps_kept(pair):
    name, raw, index, data = pair
    assert raw.user_ids_.tolist() == data.user_ids.tolist()
    assert raw.item_ids_.tolist() == data.item_ids.tolist()
    assert index.user_ids_.tolist() == list(range(data.n_users))  # index mode: identity maps
    users, items = data.user_ids[data.users], data.item_ids[data.items]
    got = raw.predict(users, items)
    if name == "sgd-blocked" or name == "default":  # threads: equal to rounding, not bitwise
        np.testing.assert_allclose(got, index.predict(data.users, data.items), rtol=1e-5)
    else:
        np.testing.assert_array_equal(got, index.predict(data.users, data.items))
    assert raw.n_unknown_ == 0
    one = raw.predict(users[3], items[3])
    assert isinstance(one, float) and one == pytest.approx(got[3])


def test_fit_takes_a_ratings_table_and_lists():
    df = frame()
    data = Ratings.from_raw(df.user, df.item, df.rating)
    a = MatrixFactorization(**SGD).fit(data)
    b = MatrixFactorization(**SGD).fit(list(df.user), list(df.item), list(df.rating))
    assert a.user_ids_.tolist() == b.user_ids_.tolist() == data.user_ids.tolist()
    np.testing.assert_array_equal(a.P, b.P)


def test_unknown_raw_ids_are_scored_by_the_fallback_and_counted(pair):
    _, raw, _, data = pair
    bu, bi = raw.bu.astype(float), raw.bi.astype(float)
    pred = raw.predict(["nobody", "u1", "nobody"], ["m1", "nothing", "nothing"])
    assert raw.n_unknown_ == 3
    m1, u1 = data.item_index("m1"), data.user_index("u1")
    want = raw.r_mean + np.array([bi[m1], bu[u1], 0.0])
    np.testing.assert_allclose(pred, raw.clip(want), rtol=1e-5)


def test_an_integer_id_model_counts_text_ids_unknown_instead_of_failing():
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 20, 200) * 1000 + 7, rng.integers(0, 15, 200) * 2**40
    model = MatrixFactorization(**SGD).fit(u, i, rng.integers(1, 6, 200).astype(float))
    assert model.user_ids_.dtype.kind == "i" and model.item_ids_.max() >= 2**40
    model.predict("u196", "m50")
    assert model.n_unknown_ == 1
    assert model.predict(str(u[0]), str(i[0])) == pytest.approx(model.predict(u[0], i[0]))
    assert model.n_unknown_ == 0  # "7" is the integer id 7, as on the command line


def test_batched_recommend_is_the_loop_of_single_calls_and_the_reference_top_k(pair):
    _, raw, _, data = pair
    users = np.array([*data.user_ids[:12], "nobody"])
    items, scores = raw.recommend(users, k=7)
    assert items.shape == scores.shape == (13, 7)
    for row, user in enumerate(users):
        one_items, one_scores = raw.recommend(user, k=7)
        assert one_items.tolist() == items[row].tolist()
        # One row is a matrix-vector product, a batch a matrix product: BLAS may round the
        # two differently in the last bit (of P's dtype), so scores agree to that, order exactly.
        tol = 1e-6 if raw.P.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(one_scores, scores[row], rtol=tol)
        u = data.user_ids.tolist().index(user) if user != "nobody" else -1
        seen = data.items[data.users == u] if u >= 0 else np.empty(0, np.int64)
        ref = top_k(raw.score_all(u), seen, 7)
        assert one_items.tolist() == data.item_ids[ref].tolist()
        assert not set(one_items) & set(data.item_ids[seen])


def test_recommend_without_filter_seen_and_for_index_arrays():
    df = frame()
    model = MatrixFactorization(**SGD).fit(df.user, df.item, df.rating)
    items, _ = model.recommend("u1", k=model.n_items, filter_seen=False)
    assert sorted(items) == sorted(model.item_ids_)
    seen_by_u1 = set(df.item[df.user == "u1"])
    assert len(model.recommend("u1", k=model.n_items)[0]) == model.n_items - len(seen_by_u1)
    index = MatrixFactorization(**SGD).fit([0, 1, 2, 2], [0, 1, 2, 0], [1.0, 2, 3, 4], 3, 3)
    top, scores = index.recommend(np.array([0, 1, 2]), k=3)  # 1-D array of users: a batch
    assert top.shape == (3, 3) and np.isneginf(scores[2, 1:]).all()  # user 2 saw 2 of 3


def test_similar_items_are_the_cosine_neighbours_by_raw_id(pair):
    _, raw, _, data = pair
    ids, cos = raw.similar_items("m3", k=4)
    ref, ref_cos = similar_items(raw.Q, data.item_index("m3"), 4)
    assert ids.tolist() == data.item_ids[ref].tolist()
    np.testing.assert_array_equal(cos, ref_cos)
    many, _ = raw.similar_items(["m3", "m4"], k=4)
    assert many.shape == (2, 4) and many[0].tolist() == ids.tolist()
    with pytest.raises(ValueError, match="items: 'nothing' is not an item id"):
        raw.similar_items("nothing")


def test_save_and_mfrec_load_round_trip_on_raw_ids(pair, tmp_path):
    name, raw, _, data = pair
    path = tmp_path / "model.npz"
    assert raw.save(path, titles={"m3": "Three"}) == path
    loaded = mfrec.load(path)
    assert loaded.user_ids_.tolist() == raw.user_ids_.tolist()
    assert loaded.titles_ == {"m3": "Three"}
    users = ["nobody", *data.user_ids[data.users]]
    items = ["m1", *data.item_ids[data.items]]
    np.testing.assert_allclose(loaded.predict(users, items), raw.predict(users, items), rtol=1e-6)
    for user in ("u1", "u7", "nobody"):
        assert loaded.recommend(user, 5)[0].tolist() == raw.recommend(user, 5)[0].tolist()
    assert loaded.similar_items("m3")[0].tolist() == raw.similar_items("m3")[0].tolist()


def test_errors_name_the_argument_and_what_was_expected():
    df = frame()
    with pytest.raises(ValueError, match="with n_users/n_items given, users and items are 0-b"):
        MatrixFactorization().fit(df.user, df.item, df.rating, 40, 30)
    with pytest.raises(ValueError, match="fit needs users, items and ratings"):
        MatrixFactorization().fit(df.user)
    model = MatrixFactorization(**SGD).fit(df.user, df.item, df.rating)
    with pytest.raises(ValueError, match="k must be"):
        model.recommend("u1", k=-1)
    with pytest.raises(ValueError, match="users must hold integer or text ids, found 1.5"):
        model.predict([1.5], ["m1"])
    with pytest.raises(ValueError, match="users and items differ in length: 2, 1"):
        model.predict(["u1", "u2"], ["m1"])
    with pytest.raises(ModelFileError, match="not fitted"):
        MatrixFactorization().save("never.npz")


def test_eval_set_on_raw_ids_is_mapped_like_the_training_data():
    df = frame()
    fit, val = df.iloc[:450], df.iloc[450:]
    model = MatrixFactorization(**{**SGD, "n_epochs": 30}).fit(
        fit.user, fit.item, fit.rating, eval_set=(val.user, val.item, val.rating), patience=3
    )
    best = model.val_history_[model.best_epoch_]
    rmse = float(np.sqrt(np.mean((model.predict(val.user, val.item) - val.rating) ** 2)))
    assert rmse == pytest.approx(best, abs=1e-12)  # the restored epoch, scored on raw ids


def test_a_polars_column_is_taken_like_a_numpy_one():
    pl = pytest.importorskip("polars", reason="polars is not installed")
    df = frame()
    cols = pl.DataFrame({c: list(df[c]) for c in df.columns})
    a = MatrixFactorization(**SGD).fit(cols["user"], cols["item"], cols["rating"])
    b = MatrixFactorization(**SGD).fit(df.user, df.item, df.rating)
    np.testing.assert_array_equal(a.P, b.P)


def test_the_cli_model_factory_is_a_library_function():
    from mfrec.factory import model_from_flags

    m = model_from_flags("biased", factors=5, epochs=2)
    assert type(m) is MatrixFactorization and (m.n_factors, m.n_epochs, m.biased) == (5, 2, True)
    t = model_from_flags(factors=7, backend="torch")  # auto + a flag: biased SGD MF, on torch
    assert type(t) is TorchMatrixFactorization and t.mode == "minibatch"
    with pytest.raises(ValueError, match="--lr does not apply to --model als on numba"):
        model_from_flags("als", lr=0.1)
    with pytest.raises(ValueError, match="unknown flag --foo"):
        model_from_flags("als", foo=1)


def test_a_new_user_is_folded_in_from_raw_item_ids():
    from mfrec.reference.serving import fold_in, fold_in_scores

    df = frame()
    model = MatrixFactorization(**SGD).fit(df.user, df.item, df.rating)
    items, scores = model.recommend_new_user(["m3", "m7"], [5.0, 1.0], k=4)
    i = np.array([model.item_ids_.tolist().index(x) for x in ("m3", "m7")])
    p, bu = fold_in(model.Q, model.bi, model.mu, True, i, [5.0, 1.0], SGD["reg"])
    ref = top_k(fold_in_scores(model.Q, model.bi, model.mu, True, p, bu), i, 4)
    assert items.tolist() == model.item_ids_[ref].tolist() and not {"m3", "m7"} & set(items)
    assert scores.shape == (4,) and np.all(np.diff(scores) <= 0)
    with pytest.raises(ValueError, match="items: 'nothing' is not an item id"):
        model.recommend_new_user(["nothing"], [3.0])
