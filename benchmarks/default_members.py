"""The default model against its own members on test: is the blend within noise of the best?

Run: ``python -m benchmarks.default_members --ratings FILE`` (the split of ``mfrec train
--ratings FILE``: same test share and seed; ``--user-features F``, ``--item-features F`` and
``--dates none`` as there: ``mfrec train``'s default uses the ratings' dates). Fits
:class:`mfrec.job.DefaultModel` once, then
prints every member's validation RMSE, blend weight and test RMSE beside the blend's. The
members are scored as the blend holds them (refit on all training ratings below 1M ratings,
else as fitted on the 98% left after validation). Test ratings only score; nothing is chosen
on them.
"""

from __future__ import annotations

import argparse
import json
import time

from mfrec.cli import build_parser, load_split
from mfrec.cli._common import load_features
from mfrec.factory import resolve_plan
from mfrec.job import DefaultModel
from mfrec.reference import rmse
from mfrec.reference.ensemble import member_label


def main(argv: list[str] | None = None) -> dict:
    """Fit the default on the ``mfrec train`` split of ``--ratings``; print and return RMSEs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", required=True, help="ratings file, as for mfrec train")
    p.add_argument("--seed", type=int, default=0, help="of the split and the model")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.add_argument("--user-features", help="as for mfrec train")
    p.add_argument("--item-features", help="as for mfrec train")
    p.add_argument("--dates", choices=["auto", "none"], default="auto", help="as for mfrec train")
    a = p.parse_args(argv)
    given = [(f"--{k}", v) for k, v in (("user-features", a.user_features),
                                         ("item-features", a.item_features)) if v]  # fmt: skip
    args = build_parser().parse_args(["train", "--ratings", a.ratings, "--seed", str(a.seed),
                                      *(x for pair in given for x in pair)])  # fmt: skip
    resolve_plan(args)  # --model auto: the default
    train, test, _ = load_split(args)
    users, items = load_features(args, train)
    start = time.perf_counter()
    model = DefaultModel(seed=a.seed, user_features=users, item_features=items,
                         dates=a.dates == "auto")  # fmt: skip
    model.fit(train.users, train.items, train.ratings, train.n_users, train.n_items,
              timestamps=train.timestamps)  # fmt: skip
    seconds = time.perf_counter() - start
    rows = {}
    for m, w in zip(model.members, model.weights, strict=True):
        label = member_label(m)
        rows[label] = {
            "weight": float(w),
            "val_rmse": model.val_rmse_[label],
            "test_rmse": rmse(test.ratings, m.predict(test.users, test.items)),
        }
    blend = rmse(test.ratings, model.predict(test.users, test.items, test.timestamps))
    rows["blend"] = {"weight": 1.0, "val_rmse": model.val_rmse_["blend"], "test_rmse": blend}
    print(f"{len(train):,} training, {len(test):,} test ratings; fit {seconds:.0f} s; "
          f"plan {model.plan_}")  # fmt: skip
    print(f"{'member':40s} {'weight':>7s} {'val RMSE':>9s} {'test RMSE':>9s}")
    for label, r in rows.items():
        print(f"{label:40s} {r['weight']:7.3f} {r['val_rmse']:9.4f} {r['test_rmse']:9.4f}")
    dropped = {k: v for k, v in model.val_rmse_.items() if k not in rows}
    if dropped:
        print("dropped on validation: " + ", ".join(f"{k} {v:.4f}" for k, v in dropped.items()))
    budget = getattr(model, "budget_", None)
    keys = ("member", "steps", "cpu_s", "val_blend", "end")
    log = [] if budget is None else [dict(zip(keys, row, strict=True)) for row in budget.log_]
    for row in log:
        print(f"budget: {row['member']} {row['steps']} steps, {row['cpu_s']:.1f} CPU s, "
              f"blend so far {row['val_blend']:.4f} ({row['end']})")  # fmt: skip
    result = {"members": rows, "dropped_val_rmse": dropped, "fit_s": seconds, "plan": model.plan_,
              "budget": log}  # fmt: skip
    if a.json:
        print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
