"""The accuracy table: 5-fold CV of every mfrec model on ML-100k, beside its peers.

Run ``python -m benchmarks.accuracy`` (or ``make accuracy``). Every model sees the same seeded
folds; scikit-surprise's SVD and cmfrec's ALS, each at its defaults, are measured in the same
run when installed (``pip install -e '.[peers]'``); without surprise its published 0.934 RMSE
is shown, without cmfrec no row. Writes the markdown table and the raw results under
``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from mfrec._internal import atomic_write
from mfrec.configs import CONFIGS
from mfrec.data import load_ml100k
from mfrec.evaluate import cross_validate
from mfrec.reference.mf import FactorModel

SURPRISE_PUBLISHED_RMSE = 0.934
"""scikit-surprise's own table: SVD at its defaults, 5-fold RMSE on ML-100k."""


class SurpriseSVD(FactorModel):
    """scikit-surprise's ``SVD`` at its defaults, its learned arrays copied into a factor model.

    Surprise predicts μ + bᵤ + bᵢ + qᵢ·pᵤ, falls back to μ plus the known biases and clips to
    the rating scale, which is exactly what :class:`FactorModel` does with the same arrays.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.biased = True

    def fit(self, users, items, ratings, n_users: int, n_items: int) -> SurpriseSVD:
        """Train surprise's SVD on index triples, then map its inner ids back to our indices."""
        import surprise

        reader = surprise.Reader(rating_scale=(float(np.min(ratings)), float(np.max(ratings))))
        rows = zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True)
        trainset = surprise.Dataset(reader).construct_trainset(
            [(u, i, r, None) for u, i, r in rows]
        )
        algo = surprise.SVD(random_state=self.seed)
        algo.fit(trainset)
        k = algo.pu.shape[1]
        self.P, self.Q = np.zeros((n_users, k)), np.zeros((n_items, k))
        self.bu, self.bi = np.zeros(n_users), np.zeros(n_items)
        u_raw = [trainset.to_raw_uid(x) for x in range(trainset.n_users)]
        i_raw = [trainset.to_raw_iid(x) for x in range(trainset.n_items)]
        self.P[u_raw], self.bu[u_raw] = algo.pu, algo.bu
        self.Q[i_raw], self.bi[i_raw] = algo.qi, algo.bi
        self.mu = float(trainset.global_mean)
        self._remember_seen(np.asarray(users), np.asarray(items))
        self._remember_scale(np.asarray(ratings))
        return self


class CmfrecALS(FactorModel):
    """cmfrec's explicit-feedback ``CMF`` (ALS with conjugate gradient) at its defaults.

    Defaults: k=40, λ=10, 10 ALS iterations, user and item biases, centred; ``nthreads``
    threads (default: every CPU). Fitted on the index triples as a sparse matrix (no id
    remapping); its arrays are copied into a factor model, which predicts what cmfrec predicts
    for known pairs and then clips to the training scale as every mfrec model does.
    """

    def __init__(self, seed: int = 0, nthreads: int | None = None) -> None:
        self.seed = seed
        self.nthreads = nthreads or os.cpu_count() or 1
        self.biased = True

    def fit(self, users, items, ratings, n_users: int, n_items: int) -> CmfrecALS:
        """Train cmfrec's ``CMF(method="als")`` on an ``n_users × n_items`` COO matrix."""
        import cmfrec
        from scipy.sparse import coo_matrix

        users, items = np.asarray(users), np.asarray(items)
        X = coo_matrix((np.asarray(ratings, np.float64), (users, items)), (n_users, n_items))
        algo = cmfrec.CMF(method="als", random_state=self.seed, nthreads=self.nthreads)
        algo.fit(X)
        self.P, self.Q = algo.A_.astype(np.float64), algo.B_.astype(np.float64)
        self.bu = algo.user_bias_.astype(np.float64)
        self.bi = algo.item_bias_.astype(np.float64)
        self.mu = float(algo.glob_mean_)
        self._remember_seen(users, items)
        self._remember_scale(np.asarray(ratings))
        return self


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available(module: str) -> bool:
    """True when ``module`` (a peer: ``surprise``, ``cmfrec``) can be imported."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def table(rows: list[dict], k: int, folds: int) -> str:
    """The markdown results table."""
    lines = [
        f"| model | {folds}-fold RMSE (mean ± std) | MAE | NDCG@{k} | fit s (median fold) "
        "| configuration |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("published"):
            lines.append(
                f"| {r['model']} | {r['rmse']:.3f} (published) | – | – | – | {r['desc']} |"
            )
            continue
        m, s = r["mean"], r["std"]
        fit_s = float(np.median([f["fit_s"] for f in r["folds"]]))
        lines.append(
            f"| {r['model']} | {m['rmse']:.4f} ± {s['rmse']:.4f} | {m['mae']:.4f} | "
            f"{m[f'ndcg@{k}']:.4f} | {fit_s:.1f} | {r['desc']} |"
        )
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and a rename."""
    with atomic_write(path, parents=True) as tmp:
        tmp.write_text(text)


def write_results(out: Path, name: str, text: str, results: list) -> None:
    """Print ``text``; write it to ``out/name.md`` and the raw ``results`` to ``out/name.json``."""
    print(text)
    write_atomic(out / f"{name}.md", text)
    write_atomic(out / f"{name}.json", json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> int:
    """Run the CV of each model (and surprise's SVD), print and write the table."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default=",".join(CONFIGS), help="comma-separated config names")
    p.add_argument("--data-dir", help="folder with ml-100k (else $MFREC_DATA, cache, download)")
    p.add_argument("--no-peers", action="store_true", help="skip surprise and cmfrec if present")
    p.add_argument("--out", default="benchmarks/out", help="folder for accuracy.md and .json")
    args = p.parse_args(argv)
    data = load_ml100k(args.data_dir)
    k = 10
    rows = []
    for name in args.models.split(","):
        if name not in CONFIGS:
            p.error(f"unknown model {name!r}; choose from {', '.join(CONFIGS)}")
        res = cross_validate(data, name, args.folds, args.seed, k)
        rows.append({**res, "desc": CONFIGS[name][0]})
        print(f"{name}: RMSE {res['mean']['rmse']:.4f}", flush=True)
    if not args.no_peers and available("surprise"):
        res = cross_validate(data, "surprise-svd", args.folds, args.seed, k, factory=SurpriseSVD)
        rows.append({**res, "desc": "scikit-surprise SVD at its defaults, measured in this run"})
        print(f"surprise-svd: RMSE {res['mean']['rmse']:.4f}", flush=True)
    else:
        desc = "scikit-surprise SVD, its published table (not installed here)"
        rows.append({"model": "surprise-svd", "rmse": SURPRISE_PUBLISHED_RMSE, "published": True,
                     "desc": desc})  # fmt: skip
    if not args.no_peers and available("cmfrec"):
        res = cross_validate(data, "cmfrec-als", args.folds, args.seed, k, factory=CmfrecALS)
        desc = f"cmfrec CMF (ALS-CG) at its defaults, {os.cpu_count()} threads, measured here"
        rows.append({**res, "desc": desc})
        print(f"cmfrec-als: RMSE {res['mean']['rmse']:.4f}", flush=True)
    machine = f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}"
    head = (
        f"ML-100k ({len(data):,} ratings), {args.folds}-fold CV, seed {args.seed}, "
        f"relevant = rating >= 4; machine: {machine}; `python -m benchmarks.accuracy`"
    )
    write_results(Path(args.out), "accuracy", f"{head}\n\n{table(rows, k, args.folds)}\n", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
