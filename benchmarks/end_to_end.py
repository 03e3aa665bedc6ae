"""End to end at MovieLens-25M shape: generate ratings, train as a user would, beside peers.

Run: ``python -m benchmarks.end_to_end`` (``make bench``: 2.5M ratings) or
``python -m benchmarks.end_to_end --ratings 25000000`` (the full ml-25m size). Generates (once,
cached under ``benchmarks/out/synthetic/``) an ml-25m-like ``ratings.csv`` with a known noise
floor (:mod:`benchmarks.synthetic`), then runs ``mfrec train --ratings FILE --json`` with no
model flags in a subprocess, and cmfrec's ALS (when installed) on the same 80/20 split in
another. Each row: wall seconds of the whole process (parse, split, fit, evaluate), the fit's
seconds, the process's peak RSS, and test RMSE beside the floor no model can beat. Writes
``benchmarks/out/end_to_end-<N>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.accuracy import CmfrecALS, available, cpu_name
from benchmarks.synthetic import OUT as SYNTHETIC_OUT
from benchmarks.synthetic import generate, read_truth
from mfrec._internal import atomic_write

OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parents[1]


def parse_json_output(stdout: str) -> dict:
    """The result of ``mfrec train --json``: all of stdout as one JSON document, else its last
    line that parses as a JSON object."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return doc
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no JSON result on stdout (last lines: {stdout[-500:]!r})")


def run_measured(cmd: list[str], timeout: float | None = None) -> dict:
    """Run ``cmd`` (stderr passes through); its wall seconds, peak RSS and parsed JSON stdout.

    The peak RSS is that child's own (``os.wait4``), not the maximum over all children.
    """
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, cwd=ROOT, text=True)
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read()
    row = {
        "command": shlex.join(cmd),
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "exit_code": proc.returncode,
    }
    if proc.returncode != 0:
        timed_out = deadline is not None and time.perf_counter() > deadline
        row["error"] = "timed out" if timed_out else f"exit code {proc.returncode}"
        return row
    row["result"] = parse_json_output(stdout)
    return row


def fit_peer(path: str, seed: int, test_size: float) -> dict:
    """cmfrec on the split ``mfrec train --ratings`` makes: JSON with rmse, seconds, counts."""
    import numpy as np

    from mfrec.data import Ratings, align, read_ratings, train_test_split

    full = read_ratings(path)
    tr, te = train_test_split(len(full), test_size, seed)
    part = full.subset(tr)  # re-indexed on the training part, as the CLI does
    train = Ratings.from_raw(full.user_ids[part.users], full.item_ids[part.items], part.ratings)
    test, _ = align(train, full.subset(te))
    start = time.perf_counter()
    model = CmfrecALS(seed=seed).fit(
        train.users, train.items, train.ratings, train.n_users, train.n_items
    )
    seconds = time.perf_counter() - start
    err = model.predict(test.users, test.items) - test.ratings
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "n_train": len(train),
        "n_test": len(test),
        "seconds": seconds,
        "threads": model.nthreads,
    }


def commit() -> str:
    """The checkout's commit (``+dirty`` when it has changes), or ``unknown``."""
    try:
        git = dict(cwd=ROOT, capture_output=True, text=True, check=True)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **git).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], **git).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def short(command: str, path: str) -> str:
    """``command`` as the table shows it: ``python`` and ``FILE`` for the long paths."""
    return command.replace(shlex.quote(sys.executable), "python").replace(shlex.quote(path), "FILE")


def render(meta: dict, rows: list[dict]) -> str:
    """The markdown report: one row per run, test RMSE beside the floor."""
    floor = meta["floor_rmse"]
    lines = [
        f"# End to end: {meta['n_ratings']:,} ml-25m-like ratings",
        "",
        f"{meta['date']}, commit {meta['commit']}, {meta['machine']}, load average "
        f"{meta['load_before']:.1f} before / {meta['load_after']:.1f} after. "
        f"`{meta['command']}`",
        "",
        f"Data: `{meta['file']}` ({meta['n_users']:,} users × {meta['n_items']:,} items, "
        f"truth rank {meta['factors']}, noise σ {meta['noise']}); generated in "
        f"{meta['generate_s']}. Noise floor (RMSE of E[rating | truth], the best any model "
        f"can expect): **{floor:.4f}**. 80/20 split, seed {meta['seed']}.",
        "",
        "| run | wall s | fit s | peak RSS MiB | test RMSE | above floor | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        res = r.get("result")
        if res is None:
            lines.append(f"| {r['name']} | {r['wall_s']:.1f} | – | {r['peak_rss_mib']:.0f} | "
                         f"{r['error']} | – | `{short(r['command'], meta['file'])}` |")  # fmt: skip
            continue
        lines.append(
            f"| {r['name']} | {r['wall_s']:.1f} | {res.get('seconds', math.nan):.1f} | "
            f"{r['peak_rss_mib']:.0f} | {res['rmse']:.4f} | {res['rmse'] - floor:+.4f} | "
            f"`{short(r['command'], meta['file'])}` |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--ratings", type=int, default=2_500_000, help="size of the synthetic file")
    p.add_argument("--seed", type=int, default=0, help="of the data and of the split")
    p.add_argument(
        "--mfrec",
        action="append",
        metavar="FLAGS",
        help="`mfrec train` flags of one mfrec row, e.g. --mfrec='--model als' (repeatable; "
        "default: one row with no model flags)",
    )
    p.add_argument("--data", default=str(SYNTHETIC_OUT), help="where generated data is cached")
    p.add_argument("--no-peers", action="store_true", help="skip cmfrec even when installed")
    p.add_argument("--timeout", type=float, help="seconds allowed per run")
    p.add_argument("--out", default=str(OUT), help="folder for end_to_end-<N>.md and .json")
    p.add_argument("--peer", help=argparse.SUPPRESS)  # internal: fit a peer on --peer FILE
    args = p.parse_args(argv)
    if args.peer:
        print(json.dumps(fit_peer(args.peer, args.seed, 0.2)))
        return 0
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = commit()  # before the runs: the code they ran
    t0 = time.perf_counter()
    folder = generate("ml-25m", args.ratings, Path(args.data) / f"ml-25m-{args.ratings}",
                      seed=args.seed)  # fmt: skip
    generated = time.perf_counter() - t0
    truth = read_truth(folder)
    path = str(folder / truth["ratings_file"])
    load_before = os.getloadavg()[0]
    runs = [
        (f"mfrec {flags or '(no model flags)'}", shlex.split(flags)) for flags in args.mfrec or [""]
    ]
    rows = []
    for name, flags in runs:
        cmd = [sys.executable, "-m", "mfrec", "train", "--ratings", path, "--seed",
               str(args.seed), "--json", *flags]  # fmt: skip
        print(f"running {name}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
        rows.append({"name": name, **run_measured(cmd, args.timeout)})
    if not args.no_peers and available("cmfrec"):
        cmd = [sys.executable, "-m", "benchmarks.end_to_end", "--peer", path, "--seed",
               str(args.seed)]  # fmt: skip
        print("running cmfrec ALS (its defaults)", file=sys.stderr, flush=True)
        rows.append({"name": f"cmfrec ALS-CG defaults, {os.cpu_count()} threads",
                     **run_measured(cmd, args.timeout)})  # fmt: skip
    else:
        print("cmfrec not installed (pip install -e '.[peers]'): no peer row", file=sys.stderr)
    params = truth["params"]
    meta = {
        "date": started,
        "commit": head,
        "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}",
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "command": shlex.join(["python", "-m", "benchmarks.end_to_end", *(argv or sys.argv[1:])]),
        "file": path,
        "n_ratings": params["n_ratings"],
        "n_users": params["n_users"],
        "n_items": params["n_items"],
        "factors": params["n_factors"],
        "noise": params["noise"],
        "seed": args.seed,
        "floor_rmse": truth["floor_rmse"],
        "generate_s": f"{truth['seconds']} s" if generated > 1 else "an earlier run (cached)",
        "children_max_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    text = render(meta, rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"end_to_end-{args.ratings}"
    with atomic_write(stem.with_suffix(".md")) as tmp:
        tmp.write_text(text)
    with atomic_write(stem.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(text)
    print(f"wrote {stem}.md and .json", file=sys.stderr)
    return 0 if all("result" in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
