"""How the default configuration was chosen: validation RMSE of candidates, never a test fold.

``python -m benchmarks.tune`` takes fold 1 of the seeded 5-fold split of ML-100k, carves a
10% validation split (seed 1) out of its *training* part, fits each candidate on the rest and
prints its validation RMSE, then the RMSE of equal-weight averages of candidate groups.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from mfrec.configs import BAYES_DEFAULTS, BAYES_WIDE, CONFIGS
from mfrec.data import kfold, load_ml100k, train_test_split
from mfrec.reference import MatrixFactorization, rmse
from mfrec.reference.als import ALS
from mfrec.reference.bayes import BayesianMF
from mfrec.torch_impl.neural import NeuralMF

CANDIDATES = {
    "sgd k50 e60 lr.005 reg.05": lambda: MatrixFactorization(
        n_factors=50, n_epochs=60, lr=0.005, reg=0.05, biased=True
    ),
    "sgd k100 e80 lr.005 reg.1": lambda: MatrixFactorization(
        n_factors=100, n_epochs=80, lr=0.005, reg=0.1, biased=True
    ),
    "sgd k100 e80 lr.005 reg.15": lambda: MatrixFactorization(
        n_factors=100, n_epochs=80, lr=0.005, reg=0.15, biased=True
    ),
    "sgd k100 e100 lr.007 decay.97": lambda: MatrixFactorization(
        n_factors=100, n_epochs=100, lr=0.007, reg=0.1, biased=True, lr_decay=0.97
    ),
    "als k50 reg.1 weighted": lambda: ALS(n_factors=50, n_iters=10, reg=0.1, biased=True),
    "als k50 reg.15 weighted": lambda: ALS(n_factors=50, n_iters=10, reg=0.15, biased=True),
    "bayes k10": lambda: BayesianMF(n_factors=10, n_samples=200, burn_in=20),
    "bayes k10 ard": lambda: BayesianMF(n_factors=10, n_samples=200, burn_in=20, ard=True),
    "bayes k10 ard thin4": lambda: BayesianMF(**BAYES_DEFAULTS),
    "bayes k20 ard thin4": lambda: BayesianMF(**BAYES_WIDE),
    "neural k32 reg.05 e10": lambda: NeuralMF(n_factors=32, n_epochs=10, lr=2e-3, reg=0.05),
    "neural (configs)": lambda: CONFIGS["neural"][1](0),
}


def main(argv: list[str] | None = None) -> int:
    """Fit every candidate on fold 1's training part minus validation; print validation RMSE."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.tune", description=__doc__)
    p.add_argument("--data-dir", help="folder with ml-100k (else $MFREC_DATA, cache, download)")
    p.add_argument("--max-group", type=int, default=3, help="largest averaged group to report")
    args = p.parse_args(argv)
    full = load_ml100k(args.data_dir)
    train = full.subset(kfold(len(full), 5, 0)[0][0])
    fit_idx, val_idx = train_test_split(len(train), 0.1, 1)
    fit, val = train.subset(fit_idx), train.subset(val_idx)
    print(f"fit on {len(fit):,}, validate on {len(val):,} ratings (test fold untouched)")
    preds = {}
    for name, make in CANDIDATES.items():
        start = time.perf_counter()
        model = make().fit(fit.users, fit.items, fit.ratings, full.n_users, full.n_items)
        preds[name] = model.predict(val.users, val.items)
        seconds = time.perf_counter() - start
        print(f"{rmse(val.ratings, preds[name]):.4f}  {name}  ({seconds:.1f} s)", flush=True)
    groups = [
        (rmse(val.ratings, np.mean([preds[n] for n in group], axis=0)), group)
        for size in range(2, args.max_group + 1)
        for group in itertools.combinations(preds, size)
    ]
    print("best equal-weight averages:")
    for score, group in sorted(groups)[:10]:
        print(f"{score:.4f}  {' + '.join(group)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
