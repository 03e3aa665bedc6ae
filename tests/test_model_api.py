"""One model API over every model class and every device present (as implicit's tests do).

:class:`ModelAPI` holds the checks every fitted model must pass: predict (shape, finite, the
training scale), unknown ids (the training mean plus the biases that are known), clipping,
recommend (unseen items, best first, nothing better left out) and the model file round trip.
Each ``Test*`` class says how to build one model and on which devices (from
:mod:`mfrec.devices`: the CPU always, CUDA where present).
"""

from __future__ import annotations

import numpy as np
import pytest

from mfrec import devices
from mfrec.modelio import ModelFileError, load_model, save_model
from mfrec.reference import MatrixFactorization
from mfrec.reference.als import ALS
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.ensemble import Ensemble
from mfrec.reference.mf import KERNELS, UNKNOWN
from mfrec.torch_impl import TorchMatrixFactorization
from mfrec.torch_impl.als import TorchALS
from mfrec.torch_impl.neural import NeuralMF

N_USERS, N_ITEMS, N = 30, 25, 400
TORCH_DEVICES = ["cpu"] + (["cuda"] if devices.torch_cuda() else [])


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        cls = metafunc.cls
        absent = pytest.param(None, marks=pytest.mark.skip(reason=cls.absent))
        metafunc.parametrize("device", cls.devices or [absent], scope="class")


def ratings_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer ratings 1…5; every user and item is rated at least once."""
    rng = np.random.default_rng(12)
    users = np.concatenate([np.arange(N_USERS), rng.integers(0, N_USERS, N - N_USERS)])
    items = np.concatenate([np.arange(N_ITEMS), rng.integers(0, N_ITEMS, N - N_ITEMS)])[:N]
    pairs = np.unique(users * N_ITEMS + items)  # one rating per (user, item)
    users, items = pairs // N_ITEMS, pairs % N_ITEMS
    ratings = rng.integers(1, 6, users.shape[0]).astype(np.float64)
    return users, items, ratings


class ModelAPI:
    """The checks; a subclass defines ``devices`` and ``make(device)`` (an unfitted model)."""

    devices: list[str] = ["cpu"]
    absent = ""  # why there is no device to run on, when ``devices`` is empty
    savable = True

    @staticmethod
    def make(device: str):
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, device):
        users, items, ratings = ratings_data()
        model = cls.make(device)
        model.fit(users, items, ratings, N_USERS, N_ITEMS)
        return model

    @staticmethod
    def tolerance(model) -> float:
        return 1e-5 if model.P.dtype == np.float32 else 1e-10

    def test_predict_is_finite_and_on_the_training_scale(self, fitted):
        users, items, ratings = ratings_data()
        pred = fitted.predict(users, items)
        assert pred.shape == ratings.shape and np.all(np.isfinite(pred))
        assert pred.min() >= 1.0 and pred.max() <= 5.0
        assert np.std(pred) > 0  # not a constant
        assert fitted.n_unknown_ == 0

    def test_predict_is_the_clipped_raw_prediction(self, fitted):
        users, items, _ = ratings_data()
        raw = fitted.raw_predict(users, items)
        scale = (fitted.r_min, fitted.r_max)
        lo, hi = np.quantile(raw, [0.25, 0.75])  # narrow the scale so half the pairs clip
        fitted.r_min, fitted.r_max = float(lo), float(hi)
        try:
            pred = fitted.predict(users, items)
        finally:
            fitted.r_min, fitted.r_max = scale
        assert np.mean((raw < lo) | (raw > hi)) > 0.3  # the check clips something
        np.testing.assert_allclose(pred, np.clip(raw, lo, hi), rtol=0, atol=1e-12)

    def test_unknown_ids_fall_back_to_the_mean_and_known_biases(self, fitted):
        u = np.array([UNKNOWN, N_USERS + 3, 2, UNKNOWN])
        i = np.array([4, UNKNOWN, N_ITEMS, UNKNOWN])
        pred = fitted.predict(u, i)
        assert fitted.n_unknown_ == 4
        want = fitted.r_mean + np.array([fitted.bi[4], 0.0, fitted.bu[2], 0.0])
        np.testing.assert_allclose(pred, np.clip(want, 1.0, 5.0), rtol=1e-6)
        assert fitted.r_mean == pytest.approx(ratings_data()[2].mean())

    def test_recommend_ranks_unseen_items_best_first(self, fitted):
        users, items, _ = ratings_data()
        for u in (0, 7, N_USERS - 1):
            seen = set(items[users == u].tolist())
            top, _ = fitted.recommend(u, k=5)
            assert len(top) == 5 and not seen & set(top.tolist())
            scores = fitted.score_all(u)
            unseen = [j for j in np.argsort(-scores, kind="stable") if j not in seen]
            assert top.tolist() == unseen[:5]
            assert scores[top[0]] > scores[top[-1]]
        new_user, _ = fitted.recommend(N_USERS + 5, k=5)  # unknown: ranked by μ + bᵢ
        by_bias = np.argsort(-fitted.score_all(UNKNOWN), kind="stable")[:5]
        assert new_user.tolist() == by_bias.tolist()

    def test_model_file_round_trip(self, fitted, tmp_path):
        path = tmp_path / "model.npz"
        if not self.savable:
            with pytest.raises(ModelFileError, match="cannot save a"):
                save_model(path, fitted, np.arange(N_USERS), np.arange(N_ITEMS))
            assert not path.exists()
            return
        save_model(path, fitted, np.arange(N_USERS) + 100, np.arange(N_ITEMS) + 200)
        loaded, user_ids, item_ids, _ = load_model(path)
        assert user_ids.tolist() == list(range(100, 100 + N_USERS))
        assert item_ids.tolist() == list(range(200, 200 + N_ITEMS))
        assert loaded.params.get("class", type(fitted).__name__) == type(fitted).__name__
        users, items, _ = ratings_data()
        u = np.concatenate([users, [UNKNOWN, 3]])
        i = np.concatenate([items, [1, UNKNOWN]])
        tol = self.tolerance(fitted)
        np.testing.assert_allclose(loaded.predict(u, i), fitted.predict(u, i), rtol=tol, atol=tol)
        for user in (0, 11, N_USERS + 1):
            assert loaded.recommend(user, 6)[0].tolist() == fitted.recommend(user, 6)[0].tolist()


SGD = dict(n_factors=4, n_epochs=8, lr=0.02, reg=0.02, biased=True, seed=3)


@pytest.mark.parametrize("kernel", KERNELS, scope="class")
class TestMatrixFactorization(ModelAPI):
    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, kernel):
        users, items, ratings = ratings_data()
        threads = 2 if kernel in ("hogwild", "blocked") else 1
        model = MatrixFactorization(**SGD, kernel=kernel, n_threads=threads)
        return model.fit(users, items, ratings, N_USERS, N_ITEMS)


class TestUnbiasedMatrixFactorization(ModelAPI):
    @staticmethod
    def make(device):
        return MatrixFactorization(**{**SGD, "biased": False, "n_epochs": 30, "lr": 0.05})


class TestCudaMatrixFactorization(ModelAPI):
    devices = ["numba-cuda"] if devices.numba_cuda() else []
    absent = "no CUDA device visible to numba"

    @staticmethod
    def make(device):
        from mfrec.reference.cuda import CudaMatrixFactorization

        return CudaMatrixFactorization(**SGD)


@pytest.mark.parametrize("mode", ["exact", "minibatch"], scope="class")
class TestTorchMatrixFactorization(ModelAPI):
    devices = TORCH_DEVICES

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, device, mode):
        users, items, ratings = ratings_data()
        model = TorchMatrixFactorization(**SGD, mode=mode, batch_size=16, device=device)
        return model.fit(users, items, ratings, N_USERS, N_ITEMS)


class TestALS(ModelAPI):
    @staticmethod
    def make(device):
        return ALS(n_factors=4, n_iters=4, reg=0.1, biased=True, seed=1)


class TestTorchALS(ModelAPI):
    devices = TORCH_DEVICES

    @staticmethod
    def make(device):
        return TorchALS(n_factors=4, n_iters=4, reg=0.1, biased=True, seed=1, device=device)


class TestBayesianMF(ModelAPI):
    @staticmethod
    def make(device):
        return BayesianMF(n_factors=3, n_samples=10, burn_in=5, seed=2)


class TestNeuralMF(ModelAPI):
    devices = TORCH_DEVICES
    savable = True  # a state record: the factors and the MLP's weights (mfrec.modelstate)

    @staticmethod
    def make(device):
        return NeuralMF(n_factors=4, n_epochs=3, hidden=(8,), batch_size=64, device=device)


class TestEnsemble(ModelAPI):
    @staticmethod
    def make(device):
        members = [MatrixFactorization(**SGD), ALS(n_factors=2, n_iters=3, biased=True)]
        return Ensemble(members, weights=[0.6, 0.4])


def test_every_device_class_runs_its_own_epochs_and_says_so():
    # The fit loop calls _epoch_runner; a subclass that misses it (e.g. one still naming an older
    # hook) would train on the CPU reference kernel under a GPU class's name.
    from mfrec.reference.cuda import CudaMatrixFactorization
    from mfrec.reference.mf import MatrixFactorization
    from mfrec.torch_impl.triton_sgd import TritonMatrixFactorization

    for cls in (CudaMatrixFactorization, TritonMatrixFactorization):
        assert cls._epoch_runner is not MatrixFactorization._epoch_runner, cls
        assert cls._runs_on is not MatrixFactorization._runs_on, cls
        assert not hasattr(cls, "_epoch_kernel"), cls
