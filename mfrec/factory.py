"""The model factory: a configuration name, a backend and hyper-parameter options -> a model.

``mfrec train`` builds its models here; so can any Python caller (``options`` is any object
with the attributes the train flags set, e.g. an ``argparse.Namespace``).
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any

import numpy as np

from mfrec import devices
from mfrec.binary import NETWORKS, network_configs
from mfrec.configs import build_model
from mfrec.job import DefaultModel
from mfrec.reference import MatrixFactorization
from mfrec.reference.ensemble import Ensemble
from mfrec.reference.mf import FactorModel, SGDModel

# Each model hyper-parameter flag and the constructor argument it sets. A flag applies to a
# model exactly when that model's class takes the argument; for any other model it is refused.
MODEL_FLAGS = {
    "factors": "n_factors",
    "epochs": ("n_epochs", "n_iters"),
    "samples": "n_samples",
    "burn_in": "burn_in",
    "lr": "lr",
    "reg": "reg",
    "biased": "biased",
    "init_std": "init_std",
    "dtype": "dtype",
    "lr_decay": "lr_decay",
    "kernel": "kernel",
    "threads": "n_threads",
    "mode": "mode",
    "batch_size": "batch_size",
    "compile": "compile",
    "device": "device",
}


# Flags of the training schedule the CLI implements for numba SGD MF (NeuralMF takes them itself).
SCHEDULE_FLAGS = ("val_fraction", "patience")


TORCH_ONLY_FLAGS = ("mode", "batch_size", "compile", "device")


# The models that have a torch version; Bayesian MF and the default ensemble have none, and the
# neural model has nothing but a torch version.
BACKENDS = {
    "plain": ("numba", "torch"),
    "biased": ("numba", "torch"),
    "als": ("numba", "torch"),
    "bayes": ("numba",),
    "neural": ("torch",),
    "equal": ("numba",),
    "default": ("numba",),
    "svdpp": ("numba", "torch"),
    "bfm": ("numba",),
    "two-towers": ("torch",),
    "concat": ("torch",),
    "embedding-mlp": ("torch",),
    "book": ("torch",),
}

MODEL_CHOICES = tuple(BACKENDS)
"""Every ``--model`` name: the configurations of :mod:`mfrec.configs`, SVD++, the Bayesian
factorization machine, the chapter-3 networks and the book's liked-or-not model (``--binary``
only)."""

FEATURE_MODELS = ("default", "svdpp", "bfm", "embedding-mlp")
"""The models that use user and item features (``--user-features``, a release's files)."""


def cold_sides(model: str) -> tuple[str, ...]:
    """The sides ("user", "item") on which ``--model model`` scores a row with features and
    no training ratings from its features: both for svdpp; none for the other models, whose
    rows there are unknown ids (the fallback). The factorization machine of ``bfm`` and of
    the default reads each item's raters R(i), of which a cold item has none: on ML-100k with
    every rating of 100 movies held out it scored them at RMSE 1.0865 against the fallback's
    1.0724 (docs/cli.md), so it does not score them. On those sides a test id the training
    part lacks but the features describe is a row of the model (see
    :func:`mfrec.data.features.with_cold_rows`), not an unknown id."""
    return ("user", "item") if model == "svdpp" else ()


def cold_masks(model: str, features: tuple) -> tuple:
    """(users, items): masks of the rows that ``--model model`` scores from their ``features``
    (user, item :class:`~mfrec.data.Features` or None) when they have no training ratings
    (:func:`cold_sides`); None for a side without."""
    sides = cold_sides(model)
    return tuple(
        f.counts() > 0 if f is not None and side in sides else None
        for side, f in zip(("user", "item"), features, strict=True)
    )


def fit_options(args) -> dict:
    """The side information ``model.fit`` takes for ``--model`` beyond the ratings (the
    others hold theirs, or use none): svdpp's ``user_features``/``item_features`` from
    ``args.features_``."""
    if args.model != "svdpp":
        return {}
    return dict(zip(("user_features", "item_features"), args.features_, strict=True))


def uses_dates(args) -> bool:
    """Whether the flags leave the ratings' dates on (``--dates``/``--features`` not none)."""
    return getattr(args, "features", "auto") != "none" and getattr(args, "dates", "auto") != "none"


def flag(dest: str) -> str:
    """The command-line spelling of an argparse destination."""
    return "--" + dest.replace("_", "-")


def given(args, dest: str) -> bool:
    """Whether the user set a model flag (unset flags are ``None``; --compile is False)."""
    value = getattr(args, dest, None)
    return value is not None and value is not False


def resolve_plan(args) -> None:
    """Fill in ``args.model`` and ``args.backend``; refuse flags the model does not take.

    ``--model auto`` is the 'default' configuration, or 'biased' SGD MF when an SGD flag or
    ``--backend torch``/``both`` is given (the default ensemble has no torch version).
    """
    binary = getattr(args, "binary", None) is not None
    if args.model == "auto" and binary:
        args.model, args.auto_reason = "biased", None
        args.auto_binary = True  # biased logistic MF, and the label says why
    if args.model == "auto":
        default_takes = constructor_args(DefaultModel, DefaultModel)  # --threads, --device
        sgd = [d for d in (*MODEL_FLAGS, *SCHEDULE_FLAGS)
               if given(args, d) and MODEL_FLAGS.get(d) not in default_takes]  # fmt: skip
        args.auto_reason = None
        if sgd or args.backend in ("torch", "both") or getattr(args, "distributed", False):
            args.auto_reason = (
                f"{', '.join(flag(d) for d in sgd)} given" if sgd else f"--backend {args.backend}"
            )
            args.model = "biased"
        else:
            args.model = "default"
    if binary:
        from mfrec.binary import binary_names

        if args.model not in binary_names():
            raise ValueError(
                f"--binary: model {args.model!r} has no binary (liked-or-not) form; these have "
                f"one: {', '.join(binary_names())}"
            )
        early = [d for d in SCHEDULE_FLAGS if given(args, d)]
        if early and args.model not in NETWORKS:
            raise ValueError(f"{flag(early[0])} with --binary: of the liked-or-not models only "
                             f"the networks ({', '.join(NETWORKS)}) early-stop")  # fmt: skip
        if args.model == "book" and given(args, "mode"):
            raise ValueError("--mode does not apply to --model book: the book's training is "
                             "AdamW on minibatches with max_norm 1")  # fmt: skip
        if args.backend == "both" or getattr(args, "plot", None):
            what = "--backend both" if args.backend == "both" else "--plot"
            raise ValueError(f"{what} does not go with --binary (it compares or draws RMSE)")
    elif args.model == "book":
        raise ValueError("--model book is the book's liked-or-not model: add --binary 4")
    have = BACKENDS[args.model]
    if binary and args.model in ("plain", "biased"):
        have = ("numba", "torch")
    if args.backend is None:
        args.backend = have[0]
    wanted = ("numba", "torch") if args.backend == "both" else (args.backend,)
    missing = [b for b in wanted if b not in have]
    if missing:
        raise ValueError(
            f"--model {args.model} has no {missing[0]} version (it runs on {' and '.join(have)}); "
            "torch versions exist for plain, biased, als, svdpp and the networks"
        )
    if args.model == "default" and getattr(args, "plot", None):
        raise ValueError(
            "--plot draws per-epoch learning curves; the default model does not score every "
            "epoch (at scale that costs more than the epoch): name a model, e.g. --model biased"
        )
    if args.model == "bfm" and uses_dates(args) and not binary:
        for dest in ("plot", "save"):
            if getattr(args, dest, None):
                raise ValueError(
                    f"--{dest} with --model bfm needs --dates none: a BayesianFM with a date "
                    "block is not μ + bᵤ + bᵢ + Pᵤ·Qᵢ (a model file holds only those; its "
                    "sweeps are not scored until the date block is averaged)"
                )
    for backend in wanted:
        make_model(args, backend, check_only=True)


def default_model(args):
    """The model ``mfrec train`` fits with no model flags: :class:`mfrec.job.DefaultModel`.

    It sizes its members by the training data at fit; its SGD members run on ``--device``
    (default auto: CUDA when Numba sees a device); the features of ``args.features_`` (the
    release's or the flags'; none with ``--features none``) add a factorization machine member,
    as do the ratings' dates (unless ``--dates none`` or ``--features none``).
    """
    users, items = getattr(args, "features_", None) or (None, None)
    device = getattr(args, "device", None) or "auto"
    return DefaultModel(seed=args.seed, device=device, user_features=users, item_features=items,
                        dates=uses_dates(args))  # fmt: skip


def make_model(args, backend: str | None = None, check_only: bool = False) -> FactorModel | None:
    """The model the flags ask for, on ``backend``: the named configuration with every given
    hyper-parameter flag applied; a flag the model does not take is a ``ValueError``.

    ``check_only`` validates the flags without building anything heavier than the base model.
    """
    if args.model == "auto" or args.backend is None:
        resolve_plan(args)
    backend = backend or ("numba" if args.backend == "both" else args.backend)
    assert backend is not None  # resolve_plan set args.backend
    base = base_model(args, backend, check_only)
    converts = args.model in ("plain", "biased", "als") and getattr(args, "binary", None) is None
    cls = torch_class(type(base)) if backend == "torch" and converts else type(base)
    takes = constructor_args(cls, type(base))
    overrides = {}
    other = {"numba": TORCH_ONLY_FLAGS, "torch": ("kernel", "threads")}[backend]
    for dest, param in MODEL_FLAGS.items():
        if not given(args, dest) or (args.backend == "both" and dest in other):
            continue  # with --backend both, a torch flag sets the torch run only (and so on)
        names = param if isinstance(param, tuple) else (param,)
        match = [n for n in names if n in takes]
        if not match:
            hint = ""
            if dest in TORCH_ONLY_FLAGS and backend == "numba":
                hint = " (a torch flag: add --backend torch where the model has a torch version)"
            elif dest in ("kernel", "threads") and backend == "torch":
                hint = " (a numba SGD flag)"
            raise ValueError(
                f"{flag(dest)} does not apply to {describe_choice(args, backend)}{hint}"
            )
        overrides[match[0]] = getattr(args, dest)
    if overrides.get("device") == "auto":
        overrides["device"] = devices.auto(backend)
    for dest in SCHEDULE_FLAGS:
        if given(args, dest) and dest not in takes and not issubclass(cls, SGDModel):
            raise ValueError(f"{flag(dest)} does not apply to {describe_choice(args, backend)}; "
                             "it needs SGD MF or --model neural")  # fmt: skip
        if given(args, dest) and dest in takes:
            overrides[dest] = getattr(args, dest)
    if check_only:
        return None
    if getattr(args, "distributed", False):
        from mfrec.torch_impl.distributed import DistributedMatrixFactorization

        torch_mf = torch_class(MatrixFactorization)
        cls = DistributedMatrixFactorization  # always minibatch: it sets mode itself
        takes = (constructor_args(torch_mf, torch_mf) - {"mode"}) | {"checkpoint", "resume"}
        overrides.pop("mode", None)
        overrides.update(checkpoint=args.checkpoint, resume=args.resume)
    elif cls is not type(base) and "mode" in takes:
        overrides.setdefault("mode", "minibatch")
    if cls is type(base) and not overrides:
        return base
    params = {k: v for k, v in vars(base).items() if k in takes and not k.startswith("_")}
    for side in ("user_features", "item_features"):  # an EmbeddingMLP's, as it holds them
        f = params.get(side)
        if isinstance(f, dict):
            params[side] = f["fields"] if "fields" in f else (f["indptr"], f["indices"])
    if "device" in params:  # a torch.device; the constructors take its name
        params["device"] = str(params["device"])
    return cls(**{**params, **overrides})


def base_model(args, backend: str, check_only: bool = False) -> FactorModel:
    """The unfitted model ``--model`` names on ``backend``, before flags apply: a configuration
    of :mod:`mfrec.configs`, SVD++, a chapter-3 network or (``--binary T``) a binary form.

    Features come from ``args.features_`` (user, item), set once the data is read; with
    ``check_only`` a one-row stand-in lets the flags be checked before.
    """
    features = getattr(args, "features_", None) or (None, None)
    if check_only and args.model == "embedding-mlp":
        stub = np.zeros((1, 1), dtype=np.int64)
        features = tuple(stub if f is None else f for f in features)
    if args.model == "embedding-mlp" and None in features:
        raise ValueError(
            "--model embedding-mlp needs user and item features: --dataset ml-100k or ml-1m "
            "finds them in the release, or give --user-features F and --item-features F"
        )
    if getattr(args, "binary", None) is not None:
        from mfrec.binary import binary_model

        return binary_model(args.model, args.seed, backend, features)
    if args.model == "svdpp":
        if backend == "torch":
            from mfrec.torch_impl.svdpp import TorchSVDpp

            return TorchSVDpp(seed=args.seed, mode="minibatch")
        from mfrec.reference.svdpp import SVDpp

        return SVDpp(seed=args.seed)
    if args.model in NETWORKS:
        return network_configs("rating", *features)[args.model][1](args.seed)
    if args.model == "default":
        return default_model(args)
    if args.model == "bfm":
        from mfrec.fm import bfm_model

        users, items = getattr(args, "features_", None) or (None, None)
        return bfm_model(args.seed, users, items, dates=uses_dates(args))
    return build_model(args.model, args.seed)


def constructor_args(cls: type, base: type) -> set[str]:
    """The keyword arguments ``cls`` takes (``**kwargs`` passed on to ``base`` count too)."""
    params = inspect.signature(cls.__init__).parameters
    names = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        parent = base if base is not cls else cls.__mro__[1]  # where **kwargs go
        if parent is not object:
            names |= constructor_args(parent, parent)
    return names - {"self"}


def torch_class(cls: type) -> type:
    """The torch version of a numba model class (``resolve_plan`` has checked that one exists)."""
    from mfrec.reference.als import ALS

    if cls is MatrixFactorization:
        from mfrec.torch_impl import TorchMatrixFactorization

        return TorchMatrixFactorization
    if cls is ALS:
        from mfrec.torch_impl.als import TorchALS

        return TorchALS
    raise ValueError(f"{cls.__name__} has no torch version")


def describe_choice(args, backend: str) -> str:
    """'--model X on BACKEND' for error messages."""
    return f"--model {args.model} on {backend}"


def label(model, backend: str) -> dict:
    """What ran: configuration-independent facts read off the fitted or fresh model object."""
    info: dict[str, Any] = {"class": type(model).__name__, "backend": backend}
    if isinstance(model, DefaultModel):  # members are chosen at fit, by the data's size
        info.update(device=model.device_, n_threads=model.n_threads)
        if model.dated:  # fitted with the ratings' dates
            info["dates"] = model.date_unit
        info["members"] = [label(m, backend) for m in model.members]
        if hasattr(model, "weights") and model.members:
            info["weights"] = [float(w) for w in model.weights]
        return info
    if isinstance(model, Ensemble):
        info["members"] = [label(m, backend) for m in model.members]
        return info
    for key in ("kernel", "n_threads", "mode", "device", "batch_size", "compile"):
        if hasattr(model, key):
            value = getattr(model, key)
            info[key] = value if isinstance(value, (bool, int, float)) else str(value)
    params: dict[str, Any] = {}
    for key in ("n_factors", "n_epochs", "n_iters", "n_samples", "burn_in", "thin", "lr", "reg",
                "biased", "init_std", "lr_decay", "val_fraction", "n_chains", "dtype"):  # fmt: skip
        if hasattr(model, key):
            value = getattr(model, key)
            params[key] = value.__name__ if isinstance(value, type) else value
    info["params"] = params
    if getattr(model, "takes_timestamps", False) and getattr(model, "dated", False):
        info["dates"] = model.date_unit  # a fitted BayesianFM with a date block
    return info


def label_text(info: dict) -> str:
    """One line naming the class, backend, kernel or device, and the main hyper-parameters."""
    if info["class"] == "DefaultModel":
        return (
            f"DefaultModel (members and budgets by the data's size, blended on validation) "
            f"on {info['backend']} (device {info['device']}, {info['n_threads']} threads)"
        )
    if "members" in info:
        members = ", ".join(label_text(m).split(" on ")[0] for m in info["members"])
        return f"Ensemble of {members} on {info['backend']}"
    p = info["params"]
    parts = [f"k={p['n_factors']}"]
    for key, name in (("n_epochs", "epochs"), ("n_iters", "iterations"), ("n_samples", "samples")):
        if key in p:
            parts.append(f"{p[key]} {name}")
    parts += [f"{key} {p[key]:g}" for key in ("lr", "reg") if key in p]
    if "biased" in p:
        parts.append("biased" if p["biased"] else "no biases")
    parts.append(p["dtype"])
    where = [f"kernel {info['kernel']}"] if "kernel" in info else []
    if info.get("n_threads", 1) != 1:
        where.append(f"{info['n_threads']} threads")
    if "mode" in info:
        where.append(f"mode {info['mode']}")
    if "device" in info:
        where.append(f"device {info['device']}")
    run_on = info["backend"] + (f" ({', '.join(where)})" if where else "")
    return f"{info['class']}({', '.join(parts)}) on {run_on}"


def fit_steps(model) -> int:
    """How many progress steps ``model.fit`` reports: epochs, iterations or Gibbs sweeps."""
    if isinstance(model, Ensemble):
        return sum(fit_steps(m) for m in model.members)
    if hasattr(model, "n_samples"):
        return model.burn_in + model.n_samples
    return int(getattr(model, "n_epochs", getattr(model, "n_iters", 0)))


def step_name(model) -> str:
    """What one step of ``model.fit`` is called: a Gibbs sweep, an ALS iteration or an epoch."""
    if hasattr(model, "n_samples"):
        return "sweep"
    return "iteration" if hasattr(model, "n_iters") else "epoch"


def model_from_flags(model: str = "auto", backend: str | None = None, seed: int = 0, **flags):
    """A fresh model as ``mfrec train --model MODEL --backend BACKEND --seed SEED --FLAG …``
    would build it, from Python: ``flags`` are the train flags by their argparse names
    (``factors=50``, ``epochs=20``, ``lr_decay=0.95``, ``device="cuda"``, ...).

    A flag the model does not take is a ``ValueError`` naming it, as on the command line.
    """
    unknown = sorted(set(flags) - set(MODEL_FLAGS) - set(SCHEDULE_FLAGS))
    if unknown:
        known = ", ".join(flag(d) for d in (*MODEL_FLAGS, *SCHEDULE_FLAGS))
        raise ValueError(f"unknown flag {flag(unknown[0])}; model flags: {known}")
    args = argparse.Namespace(model=model, backend=backend, seed=seed, distributed=False,
                              plot=None, save=None, checkpoint=None, resume=False)  # fmt: skip
    for dest in (*MODEL_FLAGS, *SCHEDULE_FLAGS):
        setattr(args, dest, flags.get(dest, False if dest == "compile" else None))
    resolve_plan(args)
    return make_model(args)
