"""``mfrec cv``: k-fold cross-validation of a named configuration."""

from __future__ import annotations

from functools import partial

from mfrec._internal import check_positive
from mfrec.cli._common import (
    HelpFormatter,
    add_data_options,
    add_output_flags,
    add_task_options,
    load_features,
    load_full,
    rating_scale,
)
from mfrec.configs import CONFIGS
from mfrec.data import canonical_split
from mfrec.evaluate import cross_validate, evaluate_fold
from mfrec.factory import (
    MODEL_CHOICES,
    cold_masks,
    fit_options,
    make_model,
    resolve_plan,
    uses_dates,
)
from mfrec.progress import progress_enabled


def add_parser(sub) -> None:
    """Register the ``cv`` subcommand: the data flags of ``train``, folds, model, metrics."""
    # argparse %-formats help text, so a literal % (as in "a 10% split") must be doubled.
    models = "; ".join(f"{name}: {desc}" for name, (desc, _) in CONFIGS.items()).replace("%", "%%")
    c = sub.add_parser(
        "cv", help="k-fold cross-validation of a model", formatter_class=HelpFormatter
    )
    add_data_options(c)
    add_task_options(c)
    e = c.add_argument_group("cross-validation")
    e.add_argument("--folds", type=int, default=5, help="number of folds")
    e.add_argument(
        "--splits",
        choices=["random", "canonical"],
        default="random",
        help="random: seeded --folds folds; canonical: ml-100k's u1..u5 in turn",
    )
    e.add_argument("--seed", type=int, default=0, help="seeds the folds and the models")
    e.add_argument("--model", choices=list(MODEL_CHOICES), help=f"default: 'default' ('biased' "
                   f"logistic MF with --binary). {models}")  # fmt: skip
    e.add_argument("-k", "--top", type=int, default=10, help="K of precision/recall/NDCG@K")
    e.add_argument("--threshold", type=float, default=4.0, help="relevant: test rating >= this")
    add_output_flags(c)


def canonical_folds(data) -> list:
    """ml-100k's u1..u5 as (train, test) row indices of ``data`` (its u.data)."""
    return [canonical_split(data, f"u{n}") for n in range(1, 6)]


def fold_factory(args, data, say):
    """factory(seed) of the model ``--model`` (and ``--binary``) names, on its first backend,
    with the features it uses read for ``data``'s ids."""
    args.backend = None
    resolve_plan(args)
    args.features_ = load_features(args, data, say)
    return lambda seed: make_model(args, args.backend)


def cmd_cv(args) -> int:
    """Run ``mfrec cv``: print each fold, then the mean ± std of every metric."""
    check_positive("-k/--top", args.top, integer=True)
    if args.folds < 2:
        raise ValueError(f"--folds must be >= 2 (every rating is tested once), got {args.folds}")
    binary = args.binary is not None
    args.model = args.model or ("biased" if binary else "default")
    canonical = args.splits == "canonical"
    if canonical and (args.ratings or args.dataset != "ml-100k"):
        raise ValueError("--splits canonical: only ml-100k ships canonical splits (u1..u5)")
    data = load_full(args, progress=progress_enabled(args.quiet, args.json))
    k = args.top
    say = (lambda *a: None) if args.quiet else print
    folds = canonical_folds(data) if canonical else args.folds
    say(f"{'canonical u1..u5' if canonical else f'{args.folds}-fold'} CV of '{args.model}'"
        f"{f' (liked: rating >= {args.binary:g})' if binary else ''} on {len(data):,} ratings "
        f"({data.source})")  # fmt: skip
    factory = fold_factory(args, data, say)

    def show(f: int, r: dict) -> None:
        unknown = f", {r['n_unknown']} with a user or item unseen in training" * bool(
            r["n_unknown"]
        ) + f", {r.get('n_cold', 0)} of cold rows scored from their features" * bool(
            r.get("n_cold")
        )
        name = f"u{f + 1}" if canonical else f"fold {f + 1}"
        scores = (f"AUC {r['auc']:.4f}  log loss {r['log_loss']:.4f}  accuracy "
                  f"{r['accuracy']:.4f}" if binary else
                  f"RMSE {r['rmse']:.4f}  MAE {r['mae']:.4f}")  # fmt: skip
        say(
            f"{name}: {scores}  NDCG@{k} {r[f'ndcg@{k}']:.4f}  ({r['fit_s']:.1f} s fit; "
            f"{r['n_test']:,} test ratings{unknown})"
        )

    if binary:
        from mfrec.binary import BINARY_METRICS, evaluate_binary_fold

        rating_scale(args, data)  # the threshold is checked on every fold's training part
        result = cross_validate(data, args.model, folds, args.seed, k, args.binary, show,
                                factory, evaluate_binary_fold, BINARY_METRICS)  # fmt: skip
        result["binary"] = {"threshold": args.binary}
    else:
        cold = cold_masks(args.model, args.features_)
        evaluate = partial(evaluate_fold, fit_options=fit_options(args), dates=uses_dates(args),
                           cold=cold)  # fmt: skip
        result = cross_validate(data, args.model, folds, args.seed, k, args.threshold, show,
                                factory, evaluate)  # fmt: skip
    result["splits"] = args.splits
    mean, std = result["mean"], result["std"]
    for key in mean:
        print(f"mean {key:>13s} {mean[key]:.4f} ± {std[key]:.4f}")
    args.result = result
    return 0
