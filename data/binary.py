"""The book's liked-or-not task: ratings become 0/1 labels at a threshold.

The companion book (动手学推荐系统) reads "liked" as a rating at or above a threshold (4 on
MovieLens' 1–5 scale): y = 1[r >= threshold]. A threshold outside the rating scale, or one that
leaves a single class in the part a model trains on, is an error naming the value.
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 4.0
"""The book's "liked": a rating of 4 or 5 on MovieLens' 1–5 scale."""


def binarize(
    ratings, threshold: float, scale: tuple[float, float] | None = None, part: str = "training"
) -> np.ndarray:
    """Labels y = 1[r >= threshold] (float64 0/1) of ``ratings``, the part a model trains on.

    ``scale`` = (lowest, highest) rating of the data set (default: those of ``ratings``). Raises
    ``ValueError`` naming the threshold when it is not finite, outside the scale, or leaves
    only one class in ``ratings`` (every rating liked, or none; ``part`` names them).
    """
    r = np.asarray(ratings, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"binary labels need a non-empty 1-D array of ratings, got {r.shape}")
    t = check_threshold(threshold, scale if scale is not None else (r.min(), r.max()))
    y = (r >= t).astype(np.float64)
    check_two_classes(y, t, part)
    return y


def check_threshold(threshold, scale: tuple[float, float]) -> float:
    """``threshold`` as a float, or ``ValueError`` when it is not finite or outside ``scale``."""
    lo, hi = float(scale[0]), float(scale[1])
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"binary threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(t) or not lo <= t <= hi:
        raise ValueError(
            f"binary threshold {threshold!r} is outside the rating scale [{lo:g}, {hi:g}]"
        )
    return t


def check_two_classes(labels: np.ndarray, threshold: float, part: str = "training") -> None:
    """``ValueError`` naming ``threshold`` when ``labels`` hold only 1s or only 0s."""
    n_liked = int(np.count_nonzero(labels))
    if n_liked == labels.size or n_liked == 0:
        which = "every" if n_liked else "no"
        raise ValueError(
            f"binary threshold {threshold:g} leaves one class in the {part} part: {which} "
            f"one of its {labels.size} ratings is >= {threshold:g}; choose a threshold "
            "strictly above its lowest rating and at most its highest"
        )
