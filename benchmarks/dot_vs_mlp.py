"""Dot product against the book's networks, tuned with one budget: docs/accuracy.md's second table.

``python -m benchmarks.dot_vs_mlp`` (part of ``make accuracy``) compares, on ML-100k's canonical
u1..u5 splits and a seeded random 5-fold split (seed 0), the dot-product models (biased SGD MF,
SVD++ with implicit feedback, SVD++ with u.user/u.item features, the tuned-earlier default
blend) with the chapter-3 networks (two towers, concatenation MLP, Embedding-MLP over the
features) and NeuralMF on ratings (RMSE, MAE), and the binary forms at threshold 4 (AUC, log
loss): LogisticMF, the book's minibatch AdamW model with max_norm 1, and the three networks.

Tuning, the same for every model: ``--budget`` (4) configurations drawn at random (seeded)
from the model's search space (:data:`SPACES`), each fitted on u1.base minus a seeded 10%
validation split with early stopping on that split (patience 2, at most the family's epoch cap);
the configuration with the best validation RMSE (ratings) or log loss (binary) wins, with its
best epoch count. That one configuration is then fitted, for exactly that many epochs, on the
whole training part of each of the 10 splits and scored on its test part. No test part is ever
used for a choice. Writes ``<name>.md`` and ``<name>.json`` (after every model) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.accuracy import cpu_name, write_atomic
from mfrec.configs import build_model
from mfrec.data import kfold, load_ml100k, train_test_split
from mfrec.data.features import release_features
from mfrec.data.splits import canonical_split
from mfrec.evaluate import query_indices
from mfrec.reference import MatrixFactorization, mae, rmse
from mfrec.reference.classification import binary_metrics
from mfrec.reference.logistic import LogisticMF
from mfrec.reference.svdpp import SVDpp

THRESHOLD = 4.0
PATIENCE = 2
SGD_EPOCHS = 60
"""Epoch cap of the per-sample SGD models (one step per rating)."""
TORCH_EPOCHS = 20
"""Epoch cap of the minibatch AdamW models (batches of 1024)."""

DOT_SPACE = {"n_factors": [32, 64, 128], "lr": ("log", 0.002, 0.02), "reg": ("log", 0.005, 0.2)}
"""Per-sample SGD on a dot product (biased MF, SVD++, logistic MF uses LOGISTIC_SPACE)."""
LOGISTIC_SPACE = {"n_factors": [32, 64, 128], "lr": ("log", 0.005, 0.1),
                  "reg": ("log", 0.005, 0.2)}  # fmt: skip
NET_SPACE = {"n_factors": [16, 32, 64], "hidden": [(64, 32), (128, 64)],
             "lr": ("log", 3e-4, 1e-2), "reg": ("log", 1e-3, 0.5)}  # fmt: skip
"""The networks and NeuralMF: AdamW (Adam for NeuralMF) on batches of 1024."""
BOOK_SPACE = {"n_factors": [16, 32, 64], "lr": ("log", 3e-4, 1e-2),
              "weight_decay": ("log", 1e-3, 0.1)}  # fmt: skip
"""The book's σ(Pᵤ·Qᵢ) by AdamW with max_norm 1 (its regulariser is AdamW's decay)."""


def draw(space: dict, rng: np.random.Generator) -> dict:
    """One configuration: a uniform choice from each list, log-uniform in each ("log", a, b)."""
    out = {}
    for key, dom in space.items():
        if isinstance(dom, tuple) and dom[0] == "log":
            out[key] = float(np.exp(rng.uniform(np.log(dom[1]), np.log(dom[2]))))
        else:
            out[key] = dom[int(rng.integers(len(dom)))]
    return out


class FeaturedSVDpp(SVDpp):
    """SVD++ whose ``fit`` always passes the user and item features it was built with."""

    def __init__(self, *, user_features, item_features, **kw) -> None:
        super().__init__(**kw)
        self.features = (user_features, item_features)

    def fit(self, users, items, ratings, n_users=None, n_items=None, **kw) -> FeaturedSVDpp:
        """:meth:`SVDpp.fit` with the bound features."""
        uf, itf = self.features
        super().fit(users, items, ratings, n_users, n_items, user_features=uf,
                    item_features=itf, **kw)  # fmt: skip
        return self


def model_specs(features) -> dict[str, tuple[str, str, dict | None, Callable]]:
    """name → (task, description, search space or None (not tuned here), build(cfg, epochs,
    seed)). ``features``: (user, item) :class:`Features` of ml-100k."""
    from mfrec.torch_impl.logistic import TorchLogisticMF
    from mfrec.torch_impl.networks import ConcatMLP, EmbeddingMLP, TwoTowerMF
    from mfrec.torch_impl.neural import NeuralMF

    uf, itf = features
    net = {"batch_size": 1024}

    def sgd(cls, **fixed):
        return lambda c, e, s: cls(n_epochs=e, seed=s, **fixed, **c)

    def torch_net(cls, task, **fixed):
        return lambda c, e, s: cls(n_epochs=e, seed=s, task=task, **net, **fixed, **c)

    specs = {
        "biased-mf": ("rating", "biased SGD MF r̂ = μ + bᵤ + bᵢ + Pᵤ·Qᵢ", DOT_SPACE,
                      sgd(MatrixFactorization, biased=True)),
        "svd++": ("rating", "SVD++: ids + implicit N(u)", DOT_SPACE, sgd(SVDpp)),
        "svd++ features": ("rating", "SVD++: ids + implicit N(u) + u.user/u.item features",
                           DOT_SPACE, sgd(FeaturedSVDpp, user_features=uf, item_features=itf)),
        "biased (configs)": ("rating", "mfrec's 'biased' configuration (k=100, 80 epochs, lr "
                             "0.005, reg 0.1; tuned earlier on validation, not here)", None,
                             lambda c, e, s: build_model("biased", s)),
        "default": ("rating", "mfrec's default blend (tuned earlier on validation, not here)",
                    None, lambda c, e, s: build_model("default", s)),
        "two-towers": ("rating", "two towers (Linear+Tanh), dot product + biases", NET_SPACE,
                       torch_net(TwoTowerMF, "rating")),
        "concat": ("rating", "NCF concatenation MLP [Pᵤ, Qᵢ] + biases", NET_SPACE,
                   torch_net(ConcatMLP, "rating")),
        "embedding-mlp": ("rating", "Embedding-MLP over ids + u.user/u.item features + biases",
                          NET_SPACE, torch_net(EmbeddingMLP, "rating", user_features=uf,
                                               item_features=itf)),
        "neural": ("rating", "NeuralMF: MLP on [Pᵤ, Qᵢ, Pᵤ·Qᵢ] + biases", NET_SPACE,
                   lambda c, e, s: NeuralMF(n_epochs=e, seed=s, **net, **c)),
        "logistic-mf": ("binary", "biased logistic MF σ(μ + bᵤ + bᵢ + Pᵤ·Qᵢ), per-sample SGD",
                        LOGISTIC_SPACE, sgd(LogisticMF, biased=True)),
        "book": ("binary", "the book's σ(Pᵤ·Qᵢ): AdamW, batch 1024, max_norm 1", BOOK_SPACE,
                 lambda c, e, s: TorchLogisticMF(n_epochs=e, seed=s, biased=False,
                                                 mode="minibatch", max_norm=1.0, **net, **c)),
        "two-towers (binary)": ("binary", "two towers, BCE", NET_SPACE,
                                torch_net(TwoTowerMF, "binary")),
        "concat (binary)": ("binary", "concatenation MLP, BCE", NET_SPACE,
                            torch_net(ConcatMLP, "binary")),
        "embedding-mlp (binary)": ("binary", "Embedding-MLP with features, BCE", NET_SPACE,
                                   torch_net(EmbeddingMLP, "binary", user_features=uf,
                                             item_features=itf)),
    }  # fmt: skip
    return specs


def epoch_cap(space: dict | None) -> int:
    """SGD_EPOCHS for the per-sample SGD spaces, TORCH_EPOCHS for the minibatch ones."""
    return SGD_EPOCHS if space in (DOT_SPACE, LOGISTIC_SPACE) else TORCH_EPOCHS


def targets(task: str, ratings: np.ndarray) -> np.ndarray:
    """Ratings for the rating task, labels 1[r >= 4] for the binary one."""
    return ratings if task == "rating" else (ratings >= THRESHOLD).astype(np.float64)


def score(task: str, truth: np.ndarray, pred: np.ndarray) -> dict:
    """RMSE and MAE, or AUC and log loss (labels of ``truth``)."""
    if task == "rating":
        return {"rmse": rmse(truth, pred), "mae": mae(truth, pred)}
    m = binary_metrics(targets(task, truth), pred)
    return {"auc": m["auc"], "log_loss": m["log_loss"]}


def tune(spec, data, train_idx, budget: int, cap: int, seed: int) -> dict:
    """Fit ``budget`` drawn configurations on train minus a 10% validation split (seed 1),
    early-stopped on it; the best one (validation RMSE or log loss) with its epoch count."""
    task, _, space, build = spec
    if space is None:
        return {"config": None, "epochs": None, "trials": []}
    train = data.subset(train_idx)
    fit_idx, val_idx = train_test_split(len(train), 0.1, 1)
    fit, val = train.subset(fit_idx), train.subset(val_idx)
    y_fit, y_val = targets(task, fit.ratings), targets(task, val.ratings)
    u_val, i_val = query_indices(data, fit, val)
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(budget):
        cfg = draw(space, rng)
        model = build(cfg, cap, seed)
        start = time.perf_counter()
        model.fit(fit.users, fit.items, y_fit, data.n_users, data.n_items,
                  eval_set=(u_val, i_val, y_val), patience=PATIENCE)  # fmt: skip
        sec = time.perf_counter() - start
        metrics = score(task, val.ratings, model.predict(u_val, i_val))
        trials.append({"config": cfg, "epochs": int(model.best_epoch_) + 1, "fit_s": sec,
                       **metrics})  # fmt: skip
    key = "rmse" if task == "rating" else "log_loss"
    best = min(trials, key=lambda t: t[key])
    return {"config": best["config"], "epochs": best["epochs"], "trials": trials}


def splits(data, quick: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, train, test): canonical u1..u5, then random 5-fold seed 0 (quick: u1, fold 1)."""
    canon = [(f"u{k}", *canonical_split(data, f"u{k}")) for k in range(1, 6)]
    rand = [(f"fold{f + 1}", tr, te) for f, (tr, te) in enumerate(kfold(len(data), 5, 0))]
    return canon[:1] + rand[:1] if quick else canon + rand


def evaluate(spec, chosen: dict, data, parts, seed: int) -> list[dict]:
    """Fit the chosen configuration on each split's training part; score its test part."""
    task, _, _, build = spec
    out = []
    for name, tr, te in parts:
        train, test = data.subset(tr), data.subset(te)
        model = build(chosen["config"], chosen["epochs"], seed)
        start = time.perf_counter()
        model.fit(train.users, train.items, targets(task, train.ratings), data.n_users,
                  data.n_items)  # fmt: skip
        sec = time.perf_counter() - start
        pred = model.predict(*query_indices(data, train, test))
        out.append({"split": name, **score(task, test.ratings, pred), "fit_s": sec})
    return out


def summarise(per_split: list[dict], keys: tuple[str, ...]) -> dict:
    """Mean (and std) over the canonical and the random splits separately, each key."""
    out = {}
    for family, prefix in (("canonical", "u"), ("random", "fold")):
        rows = [r for r in per_split if r["split"].startswith(prefix)]
        if rows:
            out[family] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
            out[family] |= {f"{k}_std": float(np.std([r[k] for r in rows])) for k in keys}
    return out


def describe_config(res: dict) -> str:
    """The chosen configuration in one cell."""
    if res["config"] is None:
        return "fixed (not tuned here)"
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in
             res["config"].items()]  # fmt: skip
    return ", ".join(parts) + f", {res['epochs']} epochs"


def tables(results: list[dict]) -> str:
    """Two markdown tables (ratings, binary): canonical and random means per model."""
    out = []
    for task, (a, b) in (("rating", ("rmse", "mae")), ("binary", ("auc", "log_loss"))):
        rows = [r for r in results if r["task"] == task]
        if not rows:
            continue
        A, B = a.upper(), "MAE" if b == "mae" else "log loss"
        out += [
            f"| model ({task}) | u1..u5 {A} | {B} | 5-fold {A} | {B} | fit s (median) "
            "| val " + ("RMSE" if task == "rating" else "log loss") + " | chosen configuration |",
            "|---|---|---|---|---|---|---|---|",
        ]
        vkey = "rmse" if task == "rating" else "log_loss"
        for r in rows:
            s = r["summary"]
            cells = []
            for fam in ("canonical", "random"):
                m = s.get(fam)
                cells += ["–", "–"] if m is None else [
                    f"{m[a]:.4f} ± {m[a + '_std']:.4f}", f"{m[b]:.4f}"]  # fmt: skip
            fit_s = float(np.median([f["fit_s"] for f in r["splits"]]))
            trials = r["tuning"]["trials"]
            val = f"{min(t[vkey] for t in trials):.4f}" if trials else "–"
            out.append(f"| {r['model']} | {' | '.join(cells)} | {fit_s:.1f} | {val} | "
                       f"{describe_config(r['tuning'])} |")  # fmt: skip
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Tune each model once on u1.base's validation split, evaluate on every split, write."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.dot_vs_mlp", description=__doc__)
    p.add_argument("--budget", type=int, default=4, help="configurations tried per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", help="comma-separated names (default: all; see model_specs)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: splits u1 and fold1, epochs capped at 2")  # fmt: skip
    p.add_argument("--data-dir", help="folder with ml-100k (else $MFREC_DATA, cache, download)")
    p.add_argument("--task", choices=("rating", "binary"), help="only this task's models")
    p.add_argument("--skip", default="", help="comma-separated names to leave out")
    p.add_argument("--max-epochs", type=int, help="lower every epoch cap to this")
    p.add_argument("--out", default="benchmarks/out", help="folder for the .md and .json")
    p.add_argument("--name", default="dot_vs_mlp", help="basename of the written files")
    p.add_argument("--render", nargs="+", metavar="JSON",
                   help="fit nothing: print the tables of these results files")  # fmt: skip
    args = p.parse_args(argv)
    if args.render:
        print(tables([r for f in args.render for r in json.loads(Path(f).read_text())]))
        return 0
    import torch

    torch.set_num_threads(1)  # every model on one thread, as the Numba kernels are
    data = load_ml100k(args.data_dir)
    specs = model_specs(release_features("ml-100k", data.source, data))
    names = args.models.split(",") if args.models else list(specs)
    names = [n for n in names if n not in args.skip.split(",")]
    names = [n for n in names if args.task is None or specs.get(n, (args.task,))[0] == args.task]
    for name in names:
        if name not in specs:
            p.error(f"unknown model {name!r}; choose from {', '.join(specs)}")
    parts = splits(data, args.quick)
    tune_train = parts[0][1]  # u1.base
    results = []
    for name in names:
        spec = specs[name]
        cap = 2 if args.quick else min(epoch_cap(spec[2]), args.max_epochs or 10**9)
        start = time.perf_counter()
        chosen = tune(spec, data, tune_train, args.budget, cap, args.seed)
        per_split = evaluate(spec, chosen, data, parts, args.seed)
        keys = ("rmse", "mae") if spec[0] == "rating" else ("auc", "log_loss")
        results.append(
            {
                "model": name,
                "task": spec[0],
                "desc": spec[1],
                "tuning": chosen,
                "splits": per_split,
                "summary": summarise(per_split, (*keys, "fit_s")),
            }
        )
        print(f"{name}: {results[-1]['summary']} ({time.perf_counter() - start:.0f} s)",
              flush=True)  # fmt: skip
        write_atomic(Path(args.out) / f"{args.name}.json", json.dumps(results, indent=1))
    machine = f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}"
    head = (
        f"ML-100k, canonical u1..u5 and random 5-fold (seed 0); tuning budget {args.budget} "
        f"configurations per model on u1.base's 10% validation split; machine: {machine}; "
        f"`python -m benchmarks.dot_vs_mlp{' --quick' if args.quick else ''}`"
    )
    text = f"{head}\n\n{tables(results)}"
    print(text)
    out = Path(args.out)
    write_atomic(out / f"{args.name}.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
