"""A ratings table with raw ids mapped to contiguous 0-based indices (and back)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from mfrec._internal import check_index, check_size
from mfrec.data.ids import UNKNOWN, as_ids, index_ids, lookup

__all__ = ["UNKNOWN", "Ratings", "align", "index_ids", "reindex", "training_ratings"]


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
        """Map raw ids (integers of any size, or text; arrays, lists, pandas or polars columns)
        to contiguous indices in sorted raw-id order."""
        user_ids, users = index_ids(as_ids(raw_users, "users"))
        item_ids, items = index_ids(as_ids(raw_items, "items"))
        return cls(
            users=users,
            items=items,
            ratings=np.array(ratings, dtype=np.float64),  # a copy: pandas may lend read-only
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

    def with_ids(self, user_ids=None, item_ids=None) -> Ratings:
        """The same ratings on id maps widened by the raw ``user_ids`` and ``item_ids`` (kept
        sorted, indices remapped): an added id is a row with no ratings (e.g. an item known
        only by its features)."""
        maps = []
        for ids, extra in ((self.user_ids, user_ids), (self.item_ids, item_ids)):
            if extra is not None and len(extra):
                ids = index_ids(np.concatenate([ids, np.asarray(extra)]))[0]
            maps.append(ids)
        users = lookup(maps[0], self.user_ids)[self.users]
        items = lookup(maps[1], self.item_ids)[self.items]
        return dataclasses.replace(self, users=users, items=items, user_ids=maps[0],
                                   item_ids=maps[1])  # fmt: skip

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
        part.timestamps,
        titles=part.titles,
        source=part.source,
    )


def align(train: Ratings, test: Ratings) -> tuple[Ratings, int]:
    """``test`` on ``train``'s indices; a user or item not in training becomes ``UNKNOWN``.

    Returns the table and how many of its ratings have an unknown user or item (a model
    scores those with its fallback: training mean plus the known bias).
    """
    users = lookup(train.user_ids, test.user_ids[test.users])
    items = lookup(train.item_ids, test.item_ids[test.items])
    out = Ratings(users, items, test.ratings, train.user_ids, train.item_ids,
                  test.timestamps, train.titles, test.source)  # fmt: skip
    return out, int(np.count_nonzero((users == UNKNOWN) | (items == UNKNOWN)))


def training_ratings(
    users, items=None, ratings=None, n_users: int | None = None, n_items: int | None = None
) -> tuple[Ratings, bool]:
    """What a model's ``fit`` was given, as (table, whether its ids are raw).

    ``users`` may be a whole :class:`Ratings` (its indices and id maps are used). With
    ``n_users`` or ``n_items`` the arrays are 0-based indices (identity id maps); without,
    raw ids, mapped by :meth:`Ratings.from_raw`.
    """
    if isinstance(users, Ratings):
        if items is not None or ratings is not None:
            raise ValueError("fit(data) with a Ratings table takes no items or ratings arrays")
        return users, False
    if items is None or ratings is None:
        raise ValueError("fit needs users, items and ratings (or one Ratings table as users)")
    if n_users is None and n_items is None:
        return Ratings.from_raw(users, items, ratings), True
    try:
        u, i = check_index("users", users), check_index("items", items)
    except ValueError as e:
        raise ValueError(
            f"{e}: with n_users/n_items given, users and items are 0-based indices; "
            "leave n_users and n_items out to fit on raw ids (integers or text)"
        ) from None
    n_users, n_items = check_size("n_users", n_users, u), check_size("n_items", n_items, i)
    return Ratings(u, i, ratings, np.arange(n_users), np.arange(n_items)), False
