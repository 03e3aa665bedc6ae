"""The ``mfrec`` command line: train on MovieLens or your own files; recommend from a model."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from mfrec import devices
from mfrec._internal import check_positive
from mfrec.configs import CONFIGS, build_model
from mfrec.data import (
    RELEASES,
    DataError,
    DownloadError,
    Ratings,
    find_release,
    get_release,
    load_movielens,
    read_ratings,
)
from mfrec.data.parse import DUPLICATE_POLICIES
from mfrec.data.splits import train_test_split
from mfrec.evaluate import cross_validate
from mfrec.job import DefaultModel
from mfrec.modelio import ModelFileError, id_index, load_model, raw_id, save_model
from mfrec.progress import epoch_bar, eta_bar, progress_enabled, stage
from mfrec.reference import DivergenceError, MatrixFactorization, mae, mse, rmse
from mfrec.reference.ensemble import Ensemble, member_label
from mfrec.reference.mf import KERNELS, UNKNOWN, SGDModel
from mfrec.reference.recommend import top_k
from mfrec.reference.serving import fold_in, fold_in_scores, similar_items

DELIMITERS = {"tab": "\t", "comma": ",", "::": "::", "|": "|", ";": ";", "space": " "}
USER_ERRORS = (ValueError, KeyError, OSError, DataError, DownloadError, ModelFileError)
# Exit status after stdout's reader went away (`mfrec ... | head`): 128 + SIGPIPE, what a shell
# reports for a program that SIGPIPE ended, with nothing printed.
EXIT_BROKEN_PIPE = 141

# Each model hyper-parameter flag and the constructor argument it sets. A flag applies to a
# model exactly when that model's class takes the argument; for any other model it is refused.
MODEL_FLAGS = {
    "factors": "n_factors",
    "epochs": ("n_epochs", "n_iters"),
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
}


def flag(dest: str) -> str:
    """The command-line spelling of an argparse destination."""
    return "--" + dest.replace("_", "-")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except ``None`` (such a flag's help says what happens without it)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_data_options(p: argparse.ArgumentParser):
    """The data flags ``train`` and ``cv`` share; returns their argument group."""
    src = p.add_argument_group("data (default: --dataset ml-100k)")
    src.add_argument("--dataset", choices=list(RELEASES), default="ml-100k", help="MovieLens")
    src.add_argument("--data-dir", help="folder holding the release (else $MFREC_DATA, cache)")
    src.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="download the release when it is not found (checksum verified)",
    )
    src.add_argument("--ratings", help="one ratings file 'user item rating [timestamp]'")
    src.add_argument(
        "--delimiter",
        choices=list(DELIMITERS),
        help="field separator of the ratings files (default: sniffed from the first line)",
    )
    src.add_argument(
        "--rating-scale",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help="reject ratings outside [MIN, MAX] (MovieLens releases use their own scale)",
    )
    src.add_argument(
        "--duplicates",
        choices=DUPLICATE_POLICIES,
        default="error",
        help="a repeated (user, item) pair: stop with an error, or keep its last rating",
    )
    return src


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (defaults shown in --help)."""
    fmt = HelpFormatter
    parser = argparse.ArgumentParser(prog="mfrec", description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and report test RMSE/MSE", formatter_class=fmt)
    src = add_data_options(t)
    src.add_argument("--train", help="training ratings file: 'user item rating [timestamp]'")
    src.add_argument("--test", help="test ratings file (same format as --train)")
    src.add_argument(
        "--test-size",
        type=float,
        help="held-out fraction of --dataset/--ratings (default 0.2); 0 trains on every rating "
        "and evaluates nothing",
    )
    m = t.add_argument_group(
        "model (a flag the chosen model does not take is refused; unset: the model's own value)"
    )
    models = "; ".join(f"{name}: {desc}" for name, (desc, _) in CONFIGS.items()).replace("%", "%%")
    m.add_argument(
        "--model",
        choices=["auto", *CONFIGS],
        default="auto",
        help="auto: 'default' on numba, or 'biased' when an SGD flag or --backend torch/both "
        f"is given. {models}",
    )
    m.add_argument("--factors", type=int, help="k, columns of P and Q")
    m.add_argument("--epochs", type=int, help="passes over the data (ALS: iterations)")
    m.add_argument("--lr", type=float, help="learning rate")
    m.add_argument("--reg", type=float, help="L2 penalty (0: the slides' model)")
    m.add_argument("--init-std", type=float, help="std of the N(0, σ²) initialisation")
    m.add_argument(
        "--biased",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add μ + bᵤ + bᵢ to the prediction",
    )
    m.add_argument("--dtype", choices=["float64", "float32"], help="of P and Q")
    m.add_argument("--lr-decay", type=float, help="epoch e uses lr·decayᵉ (SGD MF)")
    m.add_argument(
        "--val-fraction",
        type=float,
        help="carve this share of the training ratings out as a validation split (SGD MF, neural)",
    )
    m.add_argument(
        "--patience",
        type=int,
        help="with --val-fraction: stop after this many epochs without a better validation "
        "RMSE and keep the best epoch",
    )
    m.add_argument("--seed", type=int, default=0, help="seeds the split, init and sampling")
    b = t.add_argument_group("backend")
    b.add_argument(
        "--backend",
        choices=["numba", "torch", "both"],
        help="where the model runs (default: numba; torch for --model neural); torch versions "
        "exist for plain, biased, als and neural; both: train each from the same seed and "
        "compare (saves the numba model)",
    )
    b.add_argument(
        "--kernel",
        choices=KERNELS,
        help="numba SGD kernel (default exact): exact and fast run on one thread, hogwild "
        "(lock-free, not reproducible) and blocked (race-free) on --threads",
    )
    b.add_argument("--threads", type=int, help="threads of --kernel hogwild/blocked (default 1)")
    b.add_argument("--mode", choices=["exact", "minibatch"], help="torch SGD (default minibatch)")
    b.add_argument("--batch-size", type=int, help="torch SGD and neural minibatch size")
    b.add_argument(
        "--device",
        help="cpu, cuda or auto (cuda when the backend sees one): the default model's SGD "
        "members (default auto), or the torch run (default cpu)",
    )
    b.add_argument(
        "--compile",
        action="store_true",
        help="torch minibatch SGD: run each step under torch.compile (seconds to compile first)",
    )
    d = t.add_argument_group("distributed (under torchrun; see docs/scaling.md)")
    d.add_argument("--distributed", action="store_true", help="data-parallel torch minibatch")
    d.add_argument("--checkpoint", help="checkpoint file, rewritten atomically every epoch")
    d.add_argument("--resume", action="store_true", help="continue from --checkpoint if present")
    d.add_argument("--dist-timeout", type=float, default=60.0, help="seconds to wait for a rank")
    o = t.add_argument_group("output")
    o.add_argument("--user", help="raw user id to recommend for (default: the first user)")
    o.add_argument("-k", "--top", type=int, default=10, help="how many movies to recommend")
    o.add_argument("--save", help="write the trained model to this file (atomically)")
    o.add_argument("--plot", help="save learning curves (train/test RMSE per epoch), e.g. a .png")
    add_output_flags(t)

    add_cv_parser(sub)
    r = sub.add_parser(
        "recommend",
        help="top-k unseen items for a known user, or for new ratings folded in",
        formatter_class=fmt,
    )
    r.add_argument("--model", required=True, help="a file written by `mfrec train --save`")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user id the model was trained on")
    who.add_argument(
        "--rate",
        nargs="+",
        metavar="ITEM=RATING",
        help="a new user's ratings by raw item id, folded in by a ridge solve against fixed Q",
    )
    r.add_argument("-k", "--top", type=int, default=10, help="how many items")
    add_output_flags(r, quiet=False)

    s = sub.add_parser(
        "similar", help="items nearest to one item (cosine on Q)", formatter_class=fmt
    )
    s.add_argument("--model", required=True, help="a file written by `mfrec train --save`")
    s.add_argument("--item", required=True, help="raw item id")
    s.add_argument("-k", "--top", type=int, default=10, help="how many items")
    add_output_flags(s, quiet=False)

    d = sub.add_parser(
        "download", help="download and verify a MovieLens release", formatter_class=fmt
    )
    d.add_argument("name", choices=list(RELEASES), help="the release")
    d.add_argument(
        "--data-dir",
        help="put the release in DIR/NAME (copied from where it is found, else downloaded); "
        "default: find it in $MFREC_DATA or the cache, else download it there",
    )
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def add_output_flags(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    """``--json`` (and ``--quiet``): the output flags every result-printing subcommand has."""
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document of results on stdout; everything else goes to stderr",
    )
    if quiet:
        p.add_argument("--quiet", action="store_true", help="print only the final results")


COMMANDS = ("train", "cv", "recommend", "similar", "download")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mfrec`` console command; returns the exit status.

    With ``--json`` the command's human-readable output goes to stderr and stdout receives
    exactly one JSON document. A closed stdout (``mfrec ... | head``) ends the run quietly with
    status 141, as if SIGPIPE had ended it.
    """
    stdout = sys.stdout
    try:
        parser = build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
            if extra:  # reported under the subcommand's usage line, not the top-level one
                sub = next(a for a in parser._actions if a.dest == "command")
                sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as e:  # --help, or a usage error argparse already explained
            return int(e.code or 0)
        code = run_command(args)
        stdout.flush()
        return code
    except BrokenPipeError:
        # Later flushes (at exit too) would raise again: point stdout at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def run_command(args) -> int:
    """Dispatch to the subcommand; user errors become one ``mfrec: error:`` line."""
    command = {
        "train": cmd_train,
        "cv": cmd_cv,
        "recommend": cmd_recommend,
        "similar": cmd_similar,
        "download": cmd_download,
    }[args.command]
    json_out = getattr(args, "json", False)
    stdout = sys.stdout
    try:
        args.result = None
        with contextlib.redirect_stdout(sys.stderr if json_out else stdout):
            if args.command == "train" and args.distributed:
                from mfrec.launch import run_distributed

                args.mode = args.mode or "minibatch"  # the only mode it has
                args.device = args.device or "cpu"

                code = run_distributed(args, cmd_train)
            else:
                code = command(args)
        if json_out and code == 0 and args.result is not None:
            print(json.dumps(args.result), file=stdout)
        return code
    except BrokenPipeError:
        raise
    except DivergenceError as e:
        print(f"mfrec: error: {e}; no model was saved", file=sys.stderr)
        return 1
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"mfrec: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mfrec: interrupted; nothing was saved", file=sys.stderr)
        return 130


def check_output_path(option: str, path: str | None) -> None:
    """An output file's folder must exist (checked before training, not after)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give a file name")
    if not p.parent.is_dir():
        raise ValueError(f"{option} {path}: no folder {p.parent} (create it first)")


def check_args(args) -> None:
    """Hyper-parameters in range, with errors that name the command-line flag."""
    for name, integer, zero in [("factors", True, False), ("epochs", True, True),
                                ("lr", False, False), ("reg", False, True),
                                ("init_std", False, True), ("batch_size", True, False),
                                ("threads", True, False), ("lr_decay", False, False)]:  # fmt: skip
        if getattr(args, name) is not None:
            check_positive(flag(name), getattr(args, name), integer=integer, allow_zero=zero)
    check_positive("--seed", args.seed, integer=True, allow_zero=True)
    check_positive("-k/--top", args.top, integer=True)
    if args.val_fraction is not None and not 0.0 <= args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction!r}")
    if args.patience is not None:
        check_positive("--patience", args.patience, integer=True)
        if not args.val_fraction and args.model != "neural":
            raise ValueError("--patience needs a validation split: add --val-fraction, e.g. 0.1")
    if args.test_size is not None:
        if args.train or args.test:
            raise ValueError("--test-size splits --dataset or --ratings; --train/--test are split")
        if not 0.0 <= args.test_size < 1.0:
            raise ValueError(f"--test-size must be in [0, 1) (0: train on all), got "
                             f"{args.test_size!r}")  # fmt: skip
    check_output_path("--save", args.save)
    check_output_path("--plot", args.plot)
    if args.plot:
        from mfrec.plot import check_plot_path

        check_plot_path(args.plot)


def reader_options(args) -> dict:
    """The parse options of the data flags (``read_ratings`` keyword arguments)."""
    return dict(
        delimiter=DELIMITERS.get(args.delimiter),
        rating_scale=args.rating_scale,
        duplicates=args.duplicates,
    )


def load_full(args, progress: bool = False) -> Ratings:
    """All ratings of ``--ratings`` or of ``--dataset`` (found, else downloaded)."""
    if args.ratings:
        return read_ratings(args.ratings, **reader_options(args))
    data = load_movielens(args.dataset, args.data_dir, download=args.download, progress=progress)
    if args.rating_scale is not None:
        lo, hi = args.rating_scale
        if data.ratings.min() < lo or data.ratings.max() > hi:
            raise ValueError(
                f"{args.dataset} has ratings in [{data.ratings.min():g}, {data.ratings.max():g}]"
                f", outside --rating-scale {lo:g} {hi:g}"
            )
    return data


def reindex(part: Ratings) -> Ratings:
    """``part`` with id maps of only the users and items it contains."""
    return Ratings.from_raw(
        part.user_ids[part.users],
        part.item_ids[part.items],
        part.ratings,
        titles=part.titles,
        source=part.source,
    )


def align_keep(train: Ratings, test: Ratings) -> tuple[Ratings, int]:
    """``test`` on ``train``'s indices; a user or item not in training becomes ``UNKNOWN``.

    Returns the table and how many of its ratings have an unknown user or item (the model
    scores those with its fallback: training mean plus the known bias).
    """
    users = _positions(train.user_ids, test.user_ids[test.users])
    items = _positions(train.item_ids, test.item_ids[test.items])
    out = Ratings(users, items, test.ratings, train.user_ids, train.item_ids,
                  None, train.titles, test.source)  # fmt: skip
    return out, int(np.count_nonzero((users == UNKNOWN) | (items == UNKNOWN)))


def _positions(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    if ids.dtype.kind != raw.dtype.kind:  # integer ids in one file, text ids in the other
        ids, raw = ids.astype(str), raw.astype(str)
        order = np.argsort(ids, kind="stable")
        pos = _positions(ids[order], raw)
        return np.where(pos == UNKNOWN, UNKNOWN, order[np.maximum(pos, 0)])
    pos = np.minimum(np.searchsorted(ids, raw), ids.shape[0] - 1)
    return np.where(ids[pos] == raw, pos, UNKNOWN).astype(np.int64)


def load_split(args, progress: bool = False) -> tuple[Ratings, Ratings, int]:
    """(train, test, n_unknown): explicit files, or a seeded split of one file or a release.

    The training part is indexed on its own users and items; test ratings of a user or item
    not in it keep index ``UNKNOWN`` and are counted (``test_size=0``: an empty test).
    """
    if args.train or args.test:
        if not (args.train and args.test):
            raise ValueError("--train and --test go together")
        if args.ratings:
            raise ValueError("give either --ratings or --train/--test, not both")
        train = read_ratings(args.train, **reader_options(args))
        return (train, *align_keep(train, read_ratings(args.test, **reader_options(args))))
    full = load_full(args, progress)
    test_size = 0.2 if args.test_size is None else args.test_size
    if test_size == 0:
        return full, full.subset(np.empty(0, dtype=np.int64)), 0
    tr, te = train_test_split(len(full), test_size, args.seed)
    train = reindex(full.subset(tr))
    return (train, *align_keep(train, full.subset(te)))


def given(args, dest: str) -> bool:
    """Whether the user set a model flag (unset flags are ``None``; --compile is False)."""
    value = getattr(args, dest, None)
    return value is not None and value is not False


def resolve_plan(args) -> None:
    """Fill in ``args.model`` and ``args.backend``; refuse flags the model does not take.

    ``--model auto`` is the 'default' configuration, or 'biased' SGD MF when an SGD flag or
    ``--backend torch``/``both`` is given (the default ensemble has no torch version).
    """
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
    have = BACKENDS[args.model]
    if args.backend is None:
        args.backend = have[0]
    wanted = ("numba", "torch") if args.backend == "both" else (args.backend,)
    missing = [b for b in wanted if b not in have]
    if missing:
        raise ValueError(
            f"--model {args.model} has no {missing[0]} version (it runs on {' and '.join(have)}); "
            "torch versions exist for plain, biased, als and neural"
        )
    if args.model == "default" and getattr(args, "plot", None):
        raise ValueError(
            "--plot draws per-epoch learning curves; the default model does not score every "
            "epoch (at scale that costs more than the epoch): name a model, e.g. --model biased"
        )
    if args.model == "neural" and getattr(args, "save", None):
        raise ValueError(
            "--save: a model file holds a factor model (μ + bᵤ + bᵢ + Pᵤ·Qᵢ); the neural "
            "model's MLP is not one, so it cannot be saved"
        )
    for backend in wanted:
        make_model(args, backend, check_only=True)


def default_model(args, train: Ratings | None = None):
    """The model ``mfrec train`` fits with no model flags: :class:`mfrec.job.DefaultModel`.

    It sizes its members by the training data at fit; its SGD members run on ``--device``
    (default auto: CUDA when Numba sees a device).
    """
    return DefaultModel(seed=args.seed, device=args.device or "auto")


def make_model(args, backend: str | None = None, train: Ratings | None = None,
               check_only: bool = False):  # fmt: skip
    """The model the flags ask for, on ``backend``: the named configuration with every given
    hyper-parameter flag applied; a flag the model does not take is a ``ValueError``.

    ``check_only`` validates the flags without building anything heavier than the base model.
    """
    if args.model == "auto" or args.backend is None:
        resolve_plan(args)
    backend = backend or ("numba" if args.backend == "both" else args.backend)
    base = (
        default_model(args, train)
        if args.model == "default"
        else build_model(args.model, args.seed)
    )
    cls = torch_class(type(base)) if backend == "torch" and args.model != "neural" else type(base)
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
    if "device" in params:  # a torch.device; the constructors take its name
        params["device"] = str(params["device"])
    return cls(**{**params, **overrides})


def constructor_args(cls: type, base: type) -> set[str]:
    """The keyword arguments ``cls`` takes (``**kwargs`` passed on to ``base`` count too)."""
    params = inspect.signature(cls.__init__).parameters
    names = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()) and base is not cls:
        names |= constructor_args(base, base)
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
    info = {"class": type(model).__name__, "backend": backend}
    if isinstance(model, DefaultModel):  # members are chosen at fit, by the data's size
        info.update(device=model.device_, n_threads=model.n_threads)
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
    params = {}
    for key in ("n_factors", "n_epochs", "n_iters", "n_samples", "burn_in", "thin", "lr", "reg",
                "biased", "init_std", "lr_decay", "val_fraction", "dtype"):  # fmt: skip
        if hasattr(model, key):
            value = getattr(model, key)
            params[key] = value.__name__ if isinstance(value, type) else value
    info["params"] = params
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


def fit_one(args, backend: str, train: Ratings, test: Ratings, say, bar_on: bool,
            val: Ratings | None = None, prefix: str = ""):  # fmt: skip
    """Fit one backend; returns (model, seconds, curves).

    ``curves`` maps a series name (the backend, or each ensemble member) to its steps and
    train/test RMSE. A sampler's progress is shown every tenth sweep (its running average of
    the kept samples, from the end of burn-in), every other model's every step.
    """
    model = make_model(args, backend, train)
    if isinstance(model, DefaultModel):
        return fit_default(model, train, say, bar_on, not args.quiet)
    ensemble = isinstance(model, Ensemble)
    curves: dict[str, dict[str, list[float]]] = {}
    track = bool(args.plot) or not args.quiet
    bar = epoch_bar(fit_steps(model), bar_on, desc=backend)

    def report(step: int, m, series: str) -> None:
        total = fit_steps(m)
        bar.update(1)
        name = step_name(m)
        if name == "sweep" and (step + 1) % 10 and step + 1 != total:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            tr = rmse(train.ratings, m.predict(train.users, train.items))
            te = rmse(test.ratings, m.predict(test.users, test.items)) if len(test) else None
        curve = curves.setdefault(series, {"step": [], "train": [], "test": [], "unit": name})
        curve["step"].append(step + 1)
        curve["train"].append(tr)
        if te is not None:
            curve["test"].append(te)
        bar.set_postfix(train=f"{tr:.4f}", **({} if te is None else {"test": f"{te:.4f}"}),
                        refresh=False)  # fmt: skip
        if not bar_on:
            test_part = "" if te is None else f"  test RMSE {te:.4f}"
            say(f"{prefix}{name} {step + 1:3d}/{total}  train RMSE {tr:.4f}{test_part}")

    announced: set[int] = set()

    def member_report(j: int, step: int, m) -> None:
        series = f"member {j + 1} ({type(m).__name__})"
        if j not in announced and not bar_on:
            announced.add(j)
            say(f"{prefix}member {j + 1}/{len(model.members)}: {label_text(label(m, backend))}")
            if step_name(m) == "sweep":
                say(f"{prefix}(the first {m.burn_in} sweeps are burn-in; shown: the running "
                    "average of the kept samples)")  # fmt: skip
        report(step, m, series)

    if step_name(model) == "sweep" and track and not bar_on:
        say(f"{prefix}(the first {model.burn_in} sweeps are burn-in; shown: the running average "
            "of the kept samples)")  # fmt: skip
    start = time.perf_counter()
    callback = None
    if track:
        callback = member_report if ensemble else (lambda s, m: report(s, m, backend))
    extra = {}
    if val is not None:
        extra = {"eval_set": (val.users, val.items, val.ratings), "patience": args.patience}
    try:
        model.fit(train.users, train.items, train.ratings, train.n_users, train.n_items,
                  callback=callback, **extra)  # fmt: skip
        if val is not None:
            best = model.best_epoch_
            kept = " (kept that epoch)" if args.patience else ""
            say(f"{prefix}validation RMSE best at epoch {best + 1}: "
                f"{model.val_history_[best]:.4f}{kept}")  # fmt: skip
    finally:
        bar.close()
    return model, time.perf_counter() - start, curves


def fit_default(model: DefaultModel, train: Ratings, say, bar_on: bool, lines: bool):
    """Fit the default model with one progress bar (and ETA) per member; no per-epoch RMSE.

    Scoring the training and test sets after every epoch would cost more than the epoch at
    ML-25M size; the members' own validation split already steers them.
    """
    bar, current = None, None

    def step(j: int, sweep: int, m) -> None:
        nonlocal bar, current
        if model.stage_ != current:
            if bar is not None:
                bar.close()
            current = model.stage_
            name = f"{current[0]} {j + 1}/{len(model.members)}: {member_label(m)}"
            unit = "sweeps" if hasattr(m, "burn_in") else "epochs"
            where = model.device_ if hasattr(m, "n_epochs") else "cpu"
            say(f"{name} ({fit_steps(m)} {unit} max, on {where})")
            bar = eta_bar(fit_steps(m), bar_on, name, lines)
        bar.update(1)

    start = time.perf_counter()
    try:
        model.fit(train.users, train.items, train.ratings, train.n_users, train.n_items,
                  callback=step)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    p = model.plan_
    say(f"validation ({p['val_fraction']:.0%} held out"
        f"{', members refit on all' if p['refit'] else ''}): "
        + ", ".join(f"{k} {v:.4f}" for k, v in model.val_rmse_.items()))  # fmt: skip
    say("blend weights: " + ", ".join(f"{member_label(m)} {w:.3f}" for m, w in
                                      zip(model.members, model.weights, strict=True)))  # fmt: skip
    return model, seconds, {}


def fit_and_score(args, backend: str, train, test, val, say, bars, prefix: str) -> tuple:
    """Fit on ``backend`` and score every test rating; returns (model, curves, result dict)."""
    model, seconds, curves = fit_one(args, backend, train, test, say, bars, val, prefix)
    result = {"model": args.model, **label(model, backend)}
    result.update(n_train=len(train), n_test=len(test), seconds=seconds)
    history = getattr(model, "history_", None)
    if history is not None:
        result["epochs_run"] = len(history)
    if len(test):
        with stage(f"scoring {len(test):,} test ratings", say):
            pred = model.predict(test.users, test.items)
        result.update(rmse=rmse(test.ratings, pred), mse=mse(test.ratings, pred),
                      mae=mae(test.ratings, pred), n_unknown=int(model.n_unknown_))  # fmt: skip
    else:
        result.update(rmse=None, mse=None, mae=None, n_unknown=0)
    return model, curves, result


def cmd_train(args) -> int:
    """Train, print per-epoch and final errors and a top-k list; optionally save and plot."""
    check_args(args)
    resolve_plan(args)
    say = (lambda *a: None) if args.quiet else print
    bars = progress_enabled(args.quiet, args.json)
    with stage("reading and splitting the ratings", say):
        train, test, n_unknown = load_split(args, progress=bars)
    u = 0 if args.user is None else id_index(train.user_ids, args.user)
    if u is None:
        raise ValueError(f"--user {args.user} is not in the training data")
    raw_user = raw_id(train.user_ids[u])
    say(
        f"{len(train):,} training and {len(test):,} test ratings, {train.n_users:,} users, "
        f"{train.n_items:,} items ({train.source})"
    )
    if len(test) == 0:
        say("--test-size 0: training on every rating; nothing is held out, nothing evaluated")
    if n_unknown:
        say(f"{n_unknown:,} test ratings have a user or item not in the training data: "
            "scored by the fallback (training mean + the known bias)")  # fmt: skip
    if getattr(args, "auto_reason", None):
        say(f"--model auto: biased SGD MF ({args.auto_reason}; the default ensemble runs only "
            "on numba with its own settings)")  # fmt: skip
    val = None
    if args.val_fraction and args.model != "neural":
        fit_part, val_part = train_test_split(len(train), args.val_fraction, args.seed + 1)
        train, val = train.subset(fit_part), train.subset(val_part)
        say(f"validation: {len(val):,} training ratings held out, {len(train):,} left to fit")
    backends = ["numba", "torch"] if args.backend == "both" else [args.backend]
    fits, results = {}, {}
    for name in backends:
        prefix = f"[{name}] " if len(backends) > 1 else ""
        say(f"{prefix}model {args.model}: {label_text(label(make_model(args, name), name))}")
        model, curves, result = fit_and_score(args, name, train, test, val, say, bars, prefix)
        fits[name], results[name] = (model, curves), result
        scores = (f"test RMSE {result['rmse']:.4f}  MSE {result['mse']:.4f}  "
                  f"MAE {result['mae']:.4f}" if len(test) else "no test ratings")  # fmt: skip
        print(f"{name} ({result['class']}): {scores}  ({result['seconds']:.2f} s training)")
    result = dict(results[backends[0]])
    if args.backend == "both":
        P_gap = float(np.max(np.abs(fits["numba"][0].P - fits["torch"][0].P)))
        result.update(backend="both", numba=results["numba"], torch=results["torch"],
                      max_abs_diff_P=P_gap)  # fmt: skip
        pair = f"{results['numba']['class']} on numba, {results['torch']['class']} on torch"
        say(f"max |P_numba − P_torch| = {P_gap:.3g} ({pair}: two runs from seed {args.seed})")
    model = fits[backends[0]][0]
    print_top(model, u, raw_user, args.top, train.item_ids, train.titles)
    result["top"] = top_json(model, u, args.top, train.item_ids, train.titles)
    if args.save:
        declared = args.rating_scale
        if declared is None and not (args.ratings or args.train):
            declared = get_release(args.dataset).scale
        if declared is not None:  # the scale --rate checks against (else the training range)
            model.scale_min, model.scale_max = (float(x) for x in declared)
        path = save_model(args.save, model, train.user_ids, train.item_ids, train.titles)
        say(f"saved model to {path}")
    if args.plot:
        from mfrec.plot import plot_curves

        series = {}
        for name, (_, curves) in fits.items():
            for key, curve in curves.items():
                series[key if len(fits) == 1 or key == name else f"{name} {key}"] = curve
        path = plot_curves(args.plot, series)
        say(f"saved learning curves to {path}")
    args.result = result
    return 0


def top_json(model, u: int, k: int, item_ids, titles) -> list[dict]:
    """The top-k list as JSON records: raw item id, title (or null), predicted rating."""
    top = model.recommend(u, k)
    return items_json(top, model.clip(model.score_all(u)[top]), item_ids, titles, "rating")


def items_json(index, values, item_ids, titles, key: str) -> list[dict]:
    """JSON records of items by index: raw id, title (or null) and one value under ``key``."""
    out = []
    for i, v in zip(index, values, strict=True):
        raw = raw_id(item_ids[i])
        out.append({"item": raw, "title": titles.get(raw), key: float(v)})
    return out


def print_top(model, u: int, raw_user, k: int, item_ids, titles) -> None:
    """Print the top-k unseen items for user index ``u`` with titles and predicted ratings."""
    top = model.recommend(u, k)
    header = f"top {len(top)} unseen movies for user {raw_user}:"
    print_items(header, top, model.clip(model.score_all(u)[top]), item_ids, titles)


def print_items(header: str, index, values, item_ids, titles, fmt: str = "5.2f") -> None:
    """A numbered list of items (by index) with one value each and the title."""
    print(header)
    for rank, (i, v) in enumerate(zip(index, values, strict=True), start=1):
        raw = raw_id(item_ids[i])
        print(f"{rank:3d}. {v:{fmt}}  {titles.get(raw, f'item {raw}')}")


def parse_rates(pairs: list[str], model, item_ids: np.ndarray, model_path: str):
    """``ITEM=RATING`` strings as (item indices, ratings); errors name the bad pair.

    A rating outside the model's scale is refused: the scale declared at training
    (``--rating-scale``, or the release's), else the range of the training ratings.
    """
    lo = model.params.get("scale_min", getattr(model, "r_min", None))
    hi = model.params.get("scale_max", getattr(model, "r_max", None))
    items, ratings = [], []
    for pair in pairs:
        item, sep, value = pair.rpartition("=")
        try:
            r = float(value)
        except ValueError:
            raise ValueError(f"--rate expects ITEM=RATING, got {pair!r}") from None
        if not sep or not item or not np.isfinite(r):
            raise ValueError(f"--rate expects ITEM=RATING with a finite rating, got {pair!r}")
        if lo is not None and not lo <= r <= hi:
            raise ValueError(
                f"--rate {pair}: rating {r:g} is outside the model's rating scale [{lo:g}, {hi:g}]"
            )
        pos = id_index(item_ids, item)
        if pos is None:
            raise ValueError(f"--rate: item {item} is not in {model_path}")
        items.append(pos)
        ratings.append(r)
    if len(set(items)) != len(items):
        raise ValueError("--rate: each item may be rated once")
    return np.array(items, dtype=np.int64), np.array(ratings)


def plural(n: int, word: str) -> str:
    """'1 rating', '2 ratings'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_recommend(args) -> int:
    """Top-k for a raw user id from a saved model, or for new ratings folded in."""
    check_positive("-k/--top", args.top, integer=True)
    model, user_ids, item_ids, titles = load_model(args.model)
    if args.rate:
        items, ratings = parse_rates(args.rate, model, item_ids, args.model)
        reg = float(model.params.get("reg", 0.0))
        p, bu = fold_in(model.Q, model.bi, model.mu, model.biased, items, ratings, reg)
        scores = fold_in_scores(model.Q, model.bi, model.mu, model.biased, p, bu)
        top = top_k(scores, items, args.top)
        header = f"top {len(top)} movies for a new user with {plural(len(items), 'rating')}:"
        values = model.clip(scores[top])
        print_items(header, top, values, item_ids, titles)
        args.result = {"user": None, "known_user": False, "n_rated": len(items),
                       "items": items_json(top, values, item_ids, titles, "rating")}  # fmt: skip
        return 0
    pos = id_index(user_ids, args.user)
    if pos is None:
        print(
            f"user {args.user} is not in {args.model}: ranking by item bias (μ + bᵢ) instead; "
            "for a new user, pass their ratings with --rate ITEM=RATING ..."
        )
    u = UNKNOWN if pos is None else pos
    raw_user = args.user if pos is None else raw_id(user_ids[pos])
    print_top(model, u, raw_user, args.top, item_ids, titles)
    args.result = {"user": raw_user, "known_user": pos is not None,
                   "items": top_json(model, u, args.top, item_ids, titles)}  # fmt: skip
    return 0


def cmd_similar(args) -> int:
    """The items nearest to one item by cosine similarity of their rows of Q."""
    check_positive("-k/--top", args.top, integer=True)
    model, _, item_ids, titles = load_model(args.model)
    pos = id_index(item_ids, args.item)
    if pos is None:
        raise ValueError(f"item {args.item} is not in {args.model}")
    top, cos = similar_items(model.Q, pos, args.top)
    raw = raw_id(item_ids[pos])
    name = titles.get(raw, f"item {raw}")
    header = f"{len(top)} items most similar to {name} (cosine):"
    print_items(header, top, cos, item_ids, titles, fmt="+.3f")
    args.result = {"item": raw, "title": titles.get(raw),
                   "similar": items_json(top, cos, item_ids, titles, "cosine")}  # fmt: skip
    return 0


def cmd_download(args) -> int:
    """Find or download, verify and unpack one release; with --data-dir, put it there."""
    progress = progress_enabled(args.quiet)
    if args.data_dir is None:
        folder = find_release(args.name, progress=progress)
    else:
        folder = release_into(args.name, Path(args.data_dir), progress)
    print(f"{args.name} is in {folder}")
    return 0


def release_into(name: str, root: Path, progress: bool) -> Path:
    """Release ``name`` in ``root``: already there, copied from where it is found, or downloaded.

    A copy goes to a temp folder in ``root`` first, then is renamed to ``root/name``.
    """
    import shutil
    import tempfile

    if root.exists() and not root.is_dir():
        raise ValueError(f"--data-dir {root}: not a folder")
    try:
        here = find_release(name, root, download=False) if root.is_dir() else None
    except FileNotFoundError:
        here = None
    if here is not None and here.resolve().is_relative_to(root.resolve()):
        return here
    try:
        found = find_release(name, None, download=False)
    except FileNotFoundError:
        found = None
    if found is None:  # nowhere on this machine: download it into root
        from mfrec.data import fetch_release

        return fetch_release(name, root, progress=progress)
    root.mkdir(parents=True, exist_ok=True)
    rel = get_release(name)
    final = root / rel.name
    if final.exists():
        raise ValueError(f"{final} exists but does not hold {name}; move it away first")
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{rel.name}-") as tmp:
        staged = Path(tmp) / rel.name
        shutil.copytree(found, staged)
        os.replace(staged, final)
    print(f"copied {name} from {found}")
    return final


def add_cv_parser(sub) -> None:
    """Register the ``cv`` subcommand: the data flags of ``train``, folds, model, metrics."""
    # argparse %-formats help text, so a literal % (as in "a 10% split") must be doubled.
    models = "; ".join(f"{name}: {desc}" for name, (desc, _) in CONFIGS.items()).replace("%", "%%")
    c = sub.add_parser(
        "cv", help="k-fold cross-validation of a model", formatter_class=HelpFormatter
    )
    add_data_options(c)
    e = c.add_argument_group("cross-validation")
    e.add_argument("--folds", type=int, default=5, help="number of folds")
    e.add_argument("--seed", type=int, default=0, help="seeds the folds and the models")
    e.add_argument("--model", choices=list(CONFIGS), default="default", help=models)
    e.add_argument("-k", "--top", type=int, default=10, help="K of precision/recall/NDCG@K")
    e.add_argument("--threshold", type=float, default=4.0, help="relevant: test rating >= this")
    add_output_flags(c)


def cmd_cv(args) -> int:
    """Run ``mfrec cv``: print each fold, then the mean ± std of every metric."""
    check_positive("-k/--top", args.top, integer=True)
    if args.folds < 2:
        raise ValueError(f"--folds must be >= 2 (every rating is tested once), got {args.folds}")
    data = load_full(args, progress=progress_enabled(args.quiet, args.json))
    k = args.top
    say = (lambda *a: None) if args.quiet else print
    say(f"{args.folds}-fold CV of '{args.model}' on {len(data):,} ratings ({data.source})")

    def show(f: int, r: dict) -> None:
        unknown = f", {r['n_unknown']} with a user or item unseen in training" * bool(
            r["n_unknown"]
        )
        say(
            f"fold {f + 1}: RMSE {r['rmse']:.4f}  MAE {r['mae']:.4f}  "
            f"NDCG@{k} {r[f'ndcg@{k}']:.4f}  ({r['fit_s']:.1f} s fit; "
            f"{r['n_test']:,} test ratings{unknown})"
        )

    result = cross_validate(data, args.model, args.folds, args.seed, k, args.threshold, show)
    mean, std = result["mean"], result["std"]
    for key in mean:
        print(f"mean {key:>13s} {mean[key]:.4f} ± {std[key]:.4f}")
    args.result = result
    return 0
