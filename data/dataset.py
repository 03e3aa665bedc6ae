"""A ratings table with raw ids mapped to contiguous 0-based indices (and back)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNKNOWN = -1
"""Index that marks a user or item the model was not trained on (predict falls back to biases)."""


@dataclass
class Ratings:
    """Ratings as index arrays, plus the maps between raw ids and indices.

    ``user_ids[u]`` is the raw id of user index ``u`` (likewise ``item_ids``); ``titles`` maps a
    raw item id to its title when the source has one.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None = None
    titles: dict = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_raw(cls, raw_users, raw_items, ratings, timestamps=None, **kw) -> Ratings:
        """Map raw ids (any integers) to contiguous indices in sorted raw-id order."""
        user_ids, users = index_ids(raw_users)
        item_ids, items = index_ids(raw_items)
        return cls(
            users=users,
            items=items,
            ratings=np.asarray(ratings, dtype=np.float64),
            user_ids=user_ids,
            item_ids=item_ids,
            timestamps=timestamps,
            **kw,
        )

    def __len__(self) -> int:
        return int(self.ratings.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    def user_index(self, raw_id) -> int:
        """Index of a raw user id; ``KeyError`` naming the id when it is unknown."""
        return _lookup(self.user_ids, raw_id, "user")

    def item_index(self, raw_id) -> int:
        """Index of a raw item id; ``KeyError`` naming the id when it is unknown."""
        return _lookup(self.item_ids, raw_id, "item")

    def subset(self, index: np.ndarray) -> Ratings:
        """The rows at ``index``, keeping the same id maps (so indices stay comparable)."""
        ts = None if self.timestamps is None else self.timestamps[index]
        return Ratings(
            self.users[index],
            self.items[index],
            self.ratings[index],
            self.user_ids,
            self.item_ids,
            ts,
            self.titles,
            self.source,
        )


def index_ids(raw) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, int64 index of each entry): ``ids[index] == raw``.

    Non-negative ids below 4·len + 2²⁰ use an O(n) presence table (MovieLens ids); any other
    integers fall back to a sort.
    """
    raw = np.asarray(raw)
    if raw.size and np.issubdtype(raw.dtype, np.integer):
        lo, hi = int(raw.min()), int(raw.max())
        if lo >= 0 and hi < 4 * raw.size + (1 << 20):
            from mfrec.data._kernels import _dense_index

            index = np.empty(raw.size, dtype=np.int64)
            ids = _dense_index(np.ascontiguousarray(raw, dtype=np.int64).reshape(-1), hi, index)
            return ids.astype(raw.dtype), index.reshape(raw.shape)
    ids, index = np.unique(raw, return_inverse=True)
    return ids, index.astype(np.int64).reshape(-1)


def _lookup(ids: np.ndarray, raw_id, what: str) -> int:
    try:
        key = ids.dtype.type(raw_id)
    except (TypeError, ValueError):
        raise KeyError(f"unknown {what} id {raw_id!r}") from None
    pos = int(np.searchsorted(ids, key))
    if pos == ids.shape[0] or ids[pos] != key:
        raise KeyError(f"unknown {what} id {raw_id!r}")
    return pos


def reindex(part: Ratings) -> Ratings:
    """``part`` with id maps of only the users and items it contains."""
    return Ratings.from_raw(
        part.user_ids[part.users],
        part.item_ids[part.items],
        part.ratings,
        titles=part.titles,
        source=part.source,
    )


def align_keep(train: Ratings, test: Ratings) -> tuple[Ratings, int]:
    """``test`` on ``train``'s indices; a user or item not in training becomes ``UNKNOWN``.

    Returns the table and how many of its ratings have an unknown user or item (the model
    scores those with its fallback: training mean plus the known bias).
    """
    users = _positions(train.user_ids, test.user_ids[test.users])
    items = _positions(train.item_ids, test.item_ids[test.items])
    out = Ratings(users, items, test.ratings, train.user_ids, train.item_ids,
                  None, train.titles, test.source)  # fmt: skip
    return out, int(np.count_nonzero((users == UNKNOWN) | (items == UNKNOWN)))


def _positions(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    if ids.dtype.kind != raw.dtype.kind:  # integer ids in one file, text ids in the other
        ids, raw = ids.astype(str), raw.astype(str)
        order = np.argsort(ids, kind="stable")
        pos = _positions(ids[order], raw)
        return np.where(pos == UNKNOWN, UNKNOWN, order[np.maximum(pos, 0)])
    pos = np.minimum(np.searchsorted(ids, raw), ids.shape[0] - 1)
    return np.where(ids[pos] == raw, pos, UNKNOWN).astype(np.int64)
