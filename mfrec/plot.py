"""Learning curves: train and test RMSE per epoch, one pair of lines per backend."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
    styles = {"numba": ("tab:blue", "-", 6), "torch": ("tab:orange", "--", 2)}
    for name, curve in curves.items():
        color, line, width = styles.get(name, ("tab:green", "-", 2))
        epochs = range(1, len(curve["train"]) + 1)
        kw = {"color": color, "linestyle": line, "linewidth": width, "alpha": 0.8}
        ax.plot(epochs, curve["train"], label=f"{name} train", marker="o", markersize=3, **kw)
        ax.plot(epochs, curve["test"], label=f"{name} test", marker="s", markersize=3, **kw)
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title("Learning curves (thick solid: Numba, thin dashed: torch)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path
