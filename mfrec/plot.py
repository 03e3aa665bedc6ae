"""Learning curves: train and test RMSE per epoch, one pair of lines per backend."""

from __future__ import annotations

import os
from pathlib import Path

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


def plot_curves(path: str | os.PathLike, curves: dict[str, dict[str, list[float]]]) -> Path:
    """Save ``{backend: {"train": [...], "test": [...]}}`` as a figure at ``path``, atomically.

    Needs matplotlib (the ``plot`` extra); a clear ``ValueError`` says so when it is missing.
    """
    plt = _pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"train": "tab:blue", "test": "tab:red"}
    styles = {"numba": dict(linestyle="-", linewidth=6, alpha=0.35)}
    thin = dict(linestyle="--", linewidth=1.5, alpha=1.0)
    for name, curve in curves.items():
        for role in ("train", "test"):
            epochs = range(1, len(curve[role]) + 1)
            style = styles.get(name, thin)
            ax.plot(epochs, curve[role], color=colors[role], label=f"{name} {role}", **style)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title("Learning curves (thick pale: Numba, thin dashed: torch)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path
