"""Model files of the models whose predictions are not μ + bᵤ + bᵢ + Pᵤ·Qᵢ.

A model file (:mod:`mfrec.modelio`) holds P, Q, the biases, the id maps and the seen items.
A *state record* is the same file at format version :data:`STATE_VERSION` with
``"kind": "state"`` in its metadata, the class name, the constructor's arguments, and the
arrays the class needs besides (a torch model's ``state_dict`` as ``state:<name>``). Such a
model implements ``state() -> (params, arrays)`` and ``from_state(base, params, arrays)``,
where ``base`` is the validated factor part as :func:`mfrec.modelio.load_model` reads it.
An older mfrec refuses these files as "written by a newer mfrec" instead of misreading them.

It also answers, for the CLI, what a model cannot do (:func:`refusal`) and which models have
a binary (liked-or-not) form (:func:`supports_binary`).
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

STATE_KIND = "state"
STATE_VERSION = 2
"""Format version of state records (factor-only model files stay at version 1)."""

STATE_CLASSES = {
    "LogisticMF": "mfrec.reference.logistic:LogisticMF",
    "TorchLogisticMF": "mfrec.reference.logistic:LogisticMF",
    "NeuralMF": "mfrec.torch_impl.neural:NeuralMF",
    "TwoTowerMF": "mfrec.torch_impl.networks:TwoTowerMF",
    "ConcatMLP": "mfrec.torch_impl.networks:ConcatMLP",
    "EmbeddingMLP": "mfrec.torch_impl.networks:EmbeddingMLP",
    "SVDpp": "mfrec.reference.svdpp:SVDpp",
    "TorchSVDpp": "mfrec.reference.svdpp:SVDpp",
    "DefaultModel": "mfrec.job:DefaultModel",
}
"""Class written in a state record → the class that reads it back (a torch-trained logistic
model loads as the Numba one: the same arrays and prediction; so does a torch SVD++, with
its feature vocabularies and embeddings)."""

PREFIX = "state:"


def ctor_params(model, cls: type | None = None) -> dict:
    """``model``'s keyword arguments of ``cls.__init__`` (default: its own class), JSON-ready:
    a dtype as its name, a tuple as a list; arrays (e.g. features) are left out."""
    names = []  # the keyword arguments of cls.__init__ and of the ones its **kwargs reach
    for klass in (cls or type(model)).__mro__:
        params = inspect.signature(klass.__init__).parameters.values()
        names += [
            p.name for p in params if p.kind == p.KEYWORD_ONLY or p.kind == p.POSITIONAL_OR_KEYWORD
        ]
        if not any(p.kind == p.VAR_KEYWORD for p in params) or klass is object:
            break
    out = {}
    for name in names:
        if name == "self" or name in out or not hasattr(model, name):
            continue
        v = getattr(model, name)
        if isinstance(v, type):
            v = v.__name__
        elif isinstance(v, tuple):
            v = list(v)
        elif not isinstance(v, (int, float, str, bool, list, type(None))):
            continue
        out[name] = v
    return out


def state_record(model) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) to add to a model file for ``model`` (see the module doc)."""
    params, arrays = model.state()
    meta = {"kind": STATE_KIND, "state_class": type(model).__name__, "state": params}
    return meta, {PREFIX + k: np.asarray(v) for k, v in arrays.items()}


def model_from_state(path, meta: dict, arrays: dict, base):
    """The fitted model a state record holds; ``ValueError`` naming the file when it cannot be
    rebuilt (unknown class, arrays that do not fit its shapes)."""
    name = meta.get("state_class")
    if name not in STATE_CLASSES or not isinstance(meta.get("state"), dict):
        raise ValueError(f"{path}: corrupt model file (unknown model class {name!r})")
    module, cls_name = STATE_CLASSES[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    state = {k[len(PREFIX) :]: v for k, v in arrays.items() if k.startswith(PREFIX)}
    for k, v in state.items():
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise ValueError(f"{path}: corrupt model file (NaN or inf in {k})")
    try:
        return cls.from_state(base, meta["state"], state)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: corrupt {name} model file ({type(e).__name__}: {e})") from None


ACTIONS = {
    "fold-in": "fold in a new user's ratings (--rate)",
    "similar": "find similar items",
    "save": "be saved to a model file",
}


def refusal(model, action: str) -> str | None:
    """Why ``model`` cannot do ``action`` (a key of :data:`ACTIONS`), or None when it can.

    Models list what they cannot do in a ``refuses`` class attribute: {action: reason}.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action == "save" and not getattr(model, "factor_form", True) and not hasattr(model, "state"):
        return (
            f"a {type(model).__name__} cannot {ACTIONS[action]}: its predictions are not "
            "μ + bᵤ + bᵢ + Pᵤ·Qᵢ, and it has no state record"
        )
    why = getattr(model, "refuses", {}).get(action)
    if why is None:
        return None
    return f"a {type(model).__name__} cannot {ACTIONS[action]}: {why}"


def supports_binary(model_or_class) -> bool:
    """Whether a model (or model class) trains on 0/1 labels and predicts probabilities."""
    return bool(getattr(model_or_class, "supports_binary", False))


def predicts_probabilities(model) -> bool:
    """Whether ``model.predict`` returns P(liked) rather than ratings (its ``task``)."""
    return getattr(model, "task", "rating") == "binary"
