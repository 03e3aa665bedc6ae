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
from pathlib import Path
from statistics import median

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


def mups(x: float) -> str:
    return f"{x / 1e6:.2f}" if x < 1e7 else f"{x / 1e6:.1f}"


def ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}×"


def pick(rows: list[dict], name: str) -> list[dict]:
    return [r for r in rows if r["table"] == name]


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
    if ml:
        ref = next((r for r in ml if r["impl"].startswith("scikit-surprise")), None)
        body = [
            [
                r["impl"],
                r["device"],
                f"{r['median_s'] * 1e3 * r_full(r, ml):.1f}",
                mups(r["updates_per_s"]),
                mups(r["updates_per_cpu_s"]),
                ratio(r["updates_per_s"] / ref["updates_per_s"] if ref else None),
                str(r["rounds"]),
            ]
            for r in ml
        ]
        out += [
            "",
            "## One epoch, ML-100k 80k training split, surprise defaults (biased, k=100, float64)",
            "",
            table(
                [
                    "implementation",
                    "device",
                    "ms/epoch",
                    "M updates/s",
                    "M updates/CPU-s",
                    "vs surprise (wall)",
                    "rounds",
                ],
                body,
            ),
        ]
    fit = pick(rows, "fit")
    if fit:
        ref = next((r for r in fit if r["impl"].startswith("scikit-surprise")), None)
        body = [
            [
                r["impl"],
                r["device"],
                f"{r['median_s']:.3f}",
                f"{r['cpu_s']:.3f}",
                ratio(ref["median_s"] / r["median_s"] if ref else None),
                ratio(ref["cpu_s"] / r["cpu_s"] if ref else None),
                f"{r['test_rmse']:.4f}",
                str(r["rounds"]),
            ]
            for r in fit
        ]
        out += [
            "",
            "## Whole fit, side by side (ML-100k 80k/20k): SGD rows 20 epochs at surprise's "
            "defaults, cmfrec (ALS) at its own",
            "",
            table(
                [
                    "implementation",
                    "device",
                    "fit s",
                    "fit CPU-s",
                    "speed-up vs surprise (wall)",
                    "(CPU)",
                    "test RMSE",
                    "rounds",
                ],
                body,
            ),
        ]
    for r in pick(rows, "fit_interleaved"):
        times = r["times_s"]
        ref_name = next(name for name in times if name.startswith("scikit-surprise"))
        ref = times[ref_name]
        body = [
            [
                name,
                f"{median(t):.3f}",
                f"{min(t):.3f}",
                ratio(median(ref) / median(t)),
                ratio(min(ref) / min(t)),
            ]
            for name, t in times.items()
        ]
        out += [
            "",
            f"Interleaved: the same fits run in turn ({ref_name}, then each mfrec fit; "
            f"{len(ref)} rounds), so both sides of each ratio share the machine's phases:",
            "",
            table(
                ["fit", "median s", "min s", "vs surprise (medians)", "(mins)"],
                body,
            ),
        ]
    big = pick(rows, "ml10m")
    if big:
        body = [
            [
                r["impl"],
                r["device"],
                f"{r['median_s'] * 1e3:.0f}",
                mups(r["updates_per_s"]),
                mups(r["updates_per_cpu_s"]),
                str(r["rounds"]),
            ]
            for r in big
        ]
        out += [
            "",
            "## One epoch, 10M random ratings, 69,878 × 10,677 grid, k=64 float32",
            "",
            "LibMF is not run here (a figure measured on another machine is no comparison).",
            "",
            table(
                [
                    "implementation",
                    "device",
                    "ms/epoch",
                    "M updates/s",
                    "M updates/CPU-s",
                    "rounds",
                ],
                body,
            ),
        ]
    for name, key, title in (
        ("scale_n", "n", "Scaling over N (k=64, float32, ML-10M-shaped grid)"),
        ("scale_k", "k", "Scaling over k (N=1M, float32)"),
    ):
        sc = sorted(pick(rows, name), key=lambda r: (r["device"], r["impl"], r[key]))
        if sc:
            body = [
                [
                    f"{r[key]:,}",
                    r["impl"],
                    r["device"],
                    f"{r['median_s'] * 1e3:.1f}",
                    mups(r["updates_per_s"]),
                    mups(r["updates_per_cpu_s"]),
                    f"{1e9 / r['updates_per_s']:.0f}",
                ]
                for r in sc
            ]
            out += [
                "",
                f"## {title}",
                "",
                table(
                    [
                        key,
                        "implementation",
                        "device",
                        "ms/epoch",
                        "M updates/s",
                        "M updates/CPU-s",
                        "ns/update",
                    ],
                    body,
                ),
            ]
    mem = pick(rows, "memory")
    for r in mem:
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
