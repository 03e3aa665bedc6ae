"""The ``mfrec`` command line: train on MovieLens or your own files; recommend from a model."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from mfrec._internal import check_positive
from mfrec.configs import CONFIGS, SGD_DEFAULTS, build_model
from mfrec.data import (
    RELEASES,
    DataError,
    DownloadError,
    Ratings,
    align,
    find_release,
    load_movielens,
    read_ratings,
)
from mfrec.data.parse import DUPLICATE_POLICIES
from mfrec.data.splits import train_test_split
from mfrec.evaluate import add_cv_parser, cmd_cv
from mfrec.job import DefaultModel
from mfrec.modelio import ModelFileError, load_model, save_model
from mfrec.progress import epoch_bar, eta_bar, progress_enabled, stage
from mfrec.reference import DivergenceError, MatrixFactorization, mae, mse, rmse
from mfrec.reference.ensemble import Ensemble, member_label
from mfrec.reference.mf import UNKNOWN
from mfrec.reference.recommend import top_k
from mfrec.reference.serving import fold_in, fold_in_scores, similar_items

# `mfrec train` with no model flags trains --model auto = CONFIGS["default"] (biased SGD MF
# averaged with Bayesian MF); any SGD flag that differs from these (or --backend torch) trains
# plain SGD MF instead. Tuned on validation splits carved from training (docs/accuracy.md);
# the slides' plain model is `--model plain`, or `--no-biased --reg 0`.
DEFAULTS = {"model": "auto", **SGD_DEFAULTS}

DELIMITERS = {"tab": "\t", "comma": ",", "::": "::", "|": "|", ";": ";", "space": " "}
USER_ERRORS = (ValueError, KeyError, OSError, DataError, DownloadError, ModelFileError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (defaults shown in --help)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="mfrec", description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and report test RMSE/MSE", formatter_class=fmt)
    src = t.add_argument_group("data (default: a seeded split of --dataset)")
    src.add_argument("--dataset", choices=list(RELEASES), default="ml-100k", help="MovieLens")
    src.add_argument("--data-dir", help="folder holding the release (else $MFREC_DATA, cache)")
    src.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="download the release when it is not found (checksum verified)",
    )
    src.add_argument("--ratings", help="one ratings file 'user item rating [timestamp]' to split")
    src.add_argument("--train", help="training ratings file: 'user item rating [timestamp]'")
    src.add_argument("--test", help="test ratings file (same format as --train)")
    src.add_argument("--test-size", type=float, default=0.2, help="held-out fraction (no --test)")
    src.add_argument(
        "--delimiter",
        choices=list(DELIMITERS),
        help="field separator of --ratings/--train/--test (None: sniffed from the first line)",
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
    m = t.add_argument_group("model")
    m.add_argument("--model", choices=["auto", *CONFIGS], default=DEFAULTS["model"], help="config")
    m.add_argument("--factors", type=int, default=DEFAULTS["factors"], help="k, columns of P, Q")
    m.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="passes over the data")
    m.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="SGD learning rate")
    m.add_argument("--lr-decay", type=float, default=1.0, help="epoch e uses lr·decayᵉ (numba)")
    m.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="carve this share of the training ratings out as a validation split (numba SGD)",
    )
    m.add_argument(
        "--patience",
        type=int,
        help="with --val-fraction: stop after this many epochs without a better validation "
        "RMSE and keep the best epoch",
    )
    m.add_argument("--reg", type=float, default=DEFAULTS["reg"], help="L2 penalty (0: slides)")
    m.add_argument("--init-std", type=float, default=0.1, help="std of the N(0, σ²) init")
    m.add_argument(
        "--biased",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS["biased"],
        help="add μ + bᵤ + bᵢ to the prediction",
    )
    m.add_argument("--seed", type=int, default=0, help="seeds the split, init and sampling")
    m.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="of P, Q")
    b = t.add_argument_group("backend")
    b.add_argument(
        "--backend",
        choices=["numba", "torch", "both"],
        default="numba",
        help="both: train each from the same seed and compare (saves the Numba model)",
    )
    b.add_argument(
        "--kernel", choices=["exact", "fast", "blocked"], default="exact", help="numba SGD kernel"
    )
    b.add_argument("--threads", type=int, default=1, help="numba SGD threads (Hogwild or blocked)")
    b.add_argument("--mode", choices=["exact", "minibatch"], default="minibatch", help="torch")
    b.add_argument("--batch-size", type=int, default=1024, help="torch minibatch size")
    b.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda or auto (cuda when present): the default model's SGD members, or torch",
    )
    b.add_argument(
        "--compile",
        action="store_true",
        help="torch minibatch: run each step under torch.compile (seconds to compile first)",
    )
    d = t.add_argument_group("distributed (under torchrun; see docs/scaling.md)")
    d.add_argument("--distributed", action="store_true", help="data-parallel torch minibatch")
    d.add_argument("--checkpoint", help="checkpoint file, rewritten atomically every epoch")
    d.add_argument("--resume", action="store_true", help="continue from --checkpoint if present")
    d.add_argument("--dist-timeout", type=float, default=60.0, help="seconds to wait for a rank")
    o = t.add_argument_group("output")
    o.add_argument("--user", type=int, help="raw user id to recommend for (default: first user)")
    o.add_argument("-k", "--top", type=int, default=10, help="how many movies to recommend")
    o.add_argument("--save", help="write the trained model to this file (atomically)")
    o.add_argument("--plot", help="save learning curves (train/test RMSE per epoch), e.g. a .png")
    o.add_argument("--json", action="store_true", help="end with one JSON line of results")
    o.add_argument("--quiet", action="store_true", help="print only the final results")

    add_cv_parser(sub)
    r = sub.add_parser(
        "recommend",
        help="top-k unseen items for a known user, or for new ratings folded in",
        formatter_class=fmt,
    )
    r.add_argument("--model", required=True, help="a file written by `mfrec train --save`")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="raw user id the model was trained on")
    who.add_argument(
        "--rate",
        nargs="+",
        metavar="ITEM=RATING",
        help="a new user's ratings by raw item id, folded in by a ridge solve against fixed Q",
    )
    r.add_argument("-k", "--top", type=int, default=10, help="how many items")

    s = sub.add_parser(
        "similar", help="items nearest to one item (cosine on Q)", formatter_class=fmt
    )
    s.add_argument("--model", required=True, help="a file written by `mfrec train --save`")
    s.add_argument("--item", type=int, required=True, help="raw item id")
    s.add_argument("-k", "--top", type=int, default=10, help="how many items")

    d = sub.add_parser(
        "download", help="download and verify a MovieLens release", formatter_class=fmt
    )
    d.add_argument("name", choices=list(RELEASES), help="the release")
    d.add_argument("--data-dir", help="where to put it (default: $MFREC_DATA, else the cache)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mfrec`` console command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already explained
        return int(e.code or 0)
    try:
        if args.command == "train" and args.device == "auto":
            args.device = auto_device(args.backend)
        if args.command == "train" and args.distributed:
            from mfrec.torch_impl.distributed import run_cli

            return run_cli(args, cmd_train)
        command = {
            "train": cmd_train,
            "cv": cmd_cv,
            "recommend": cmd_recommend,
            "similar": cmd_similar,
        }
        return command.get(args.command, cmd_download)(args)
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


def auto_device(backend: str) -> str:
    """``--device auto``: cuda when the backend's CUDA target (numba or torch) sees a device."""
    from mfrec import devices

    present = devices.numba_cuda() if backend == "numba" else devices.torch_cuda()
    return "cuda" if present else "cpu"


def check_args(args) -> None:
    """Hyper-parameters in range, with errors that name the command-line flag."""
    check_positive("--factors", args.factors, integer=True)
    check_positive("--epochs", args.epochs, integer=True, allow_zero=True)
    check_positive("--lr", args.lr)
    check_positive("--reg", args.reg, allow_zero=True)
    check_positive("--init-std", args.init_std, allow_zero=True)
    check_positive("--seed", args.seed, integer=True, allow_zero=True)
    check_positive("--batch-size", args.batch_size, integer=True)
    check_positive("-k/--top", args.top, integer=True, allow_zero=True)
    check_positive("--lr-decay", args.lr_decay)
    if not 0.0 <= args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction!r}")
    if args.patience is not None:
        check_positive("--patience", args.patience, integer=True)
        if not args.val_fraction:
            raise ValueError("--patience needs a validation split: add --val-fraction, e.g. 0.1")
    if not 0.0 < args.test_size < 1.0:
        raise ValueError(f"--test-size must be in (0, 1), got {args.test_size!r}")
    if args.plot:
        from mfrec.plot import check_plot_path

        check_plot_path(args.plot)


def load_split(args, progress: bool = False) -> tuple[Ratings, Ratings, int]:
    """(train, test, dropped): explicit files, one file split, or a seeded split of a release."""
    opts = dict(delimiter=DELIMITERS.get(args.delimiter), rating_scale=args.rating_scale)
    opts["duplicates"] = args.duplicates
    if args.train or args.test:
        if not (args.train and args.test):
            raise ValueError("--train and --test go together")
        if args.ratings:
            raise ValueError("give either --ratings or --train/--test, not both")
        train = read_ratings(args.train, **opts)
        test, dropped = align(train, read_ratings(args.test, **opts))
        return train, test, dropped
    if args.ratings:
        full = read_ratings(args.ratings, **opts)
    else:
        full = load_movielens(
            args.dataset, args.data_dir, download=args.download, progress=progress
        )
    tr, te = train_test_split(len(full), args.test_size, args.seed)
    train = full.subset(tr)
    if args.ratings:  # re-index on the training part: ids seen only in test are unknown
        train = Ratings.from_raw(
            full.user_ids[train.users],
            full.item_ids[train.items],
            train.ratings,
            source=full.source,
        )
        test, dropped = align(train, full.subset(te))
        return train, test, dropped
    return train, full.subset(te), 0


def resolve_model(args) -> None:
    """``--model auto``: the default configuration unless an SGD flag or the backend was set."""
    if args.model == "auto":
        sgd_flags = {f: getattr(args, f) for f in SGD_DEFAULTS}
        schedule = getattr(args, "lr_decay", 1.0) != 1.0 or getattr(args, "val_fraction", 0.0)
        plain_defaults = sgd_flags == SGD_DEFAULTS and args.backend == "numba" and not schedule
        args.model = "default" if plain_defaults else "biased"


def make_model(args, backend: str | None = None):
    """The model the flags ask for (the constructors validate every hyper-parameter)."""
    resolve_model(args)
    if args.model == "default":
        return DefaultModel(seed=args.seed, device=args.device)
    if args.model != "biased":
        return build_model(args.model, args.seed)
    common = dict(
        n_factors=args.factors,
        n_epochs=args.epochs,
        lr=args.lr,
        reg=args.reg,
        init_std=args.init_std,
        seed=args.seed,
        dtype=args.dtype,
        biased=args.biased,
    )
    if (backend or args.backend) == "numba":
        return MatrixFactorization(
            **common, n_threads=args.threads, kernel=args.kernel, lr_decay=args.lr_decay
        )
    if args.lr_decay != 1.0 or args.val_fraction:
        raise ValueError("--lr-decay and --val-fraction need the numba backend")
    if getattr(args, "distributed", False):
        from mfrec.torch_impl.distributed import DistributedMatrixFactorization

        return DistributedMatrixFactorization(
            **common, batch_size=args.batch_size, device=args.device,
            checkpoint=args.checkpoint, resume=args.resume,
        )  # fmt: skip
    from mfrec.torch_impl import TorchMatrixFactorization

    return TorchMatrixFactorization(
        **common,
        mode=args.mode,
        batch_size=args.batch_size,
        device=args.device,
        compile=args.compile,
    )


def fit_steps(model) -> int:
    """How many progress steps ``model.fit`` reports: epochs, iterations or Gibbs sweeps."""
    if isinstance(model, Ensemble):
        return sum(fit_steps(m) for m in model.members)
    if hasattr(model, "n_samples"):
        return model.burn_in + model.n_samples
    return int(getattr(model, "n_epochs", getattr(model, "n_iters", 0)))


def fit_one(
    args, backend: str, train: Ratings, test: Ratings, say, bar_on: bool, val: Ratings | None = None
):
    """Fit one backend; returns (model, seconds, curves) with per-epoch train/test RMSE.

    An ensemble reports each member in turn: every epoch of an SGD member, every tenth
    sweep of a sampler (its running average), each as train and test RMSE.
    """
    model = make_model(args, backend)
    if isinstance(model, DefaultModel):
        return fit_default(model, train, say, bar_on, not args.quiet)
    ensemble = isinstance(model, Ensemble)
    curves: dict[str, list[float]] = {"train": [], "test": []}
    track = bool(args.plot) or not args.quiet
    bar = epoch_bar(fit_steps(model), bar_on, desc=backend)

    def report(step: int, m, label: str = "epoch", total: int | None = None) -> None:
        total = total or fit_steps(m)
        bar.update(1)
        if ensemble and label != "epoch" and (step + 1) % 10 and step + 1 != total:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            tr = rmse(train.ratings, m.predict(train.users, train.items))
            te = rmse(test.ratings, m.predict(test.users, test.items))
        if not ensemble:
            curves["train"].append(tr)
            curves["test"].append(te)
        bar.set_postfix(train=f"{tr:.4f}", test=f"{te:.4f}", refresh=False)
        if not bar_on:
            say(f"{label} {step + 1:3d}/{total}  train RMSE {tr:.4f}  test RMSE {te:.4f}")

    def member_report(j: int, step: int, m) -> None:
        label = "epoch" if hasattr(m, "n_epochs") else "sweep"
        if step == 0 or (label == "sweep" and step == m.burn_in):
            say(f"member {j + 1}/{len(model.members)}: {type(m).__name__}, k={m.n_factors}")
        report(step, m, label)

    start = time.perf_counter()
    try:
        model.fit(
            train.users,
            train.items,
            train.ratings,
            train.n_users,
            train.n_items,
            callback=(member_report if ensemble else report) if track else None,
            **({} if val is None else {"eval_set": (val.users, val.items, val.ratings),
                                        "patience": args.patience}),
        )  # fmt: skip
        if val is not None:
            best = model.best_epoch_
            say(f"validation RMSE best at epoch {best + 1}: {model.val_history_[best]:.4f}"
                + (" (kept that epoch)" if args.patience else ""))  # fmt: skip
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
            say(f"{name} ({fit_steps(m)} {'sweeps' if hasattr(m, 'burn_in') else 'epochs'} max,"
                f" on {model.device_ if hasattr(m, 'n_epochs') else 'cpu'})")  # fmt: skip
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
    return model, seconds, {"train": [], "test": []}


def cmd_train(args) -> int:
    """Train, print per-epoch and final errors and a top-k list; optionally save and plot."""
    check_args(args)
    say = (lambda *a: None) if args.quiet else print
    bars = progress_enabled(args.quiet, args.json)
    with stage("reading and splitting the ratings", say):
        train, test, dropped = load_split(args, progress=bars)
    if len(test) == 0:
        raise ValueError(
            "the test set is empty (no test rating has a user and an item seen in training)"
        )
    raw_user = args.user if args.user is not None else int(train.user_ids[0])
    u = train.user_index(raw_user)
    say(
        f"{len(train):,} training and {len(test):,} test ratings, {train.n_users:,} users, "
        f"{train.n_items:,} items ({train.source})"
    )
    if dropped:
        say(f"dropped {dropped:,} test ratings whose user or item is not in the training data")
    resolve_model(args)
    sgd = args.model == "biased"  # SGD MF from the flags; else a named configuration
    say(
        f"backend {args.backend}: k={args.factors}, "
        f"epochs={args.epochs}, lr={args.lr}, reg={args.reg}, biased={args.biased}"
        if sgd
        else f"model {args.model}: {CONFIGS[args.model][0]}"
    )
    val = None
    if args.val_fraction:
        if not sgd or args.backend != "numba":
            raise ValueError("--val-fraction needs SGD MF (--model biased) on the numba backend")
        fit_part, val_part = train_test_split(len(train), args.val_fraction, args.seed + 1)
        train, val = train.subset(fit_part), train.subset(val_part)
        say(f"validation: {len(val):,} training ratings held out, {len(train):,} left to fit")
    backends = ["numba", "torch"] if args.backend == "both" else [args.backend]
    fits = {name: fit_one(args, name, train, test, say, bars, val) for name in backends}
    results = {}
    for name, (model, seconds, _) in fits.items():
        with stage(f"scoring {len(test):,} test ratings", say):
            pred = model.predict(test.users, test.items)
        results[name] = {
            "rmse": rmse(test.ratings, pred),
            "mse": mse(test.ratings, pred),
            "mae": mae(test.ratings, pred),
            "n_train": len(train),
            "n_test": len(test),
            "seconds": seconds,
            "backend": name,
            "epochs_run": len(getattr(model, "history_", [])),
        }
        r = results[name]
        print(
            f"{name}: test RMSE {r['rmse']:.4f}  MSE {r['mse']:.4f}  MAE {r['mae']:.4f}  "
            f"({seconds:.2f} s training)"
        )
    result = dict(results[backends[0]])
    if args.backend == "both":
        P_gap = float(np.max(np.abs(fits["numba"][0].P - fits["torch"][0].P)))
        result.update(backend="both", torch=results["torch"], max_abs_diff_P=P_gap)
        say(f"max |P_numba − P_torch| = {P_gap:.3g}")
    model = fits[backends[0]][0]
    print_top(model, u, raw_user, args.top, train.item_ids, train.titles)
    if args.save:
        path = save_model(args.save, model, train.user_ids, train.item_ids, train.titles)
        say(f"saved model to {path}")
    if args.plot:
        from mfrec.plot import plot_curves

        path = plot_curves(args.plot, {name: fit[2] for name, fit in fits.items()})
        say(f"saved learning curves to {path}")
    if args.json:
        print(json.dumps(result))
    return 0


def print_top(model, u: int, raw_user, k: int, item_ids, titles) -> None:
    """Print the top-k unseen items for user index ``u`` with titles and predicted ratings."""
    top = model.recommend(u, k)
    header = f"top {len(top)} unseen movies for user {raw_user}:"
    print_items(header, top, model.clip(model.score_all(u)[top]), item_ids, titles)


def print_items(header: str, index, values, item_ids, titles, fmt: str = "5.2f") -> None:
    """A numbered list of items (by index) with one value each and the title."""
    print(header)
    for rank, (i, v) in enumerate(zip(index, values, strict=True), start=1):
        raw = int(item_ids[i])
        print(f"{rank:3d}. {v:{fmt}}  {titles.get(raw, f'item {raw}')}")


def parse_rates(pairs: list[str], item_ids: np.ndarray, model_path: str):
    """``ITEM=RATING`` strings as (item indices, ratings); errors name the bad pair."""
    items, ratings = [], []
    for pair in pairs:
        item, sep, value = pair.partition("=")
        try:
            raw, r = int(item), float(value)
        except ValueError:
            raise ValueError(f"--rate expects ITEM=RATING, got {pair!r}") from None
        if not sep or not np.isfinite(r):
            raise ValueError(f"--rate expects ITEM=RATING with a finite rating, got {pair!r}")
        pos = np.flatnonzero(item_ids == raw)
        if pos.size == 0:
            raise ValueError(f"--rate: item {raw} is not in {model_path}")
        items.append(int(pos[0]))
        ratings.append(r)
    if len(set(items)) != len(items):
        raise ValueError("--rate: each item may be rated once")
    return np.array(items, dtype=np.int64), np.array(ratings)


def cmd_recommend(args) -> int:
    """Top-k for a raw user id from a saved model, or for new ratings folded in."""
    check_positive("-k/--top", args.top, integer=True, allow_zero=True)
    model, user_ids, item_ids, titles = load_model(args.model)
    if args.rate:
        items, ratings = parse_rates(args.rate, item_ids, args.model)
        reg = float(model.params.get("reg", 0.0))
        p, bu = fold_in(model.Q, model.bi, model.mu, model.biased, items, ratings, reg)
        scores = fold_in_scores(model.Q, model.bi, model.mu, model.biased, p, bu)
        top = top_k(scores, items, args.top)
        header = f"top {len(top)} movies for a new user with {len(items)} ratings:"
        print_items(header, top, model.clip(scores[top]), item_ids, titles)
        return 0
    pos = np.flatnonzero(user_ids == args.user)
    if pos.size == 0:
        print(
            f"user {args.user} is not in {args.model}: ranking by item bias (μ + bᵢ) instead; "
            "for a new user, pass their ratings with --rate ITEM=RATING ..."
        )
    print_top(model, int(pos[0]) if pos.size else UNKNOWN, args.user, args.top, item_ids, titles)
    return 0


def cmd_similar(args) -> int:
    """The items nearest to one item by cosine similarity of their rows of Q."""
    check_positive("-k/--top", args.top, integer=True, allow_zero=True)
    model, _, item_ids, titles = load_model(args.model)
    pos = np.flatnonzero(item_ids == args.item)
    if pos.size == 0:
        raise ValueError(f"item {args.item} is not in {args.model}")
    top, cos = similar_items(model.Q, int(pos[0]), args.top)
    name = titles.get(args.item, f"item {args.item}")
    header = f"{len(top)} items most similar to {name} (cosine):"
    print_items(header, top, cos, item_ids, titles, fmt="+.3f")
    return 0


def cmd_download(args) -> int:
    """Download, verify and unpack one release."""
    folder = find_release(args.name, args.data_dir, progress=progress_enabled(args.quiet))
    print(f"{args.name} is in {folder}")
    return 0
