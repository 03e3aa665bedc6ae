"""Ratings files: the reader is in :mod:`mfrec.data.parse`; ``align`` maps test onto train."""

from __future__ import annotations

import numpy as np

from mfrec.data.dataset import Ratings
from mfrec.data.parse import DataError, read_ratings, sniff_delimiter

__all__ = ["DataError", "align", "read_ratings", "sniff_delimiter"]


def align(train: Ratings, test: Ratings) -> tuple[Ratings, int]:
    """``test`` re-indexed with ``train``'s id maps; rows with ids unseen in training are dropped.

    Returns the aligned table and the number of rows dropped.
    """
    u = _map(train.user_ids, test.user_ids[test.users])
    i = _map(train.item_ids, test.item_ids[test.items])
    keep = (u >= 0) & (i >= 0)
    ts = None if test.timestamps is None else test.timestamps[keep]
    out = Ratings(
        u[keep],
        i[keep],
        test.ratings[keep],
        train.user_ids,
        train.item_ids,
        ts,
        train.titles,
        test.source,
    )
    return out, int((~keep).sum())


def _map(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(ids, raw)
    pos = np.minimum(pos, ids.shape[0] - 1)
    return np.where(ids[pos] == raw, pos, -1).astype(np.int64)
