"""Tables, ``results.json`` and ``bench.png`` from pytest-benchmark's JSON (``make bench``).

Usage: ``python benchmarks/report.py benchmarks/out/bench.json [more.json …] [--drop=TEXT …]``
(rows of all the files, one machine, less the rows whose implementation name contains a
``--drop`` text; writes beside the first file). When a GPU was measured, the report and results
are also copied to ``benchmarks/results/`` (committed).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from mfrec._internal import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"


def load_rows(path: Path) -> tuple[dict, list[dict]]:
    """(machine description, one row per benchmark with its median and updates/s)."""
    raw = json.loads(path.read_text())
    rows = []
    for b in raw["benchmarks"]:
        extra, stats = b["extra_info"], b["stats"]
        median = stats["median"]
        rows.append(
            {
                **extra,
                "name": b["name"],
                "median_s": median,
                "iqr_s": stats["iqr"],
                "rounds": stats["rounds"],
                "updates_per_s": extra["updates"] / median,
                "updates_per_cpu_s": extra["updates"] / extra["cpu_s"] if extra.get("cpu_s") else 0,
            }
        )
    m, c = raw["machine_info"], raw.get("commit_info", {})
    machine = {
        "cpu": m.get("cpu_model") or m.get("processor"),
        "gpu": m.get("gpu_model"),
        "python": m.get("python_version"),
        "commit": c.get("id"),
        "dirty": c.get("dirty"),
        "datetime": raw.get("datetime"),
    }
    return machine, rows


def table(header: list[str], body: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


# A report column: its header, and its cell for one row.
Column = tuple[str, Callable[[Any], str]]


def section(title: list[str], columns: list[Column], rows: list) -> list[str]:
    """The lines of one report section: its title lines, then the table of ``rows`` in
    ``columns``; nothing when there are no rows."""
    if not rows:
        return []
    body = [[cell(r) for _, cell in columns] for r in rows]
    return ["", *title, "", table([name for name, _ in columns], body)]


def mups(x: float) -> str:
    return f"{x / 1e6:.2f}" if x < 1e7 else f"{x / 1e6:.1f}"


def ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}×"


def pick(rows: list[dict], name: str) -> list[dict]:
    return [r for r in rows if r["table"] == name]


def surprise(rows: list[dict]) -> dict | None:
    """The scikit-surprise row of a table, if it has one."""
    return next((r for r in rows if r["impl"].startswith("scikit-surprise")), None)


def ms_epoch(fmt: str) -> Column:
    """The median epoch in milliseconds, in format ``fmt``."""
    return ("ms/epoch", lambda r: f"{r['median_s'] * 1e3:{fmt}}")


IMPL: Column = ("implementation", lambda r: r["impl"])
DEVICE: Column = ("device", lambda r: r["device"])
UPDATES: list[Column] = [
    ("M updates/s", lambda r: mups(r["updates_per_s"])),
    ("M updates/CPU-s", lambda r: mups(r["updates_per_cpu_s"])),
]
ROUNDS: Column = ("rounds", lambda r: str(r["rounds"]))


def render(machine: dict, rows: list[dict]) -> str:
    """The Markdown report: every table that has rows."""
    gpu = machine["gpu"] or "none present"
    out = [
        "# mfrec benchmark",
        "",
        f"CPU: {machine['cpu']}; GPU: {gpu}; commit {machine['commit']}"
        f"{' (dirty)' if machine['dirty'] else ''}; {machine['datetime']}.",
        "Medians over the rounds shown; JIT compile and CUDA init happen before timing.",
        "M updates/s is wall time; M updates/CPU-s divides by the process CPU time (all its",
        "threads), which leaves out time spent waiting for a core on a shared machine.",
    ]
    ml = pick(rows, "ml100k")
    ref = surprise(ml)
    out += section(
        ["## One epoch, ML-100k 80k training split, surprise defaults (biased, k=100, float64)"],
        [
            IMPL,
            DEVICE,
            ("ms/epoch", lambda r: f"{r['median_s'] * 1e3 * r_full(r, ml):.1f}"),
            *UPDATES,
            (
                "vs surprise (wall)",
                lambda r: ratio(r["updates_per_s"] / ref["updates_per_s"] if ref else None),
            ),
            ROUNDS,
        ],
        ml,
    )
    fit = pick(rows, "fit")
    fit_ref = surprise(fit)
    out += section(
        [
            "## Whole fit, side by side (ML-100k 80k/20k): SGD rows 20 epochs at surprise's "
            "defaults, cmfrec (ALS) at its own"
        ],
        [
            IMPL,
            DEVICE,
            ("fit s", lambda r: f"{r['median_s']:.3f}"),
            ("fit CPU-s", lambda r: f"{r['cpu_s']:.3f}"),
            (
                "speed-up vs surprise (wall)",
                lambda r: ratio(fit_ref["median_s"] / r["median_s"] if fit_ref else None),
            ),
            ("(CPU)", lambda r: ratio(fit_ref["cpu_s"] / r["cpu_s"] if fit_ref else None)),
            ("test RMSE", lambda r: f"{r['test_rmse']:.4f}"),
            ROUNDS,
        ],
        fit,
    )
    for r in pick(rows, "fit_interleaved"):
        out += interleaved(r["times_s"])
    out += section(
        [
            "## One epoch, 10M random ratings, 69,878 × 10,677 grid, k=64 float32",
            "",
            "LibMF is not run here (a figure measured on another machine is no comparison).",
        ],
        [IMPL, DEVICE, ms_epoch(".0f"), *UPDATES, ROUNDS],
        pick(rows, "ml10m"),
    )
    for name, key, title in (
        ("scale_n", "n", "Scaling over N (k=64, float32, ML-10M-shaped grid)"),
        ("scale_k", "k", "Scaling over k (N=1M, float32)"),
    ):
        out += section(
            [f"## {title}"],
            [
                (key, lambda r, key=key: f"{r[key]:,}"),
                IMPL,
                DEVICE,
                ms_epoch(".1f"),
                *UPDATES,
                ("ns/update", lambda r: f"{1e9 / r['updates_per_s']:.0f}"),
            ],
            sorted(pick(rows, name), key=lambda r, key=key: (r["device"], r["impl"], r[key])),
        )
    for r in pick(rows, "memory"):
        held = r["held_bytes"]
        parts = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in held.items())
        out += [
            "",
            f"## Memory, 10M-rating fit (one epoch, k=64, float32): {r['impl']}",
            "",
            f"Peak traced allocation during `fit` (tracemalloc): {r['peak_bytes'] / 2**20:.0f} MiB."
            f" Arrays training needs (MiB): {parts}; sum "
            f"{sum(held.values()) / 2**20:.0f} MiB (the caller's users/items/ratings existed "
            "before the fit and are not in the traced peak).",
        ]
    return "\n".join(out) + "\n"


def interleaved(times: dict[str, list[float]]) -> list[str]:
    """The section of the interleaved fits: each fit's median and minimum against surprise's."""
    ref_name = next(name for name in times if name.startswith("scikit-surprise"))
    ref = times[ref_name]
    return section(
        [
            f"Interleaved: the same fits run in turn ({ref_name}, then each mfrec fit; "
            f"{len(ref)} rounds), so both sides of each ratio share the machine's phases:"
        ],
        [
            ("fit", lambda item: item[0]),
            ("median s", lambda item: f"{median(item[1]):.3f}"),
            ("min s", lambda item: f"{min(item[1]):.3f}"),
            ("vs surprise (medians)", lambda item: ratio(median(ref) / median(item[1]))),
            ("(mins)", lambda item: ratio(min(ref) / min(item[1]))),
        ],
        list(times.items()),
    )


def r_full(r: dict, rows: list[dict]) -> float:
    """Scale a row timed on a subset (torch exact) up to the full epoch of its table."""
    full = max(x["updates"] for x in rows)
    return full / r["updates"]


def plot(rows: list[dict], machine: dict, path: Path) -> None:
    """Three panels: ML-100k updates/s per implementation, then scaling over N and over k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ml = pick(rows, "ml100k")
    labels = [f"{r['impl']} [{r['device']}]" for r in ml]
    axes[0].barh(labels, [r["updates_per_s"] / 1e6 for r in ml], color="tab:blue")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("M updates/s (log)")
    axes[0].set_title("ML-100k epoch, k=100 float64 biased")
    axes[0].tick_params(axis="y", labelsize=7)
    for ax, name, key, xlabel in (
        (axes[1], "scale_n", "n", "N ratings"),
        (axes[2], "scale_k", "k", "k factors"),
    ):
        sc = pick(rows, name)
        for impl, dev in sorted({(r["impl"], r["device"]) for r in sc}):
            pts = sorted(
                (r[key], 1e9 / r["updates_per_s"])
                for r in sc
                if (r["impl"], r["device"]) == (impl, dev)
            )
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"{impl} [{dev}]")
        ax.set_xscale("log", base=2 if key == "k" else 10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ns per update")
        ax.set_ylim(bottom=0)
        ax.set_title(f"cost per update vs {key}")
        if sc:
            ax.legend()
    fig.suptitle(
        f"mfrec `make bench` on {machine['cpu']}; GPU: {machine['gpu'] or 'none'}", fontsize=9
    )
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=80))
    plt.close(fig)


def write_atomic(path: Path, write) -> None:
    """Call ``write(tmp_path)``, then move the temp file over ``path``."""
    with atomic_write(path, parents=True) as tmp:
        write(tmp)


def main(argv: list[str]) -> int:
    """Write report.md, results.json and bench.png beside the (first) pytest-benchmark JSON."""
    drop = [a.removeprefix("--drop=") for a in argv if a.startswith("--drop=")]
    sources = [Path(a) for a in argv if not a.startswith("--")]
    sources = sources or [Path("benchmarks/out/bench.json")]
    machine, rows = load_rows(sources[0])
    for src in sources[1:]:
        other, more = load_rows(src)
        machine["gpu"] = machine["gpu"] or other["gpu"]
        rows += more
    rows = [r for r in rows if not any(text in r["impl"] for text in drop)]
    out = sources[0].parent
    report = render(machine, rows)
    for tta in sorted(out.glob("tta-*.md")):  # benchmarks/time_to_accuracy.py's tables
        report += f"\n{tta.read_text()}\n![{tta.stem}]({tta.stem}.png)\n"

    results = json.dumps({"machine": machine, "rows": rows}, indent=1)
    write_atomic(out / "report.md", lambda tmp: Path(tmp).write_text(report))
    write_atomic(out / "results.json", lambda tmp: Path(tmp).write_text(results))
    plot(rows, machine, out / "bench.png")
    print(report)
    print(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'bench.png'}")
    if machine["gpu"]:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", machine["gpu"]).strip("-").lower()
        for name in ("report.md", "results.json", "bench.png"):
            shutil.copyfile(out / name, RESULTS / f"{slug}-{name}")
        print(f"GPU measured: copied to {RESULTS}/{slug}-* (commit them)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
