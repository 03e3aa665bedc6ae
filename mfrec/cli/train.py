"""``mfrec train``: fit a model, score the test part, print a top-k; save and plot."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import numpy as np

from mfrec._internal import check_positive
from mfrec.binary import NETWORKS, score_binary
from mfrec.cli._common import (
    HelpFormatter,
    add_data_options,
    add_output_flags,
    add_task_options,
    check_output_files,
    items_json,
    load_features,
    load_parts,
    print_items,
    print_top,
    rating_scale,
    top_json,
)
from mfrec.configs import CONFIGS
from mfrec.data import (
    CANONICAL_SPLITS,
    Ratings,
    binarize,
    get_release,
)
from mfrec.data.dataset import align
from mfrec.data.features import cold_ratings, cold_rows, with_cold_rows
from mfrec.data.splits import carve_validation, unseen_as_unknown
from mfrec.factory import (
    MODEL_CHOICES,
    cold_sides,
    fit_options,
    fit_steps,
    flag,
    label,
    label_text,
    make_model,
    resolve_plan,
    step_name,
    uses_dates,
)
from mfrec.job import FM_MAX_RATINGS, DefaultModel
from mfrec.modelio import id_index, raw_id, save_model
from mfrec.progress import eta_bar, progress_enabled, stage
from mfrec.reference import mae, mse, rmse
from mfrec.reference.ensemble import Ensemble, member_label
from mfrec.reference.mf import KERNELS


def add_parser(sub) -> None:
    """Register ``mfrec train``: data, model, backend, distributed and output flags."""
    fmt = HelpFormatter
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
    src.add_argument(
        "--split",
        choices=CANONICAL_SPLITS,
        help="one of ml-100k's canonical train/test splits (its u1.base/u1.test, ...)",
    )
    add_task_options(t)
    m = t.add_argument_group(
        "model (a flag the chosen model does not take is refused; unset: the model's own value)"
    )
    models = "; ".join(f"{name}: {desc}" for name, (desc, _) in CONFIGS.items()).replace("%", "%%")
    m.add_argument(
        "--model",
        choices=["auto", *MODEL_CHOICES],
        default="auto",
        help="auto: 'default' on numba, or 'biased' when an SGD flag or --backend torch/both "
        f"is given (with --binary: biased logistic MF). {models}; svdpp: SVD++ (implicit "
        "feedback, and features when present); bfm: Bayesian factorization machine by Gibbs "
        "sampling (ids, features, implicit feedback N(u) and R(i), the ratings' months); "
        "two-towers, concat, embedding-mlp: the book's chapter-3 networks (torch); book: the "
        "book's σ(Pᵤ·Qᵢ) by AdamW (--binary only)",
    )
    m.add_argument("--factors", type=int, help="k, columns of P and Q")
    m.add_argument("--epochs", type=int, help="passes over the data (ALS: iterations)")
    m.add_argument("--samples", type=int, help="Gibbs sweeps kept after burn-in (bayes, bfm)")
    m.add_argument("--burn-in", type=int, help="Gibbs sweeps discarded first (bayes, bfm)")
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
        help="where the model runs (default: numba; torch for neural, the networks and book); "
        "torch versions exist for plain, biased, als, svdpp, neural and the networks; both: "
        "train each from the same seed and compare (saves the numba model)",
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


def check_args(args) -> None:
    """Hyper-parameters in range, with errors that name the command-line flag."""
    for name, integer, zero in [("factors", True, False), ("epochs", True, True),
                                ("samples", True, False), ("burn_in", True, True),
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
        if not args.val_fraction and args.model not in ("neural", *NETWORKS):
            raise ValueError("--patience needs a validation split: add --val-fraction, e.g. 0.1")
    if args.test_size is not None:
        if args.train or args.test:
            raise ValueError("--test-size splits --dataset or --ratings; --train/--test are split")
        if not 0.0 <= args.test_size < 1.0:
            raise ValueError(f"--test-size must be in [0, 1) (0: train on all), got "
                             f"{args.test_size!r}")  # fmt: skip
    check_output_files(args)
    if args.plot:
        from mfrec.plot import check_plot_path

        check_plot_path(args.plot)


def fit_one(args, backend: str, model, train: Ratings, test: Ratings, say, bar_on: bool,
            val: Ratings | None = None, prefix: str = ""):  # fmt: skip
    """Fit one backend; returns (model, seconds, curves).

    ``curves`` maps a series name (the backend, or each ensemble member) to its steps and
    train/test RMSE. A sampler's progress is shown every tenth sweep (its running average of
    the kept samples, from the end of burn-in), every other model's every step.
    """
    if isinstance(model, DefaultModel):
        return fit_default(model, train, say, bar_on, not args.quiet)
    ensemble = isinstance(model, Ensemble)
    curves: dict[str, dict[str, Any]] = {}  # series -> steps, train/test RMSE lists, unit
    track = bool(args.plot) or not args.quiet
    bar = eta_bar(fit_steps(model), bar_on, backend, not args.quiet, unit=step_name(model))

    def report(step: int, m, series: str) -> None:
        total = fit_steps(m)
        bar.update(1)
        name = step_name(m)
        if name == "sweep" and (step + 1) % 10 and step + 1 != total:
            return
        if not getattr(m, "factor_form", True):  # a date block: not scored before the average
            if not bar_on:
                say(f"{prefix}{name} {step + 1:3d}/{total}")
            return
        with np.errstate(over="ignore", invalid="ignore"):
            tr = rmse(train.ratings, m.predict(train.users, train.items))
            te = rmse(test.ratings, m.predict(test.users, test.items)) if len(test) else None
        curve = curves.setdefault(series, {"step": [], "train": [], "test": [], "unit": name})
        curve["step"].append(step + 1)
        curve["train"].append(tr)
        if te is not None:
            curve["test"].append(te)
        postfix = (
            {"train": f"{tr:.4f}"} if te is None else {"train": f"{tr:.4f}", "test": f"{te:.4f}"}
        )
        bar.set_postfix(postfix, refresh=False)
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
    extra: dict[str, Any] = fit_options(args)
    if getattr(model, "takes_timestamps", False) and uses_dates(args):
        extra["timestamps"] = train.timestamps
    if val is not None:
        extra.update(eval_set=val, patience=args.patience)
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
            bar = eta_bar(fit_steps(m), bar_on, name, lines, unit=unit[:-1])
        assert bar is not None  # the first step opened it
        bar.update(1)

    if model.leaves_out_fm(len(train), train.timestamps is not None):
        say(f"rating dates unused: the default's FM member has a date block below "
            f"{FM_MAX_RATINGS:,} training ratings (docs/accuracy.md)")  # fmt: skip
    elif model.dates and train.timestamps is not None:
        say(f"rating dates: one feature per {model.date_unit} (the ratings' timestamps)")
    start = time.perf_counter()
    try:
        model.fit(train.users, train.items, train.ratings, train.n_users, train.n_items,
                  callback=step, timestamps=train.timestamps)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    p = model.plan_
    say(f"validation ({p['val_fraction']:.0%} held out"
        f"{', members refit on all' if p['refit'] else ''}): "
        + ", ".join(f"{k} {v:.4f}" for k, v in model.val_rmse_.items()))  # fmt: skip
    if hasattr(model, "budget_"):
        say(f"time budget {p['budget_s']:.0f} s: " + ", ".join(
            f"{name} {steps} steps {sec:.1f} s ({why})"
            for name, steps, sec, _, why in model.budget_.log_))  # fmt: skip
    say("blend weights: " + ", ".join(f"{member_label(m)} {w:.3f}" for m, w in
                                      zip(model.members, model.weights, strict=True)))  # fmt: skip
    return model, seconds, {}


def fit_and_score(args, backend: str, model, train, test, val, say, bars, prefix: str) -> tuple:
    """Fit on ``backend`` and score every test rating; returns (model, curves, result dict)."""
    model, seconds, curves = fit_one(args, backend, model, train, test, say, bars, val, prefix)
    result = {"model": args.model, **label(model, backend)}
    result.update(n_train=len(train), n_test=len(test), seconds=seconds)
    history = getattr(model, "history_", None)
    if history is not None:
        result["epochs_run"] = len(history)
    if len(test):
        with stage(f"scoring {len(test):,} test ratings", say):
            pred, n_unknown = score(model, test, bars, not args.quiet)
        result.update(rmse=rmse(test.ratings, pred), mse=mse(test.ratings, pred),
                      mae=mae(test.ratings, pred), n_unknown=n_unknown,
                      n_cold=cold_ratings(train, test))  # fmt: skip
    else:
        result.update(rmse=None, mse=None, mae=None, n_unknown=0, n_cold=0)
    return model, curves, result


SCORE_CHUNK = 1 << 20
"""Test ratings scored per progress step."""


def score(model, test: Ratings, bar_on: bool, lines: bool) -> tuple[np.ndarray, int]:
    """(predictions, how many had an unknown user or item) of every test rating, in chunks
    with a progress bar (or lines) when there is more than one; a model with a date part
    (the default, given timestamps) scores each at its date when the test ratings have them."""
    n_chunks = -(-len(test) // SCORE_CHUNK)
    bar = eta_bar(n_chunks, bar_on and n_chunks > 1, "scoring", lines and n_chunks > 1, "chunk")
    pred, n_unknown = np.empty(len(test)), 0
    ts = test.timestamps if getattr(model, "dated", False) else None
    for start in range(0, len(test), SCORE_CHUNK):
        part = slice(start, start + SCORE_CHUNK)
        when = {} if ts is None else {"timestamps": ts[part]}  # each rating at its date
        pred[part] = model._predict_indices(test.users[part], test.items[part], **when)
        n_unknown += model.n_unknown_
        bar.update(1)
    bar.close()
    return pred, n_unknown


def carve(args, train: Ratings, test: Ratings, n_unknown: int) -> tuple:
    """Carve ``--val-fraction`` of ``train`` out as a validation split (seeded by --seed + 1):
    (fit part, validation (users, items, ratings), test, n_val_unknown, n_test_unknown).

    A held-out or test rating whose user or item only the held-out part has becomes
    ``UNKNOWN`` (scored by the fallback) and is counted; a cold row (features, no training
    ratings) stays a row.
    """
    carved = carve_validation(train.users, train.items, train.ratings, args.val_fraction,
                              args.seed + 1)  # fmt: skip
    fit = train.subset(carved.fit_rows)
    cold_users, cold_items = cold_rows(train)  # rows scored from their features: not unseen
    fit_users, fit_items = np.r_[fit.users, cold_users], np.r_[fit.items, cold_items]
    tu, ti, n_test_unknown = unseen_as_unknown(test.users, test.items, fit_users, fit_items)
    test = dataclasses.replace(test, users=tu, items=ti)
    return fit, carved.val, test, carved.n_unknown, n_test_unknown if len(test) else n_unknown


def train_binary(args, train: Ratings, test: Ratings, u: int, raw_user, say) -> int:
    """``--binary T``: fit the liked-or-not form on labels 1[r >= T], print and return its
    pointwise metrics at 0.5 and the ranked lists' precision/recall/NDCG@K."""
    t = args.binary
    y = binarize(train.ratings, t, rating_scale(args, train), part="training")
    model = make_model(args, args.backend)
    assert model is not None  # built: check_only is False
    what = " (biased logistic MF: no --model given)" if getattr(args, "auto_binary", 0) else ""
    info = label_text(label(model, args.backend))
    say(f"model {args.model}{what}, liked = rating >= {t:g}: {info}")
    start = time.perf_counter()
    model.fit(train.users, train.items, y, train.n_users, train.n_items)
    result = {"model": args.model, **label(model, args.backend), "n_train": len(train),
              "n_test": len(test), "seconds": time.perf_counter() - start}  # fmt: skip
    metrics = score_binary(model, test.users, test.items, test.ratings, args.top, t)
    result["binary"] = {"threshold": t, **metrics}
    m = metrics
    k = args.top
    if len(test):
        print(f"{args.backend} ({result['class']}): AUC {m['auc']:.4f}  log loss "
              f"{m['log_loss']:.4f}  at 0.5: precision {m['precision']:.4f}  recall "
              f"{m['recall']:.4f}  accuracy {m['accuracy']:.4f}; precision@{k} "
              f"{m[f'precision@{k}']:.4f}  recall@{k} {m[f'recall@{k}']:.4f}  NDCG@{k} "
              f"{m[f'ndcg@{k}']:.4f}  ({result['seconds']:.2f} s training)")  # fmt: skip
    else:
        print(f"{args.backend} ({result['class']}): no test ratings "
              f"({result['seconds']:.2f} s training)")  # fmt: skip
    top, values = model._recommend_indices(np.array([u], dtype=np.int64), k)
    keep = np.isfinite(values[0])
    print_items(f"top {int(keep.sum())} unseen movies for user {raw_user} (P(liked)):",
                top[0][keep], values[0][keep], train.item_ids, train.titles, "5.3f")  # fmt: skip
    result["top"] = items_json(top[0][keep], values[0][keep], train.item_ids, train.titles,
                               "p_liked")  # fmt: skip
    if args.save:
        path = save_model(args.save, model, train.user_ids, train.item_ids, train.titles)
        say(f"saved model to {path}")
    args.result = result
    return 0


def cmd_train(args) -> int:
    """Train, print per-epoch and final errors and a top-k list; optionally save and plot."""
    check_args(args)
    resolve_plan(args)
    say = (lambda *a: None) if args.quiet else print
    bars = progress_enabled(args.quiet, args.json)
    lines = not args.quiet
    with stage("reading and splitting the ratings", say, bar=bars, lines=lines):
        train, test_part = load_parts(args, progress=bars)
    say(
        f"{len(train):,} training and {len(test_part):,} test ratings, {train.n_users:,} users, "
        f"{train.n_items:,} items ({train.source})"
    )
    if len(test_part) == 0:
        say("--test-size 0: training on every rating; nothing is held out, nothing evaluated")
    if getattr(args, "auto_reason", None):
        say(f"--model auto: biased SGD MF ({args.auto_reason}; the default ensemble runs only "
            "on numba with its own settings)")  # fmt: skip
    sides = cold_sides(args.model) if args.binary is None else ()
    if sides:
        n_users, n_items = train.n_users, train.n_items
        train, *features = with_cold_rows(train, test_part, lambda t: load_features(args, t, say),
                                          sides)  # fmt: skip
        args.features_ = tuple(features)
        if (train.n_users, train.n_items) != (n_users, n_items):
            say(f"cold rows: {train.n_users - n_users:,} users and {train.n_items - n_items:,} "
                "items of the test part have features and no training ratings")  # fmt: skip
    else:
        args.features_ = load_features(args, train, say)
    test, n_unknown = align(train, test_part)
    u = 0 if args.user is None else id_index(train.user_ids, args.user)
    if u is None:
        raise ValueError(f"--user {args.user} is not in the training data")
    raw_user = raw_id(train.user_ids[u])
    if args.binary is not None:
        return train_binary(args, train, test, u, raw_user, say)
    val = None
    if args.val_fraction and args.model not in ("neural", *NETWORKS):  # those carve their own
        train, val, test, n_val_unknown, n_unknown = carve(args, train, test, n_unknown)
        say(f"validation: {len(val[2]):,} training ratings held out, {len(train):,} left to fit"
            f"; {n_val_unknown:,} of them have a user or item not in the fit part")  # fmt: skip
    if n_unknown:
        part = "fit part" if val else "training data"
        say(f"{n_unknown:,} test ratings have a user or item not in the {part}: scored by the "
            "fallback (training mean + the known bias)")  # fmt: skip
    n_cold = cold_ratings(train, test)
    if n_cold:
        say(f"{n_cold:,} test ratings of users or items with no training ratings: scored from "
            "their features")  # fmt: skip
    backends = ["numba", "torch"] if args.backend == "both" else [args.backend]
    fits, results = {}, {}
    for name in backends:
        prefix = f"[{name}] " if len(backends) > 1 else ""
        model = make_model(args, name)  # built once: labelled, then fitted
        say(f"{prefix}model {args.model}: {label_text(label(model, name))}")
        model, curves, result = fit_and_score(args, name, model, train, test, val, say, bars,
                                              prefix)  # fmt: skip
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
        with stage("saving the model", lambda *a: None, bar=bars, lines=lines, tick=say):
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
