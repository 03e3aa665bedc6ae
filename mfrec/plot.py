"""Learning curves: train and test RMSE per epoch, one pair of lines per backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mfrec._internal import atomic_write


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError(
            "--plot needs matplotlib: pip install 'mfrec[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def check_plot_path(path: str | os.PathLike) -> None:
    """Fail before training when matplotlib is missing or cannot write the file's format."""
    plt = _pyplot()
    fig = plt.figure()
    try:
        formats = fig.canvas.get_supported_filetypes()
    finally:
        plt.close(fig)
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix not in formats:
        raise ValueError(f"--plot {path}: unknown image format {suffix!r} (try .png, .svg, .pdf)")


def plot_curves(path: str | os.PathLike, curves: dict[str, dict[str, Any]]) -> Path:
    """Save learning curves as a figure at ``path``, atomically.

    ``curves`` maps a series name (a backend, or an ensemble member) to ``{"step": [...],
    "train": [...], "test": [...], "unit": "epoch"}`` (``test`` may be empty: nothing held
    out). The first series is drawn thick and pale, the others thin and dashed, and the title
    names them. Needs matplotlib (the ``plot`` extra); a clear ``ValueError`` says so otherwise.
    """
    plt = _pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"train": "tab:blue", "test": "tab:red"}
    thick: dict[str, Any] = dict(linestyle="-", linewidth=6, alpha=0.35)
    thin: dict[str, Any] = dict(linestyle="--", linewidth=1.5, alpha=1.0)
    names = list(curves)
    units = sorted({curve.get("unit", "epoch") for curve in curves.values()})
    for n, (name, curve) in enumerate(curves.items()):
        for role in ("train", "test"):
            values = curve[role]
            if not values:
                continue
            steps = curve.get("step") or list(range(1, len(values) + 1))
            style = dict(thick if n == 0 else thin)
            if len(values) == 1:  # one point draws no line: mark it
                style["marker"] = "o"
            ax.plot(steps, values, color=colors[role], label=f"{name} {role}", **style)
    ax.xaxis.get_major_locator().set_params(integer=True)  # pyright: ignore[reportCallIssue]  (MaxNLocator)
    ax.set_xlabel(" / ".join(units))
    ax.set_ylabel("RMSE")
    if len(names) == 1:
        ax.set_title(f"Learning curves: {names[0]}")
    else:
        ax.set_title(f"Learning curves (thick pale: {names[0]}; thin dashed: "
                     f"{', '.join(names[1:])})", fontsize=9)  # fmt: skip
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path
