"""The default model against its own members on test: is the blend within noise of the best?

Run: ``python -m benchmarks.default_members --ratings FILE`` (the split of ``mfrec train
--ratings FILE``: same test share and seed). Fits :class:`mfrec.job.DefaultModel` once, then
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
from mfrec.job import DefaultModel
from mfrec.reference import rmse
from mfrec.reference.ensemble import member_label


def main(argv: list[str] | None = None) -> dict:
    """Fit the default on the ``mfrec train`` split of ``--ratings``; print and return RMSEs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", required=True, help="ratings file, as for mfrec train")
    p.add_argument("--seed", type=int, default=0, help="of the split and the model")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    a = p.parse_args(argv)
    args = build_parser().parse_args(["train", "--ratings", a.ratings, "--seed", str(a.seed)])
    train, test, _ = load_split(args)
    start = time.perf_counter()
    model = DefaultModel(seed=a.seed).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items
    )
    seconds = time.perf_counter() - start
    rows = {}
    for m, w in zip(model.members, model.weights, strict=True):
        label = member_label(m)
        rows[label] = {
            "weight": float(w),
            "val_rmse": model.val_rmse_[label],
            "test_rmse": rmse(test.ratings, m.predict(test.users, test.items)),
        }
    blend = rmse(test.ratings, model.predict(test.users, test.items))
    rows["blend"] = {"weight": 1.0, "val_rmse": model.val_rmse_["blend"], "test_rmse": blend}
    print(f"{len(train):,} training, {len(test):,} test ratings; fit {seconds:.0f} s; "
          f"plan {model.plan_}")  # fmt: skip
    print(f"{'member':40s} {'weight':>7s} {'val RMSE':>9s} {'test RMSE':>9s}")
    for label, r in rows.items():
        print(f"{label:40s} {r['weight']:7.3f} {r['val_rmse']:9.4f} {r['test_rmse']:9.4f}")
    dropped = {k: v for k, v in model.val_rmse_.items() if k not in rows}
    if dropped:
        print("dropped on validation: " + ", ".join(f"{k} {v:.4f}" for k, v in dropped.items()))
    result = {"members": rows, "dropped_val_rmse": dropped, "fit_s": seconds, "plan": model.plan_}
    if a.json:
        print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
