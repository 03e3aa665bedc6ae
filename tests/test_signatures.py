"""Constructor signatures: a subclass declares only the hyper-parameters it adds or changes
(``mfrec.reference.mf.extends``); ``inspect.signature``, the factory and model files still
see every one, with the class's own defaults."""

import inspect

import pytest

from mfrec.factory import constructor_args
from mfrec.modelstate import ctor_params
from mfrec.reference.als import ALS
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.bfm import BayesianFM
from mfrec.reference.logistic import LogisticMF
from mfrec.reference.mf import MatrixFactorization, SeededFactorModel, SGDModel
from mfrec.reference.svdpp import SVDpp
from mfrec.torch_impl.logistic import TorchLogisticMF
from mfrec.torch_impl.model import TorchMatrixFactorization
from mfrec.torch_impl.svdpp import TorchSVDpp

SEEDED = {"n_factors": 10, "init_std": 0.1, "seed": 0, "dtype": "float64", "biased": False}
SGD = {"n_epochs": 20, "lr": 0.01, "reg": 0.0, "shuffle": True, "tol": None, "lr_decay": 1.0}
TORCH = {"mode": "exact", "batch_size": 1024, "device": "cpu"}


def defaults(cls: type) -> dict:
    """Parameter name → default, as ``inspect.signature(cls)`` states them."""
    params = inspect.signature(cls).parameters.values()
    assert all(p.kind is p.KEYWORD_ONLY for p in params), cls
    return {p.name: p.default for p in params}


def without(d: dict, name: str) -> dict:
    return {k: v for k, v in d.items() if k != name}


def test_each_signature_names_the_parents_parameters_with_the_class_defaults():
    assert defaults(SeededFactorModel) == SEEDED
    assert defaults(SGDModel) == {**SEEDED, **SGD}
    assert defaults(MatrixFactorization) == {**SEEDED, **SGD, "n_threads": 1, "kernel": "exact"}
    assert defaults(LogisticMF) == {**SEEDED, **SGD, "biased": True}
    svdpp = {**without(SEEDED, "biased"), **SGD, "lr": 0.007, "reg": 0.02, "implicit": True}
    assert defaults(SVDpp) == svdpp
    assert defaults(TorchSVDpp) == {**svdpp, **TORCH}
    torch_mf = {**TORCH, "compile": False, "graph": False}
    assert defaults(TorchMatrixFactorization) == {**SEEDED, **SGD, **torch_mf}
    logistic = {**TORCH, "weight_decay": 0.0, "max_norm": None}
    assert defaults(TorchLogisticMF) == {**defaults(LogisticMF), **logistic}
    assert defaults(ALS) == {**SEEDED, "n_iters": 10, "reg": 0.1, "weighted": True}
    bayes = defaults(BayesianMF)
    assert bayes["n_samples"] == 100 and "biased" not in bayes
    assert defaults(BayesianFM) == {
        **without(bayes, "ard"),
        "n_samples": 200,
        "likelihood": "gaussian",
    }
    for cls in (MatrixFactorization, TorchLogisticMF, TorchSVDpp, BayesianFM):
        assert constructor_args(cls, cls) == set(defaults(cls))


def test_changed_defaults_apply_and_every_parameter_reaches_the_model():
    assert LogisticMF().biased and not LogisticMF(biased=False).biased
    m = SVDpp()
    assert (m.lr, m.reg, m.biased, m.implicit) == (0.007, 0.02, True, True)
    assert BayesianFM().n_samples == 200 and not BayesianFM().ard
    t = TorchLogisticMF(n_factors=3, lr=0.05, mode="minibatch", weight_decay=0.1)
    given = {"n_factors": 3, "lr": 0.05, "mode": "minibatch", "weight_decay": 0.1}
    assert ctor_params(t).items() >= {**given, "biased": True}.items()
    assert set(ctor_params(t)) == set(defaults(TorchLogisticMF)) - {"device"}  # not JSON


def test_a_name_the_class_does_not_take_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"SVDpp.__init__\(\) got an unexpected .* 'biased'"):
        SVDpp(biased=False)  # SVD++ always learns biases
    with pytest.raises(TypeError, match="'ard'"):
        BayesianFM(ard=True)
    with pytest.raises(TypeError, match="'n_epoch'"):
        TorchMatrixFactorization(n_epoch=3)
    with pytest.raises(TypeError, match="positional"):
        LogisticMF(5)
