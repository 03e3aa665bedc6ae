"""The ``mfrec`` command line: train on MovieLens or your own files; recommend from a model."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from data import DataError, DownloadError, Ratings, align, load_ml100k, read_ratings
from data.splits import train_test_split
from mfrec.configs import CONFIGS, SGD_DEFAULTS, build_model
from mfrec.evaluate import add_cv_parser, cmd_cv
from mfrec.modelio import ModelFileError, load_model, save_model
from reference import DivergenceError, MatrixFactorization, mae, mse, rmse
from reference.mf import UNKNOWN

# `mfrec train` with no model flags trains --model auto = CONFIGS["default"] (biased SGD MF
# averaged with Bayesian MF); any SGD flag that differs from these (or --backend torch) trains
# plain SGD MF instead. Tuned on validation splits carved from training (docs/accuracy.md);
# the slides' plain model is `--model plain`, or `--no-biased --reg 0`.
DEFAULTS = {"model": "auto", **SGD_DEFAULTS}

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, DataError, DownloadError, ModelFileError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (defaults shown in --help)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="mfrec", description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and report test RMSE/MSE", formatter_class=fmt)
    src = t.add_argument_group("data")
    src.add_argument("--data-dir", help="folder with ml-100k (else $MFREC_DATA, cache, download)")
    src.add_argument("--train", help="training ratings file: 'user item rating [timestamp]'")
    src.add_argument("--test", help="test ratings file (same format as --train)")
    src.add_argument("--test-size", type=float, default=0.2, help="held-out fraction (no --test)")
    m = t.add_argument_group("model")
    m.add_argument("--model", choices=["auto", *CONFIGS], default=DEFAULTS["model"], help="config")
    m.add_argument("--factors", type=int, default=DEFAULTS["factors"], help="k, columns of P, Q")
    m.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="passes over the data")
    m.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="SGD learning rate")
    m.add_argument("--reg", type=float, default=DEFAULTS["reg"], help="L2 penalty (0: slides)")
    m.add_argument("--init-std", type=float, default=0.1, help="std of the N(0, σ²) init")
    m.add_argument(
        "--biased",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS["biased"],
        help="add μ + bᵤ + bᵢ to the prediction",
    )
    m.add_argument("--seed", type=int, default=0, help="seeds the split, init and sampling")
    m.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    b = t.add_argument_group("backend")
    b.add_argument("--backend", choices=["numba", "torch"], default="numba")
    b.add_argument("--mode", choices=["exact", "minibatch"], default="minibatch", help="torch")
    b.add_argument("--batch-size", type=int, default=1024, help="torch minibatch size")
    b.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    o = t.add_argument_group("output")
    o.add_argument("--user", type=int, help="raw user id to recommend for (default: first user)")
    o.add_argument("-k", "--top", type=int, default=10, help="how many movies to recommend")
    o.add_argument("--save", help="write the trained model to this file (atomically)")
    o.add_argument("--json", action="store_true", help="end with one JSON line of results")
    o.add_argument("--quiet", action="store_true", help="print only the final results")

    add_cv_parser(sub)
    r = sub.add_parser("recommend", help="top-k unseen items of a saved model", formatter_class=fmt)
    r.add_argument("--model", required=True, help="a file written by `mfrec train --save`")
    r.add_argument("--user", type=int, required=True, help="raw user id")
    r.add_argument("-k", "--top", type=int, default=10, help="how many items")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mfrec`` console command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "cv":
            return cmd_cv(args)
        return cmd_recommend(args)
    except DivergenceError as e:
        print(f"mfrec: error: {e}; no model was saved", file=sys.stderr)
        return 1
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"mfrec: error: {msg}", file=sys.stderr)
        return 2


def load_split(args) -> tuple[Ratings, Ratings, int]:
    """(train, test, dropped): explicit files, or a seeded split of MovieLens 100k."""
    if args.train or args.test:
        if not (args.train and args.test):
            raise ValueError("--train and --test go together")
        train = read_ratings(args.train)
        test, dropped = align(train, read_ratings(args.test))
        return train, test, dropped
    full = load_ml100k(args.data_dir)
    tr, te = train_test_split(len(full), args.test_size, args.seed)
    return full.subset(tr), full.subset(te), 0


def make_model(args):
    """The model the flags ask for (the constructors validate every hyper-parameter)."""
    if args.model == "auto":
        sgd_flags = {f: getattr(args, f) for f in SGD_DEFAULTS}
        plain_defaults = sgd_flags == SGD_DEFAULTS and args.backend == "numba"
        args.model = "default" if plain_defaults else "biased"
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
    if args.backend == "numba":
        return MatrixFactorization(**common)
    from torch_impl import TorchMatrixFactorization

    return TorchMatrixFactorization(
        **common, mode=args.mode, batch_size=args.batch_size, device=args.device
    )


def cmd_train(args) -> int:
    """Train, print per-epoch and final errors and a top-k list; optionally save."""
    say = (lambda *a: None) if args.quiet else print
    train, test, dropped = load_split(args)
    if len(test) == 0:
        raise ValueError(
            "the test set is empty (no test rating has a user and an item seen in training)"
        )
    model = make_model(args)
    say(
        f"{len(train):,} training and {len(test):,} test ratings, {train.n_users:,} users, "
        f"{train.n_items:,} items ({train.source})"
    )
    if dropped:
        say(f"dropped {dropped:,} test ratings whose user or item is not in the training data")
    sgd = args.model == "biased"  # SGD MF from the flags; else a named configuration
    say(
        f"backend {args.backend}: k={args.factors}, "
        f"epochs={args.epochs}, lr={args.lr}, reg={args.reg}, biased={args.biased}"
        if sgd
        else f"model {args.model}: {CONFIGS[args.model][0]}"
    )

    def report(epoch: int, m) -> None:
        tr = rmse(train.ratings, m.predict(train.users, train.items))
        te = rmse(test.ratings, m.predict(test.users, test.items))
        say(f"epoch {epoch + 1:3d}/{args.epochs}  train RMSE {tr:.4f}  test RMSE {te:.4f}")

    start = time.perf_counter()
    model.fit(
        train.users,
        train.items,
        train.ratings,
        train.n_users,
        train.n_items,
        **({"callback": report} if sgd and not args.quiet else {}),
    )
    seconds = time.perf_counter() - start
    pred = model.predict(test.users, test.items)
    result = {
        "rmse": rmse(test.ratings, pred),
        "mse": mse(test.ratings, pred),
        "mae": mae(test.ratings, pred),
        "n_train": len(train),
        "n_test": len(test),
        "seconds": seconds,
        "backend": args.backend,
        "epochs_run": len(getattr(model, "history_", [])),
    }
    print(
        f"test RMSE {result['rmse']:.4f}  MSE {result['mse']:.4f}  MAE {result['mae']:.4f}  "
        f"({seconds:.2f} s training)"
    )
    raw_user = args.user if args.user is not None else int(train.user_ids[0])
    print_top(model, train.user_index(raw_user), raw_user, args.top, train.item_ids, train.titles)
    if args.save:
        path = save_model(args.save, model, train.user_ids, train.item_ids, train.titles)
        say(f"saved model to {path}")
    if args.json:
        print(json.dumps(result))
    return 0


def print_top(model, u: int, raw_user, k: int, item_ids, titles) -> None:
    """Print the top-k unseen items for user index ``u`` with titles and predicted ratings."""
    top = model.recommend(u, k)
    scores = model.clip(model.score_all(u)[top])  # shown on the rating scale
    print(f"top {len(top)} unseen movies for user {raw_user}:")
    for rank, (i, s) in enumerate(zip(top, scores, strict=True), start=1):
        raw = int(item_ids[i])
        print(f"{rank:3d}. {s:5.2f}  {titles.get(raw, f'item {raw}')}")


def cmd_recommend(args) -> int:
    """Top-k for a raw user id from a saved model."""
    model, user_ids, item_ids, titles = load_model(args.model)
    pos = np.flatnonzero(user_ids == args.user)
    if pos.size == 0:
        print(f"user {args.user} is not in {args.model}: ranking by item bias (μ + bᵢ) instead")
    print_top(model, int(pos[0]) if pos.size else UNKNOWN, args.user, args.top, item_ids, titles)
    return 0
