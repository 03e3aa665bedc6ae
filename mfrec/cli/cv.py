"""``mfrec cv``: k-fold cross-validation of a named configuration."""

from __future__ import annotations

from mfrec._internal import check_positive
from mfrec.cli._common import (
    HelpFormatter,
    add_data_options,
    add_output_flags,
    load_full,
)
from mfrec.configs import CONFIGS
from mfrec.evaluate import cross_validate
from mfrec.progress import progress_enabled


def add_parser(sub) -> None:
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
