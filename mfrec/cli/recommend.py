"""``mfrec recommend``: top-k from a saved model for a known user or folded-in ratings."""

from __future__ import annotations

import argparse

import numpy as np

from mfrec.cli._common import (
    add_serving_command,
    items_json,
    load_serving_model,
    plural,
    print_items,
    print_top,
    top_items,
    top_json,
)
from mfrec.modelio import id_index, raw_id
from mfrec.modelstate import predicts_probabilities
from mfrec.reference.mf import UNKNOWN


def add_parser(sub) -> None:
    """Register ``mfrec recommend``."""
    add_serving_command(
        sub,
        "recommend",
        "top-k unseen items for a known user, or for new ratings folded in",
        add_who,
    )


def add_who(r: argparse.ArgumentParser) -> None:
    """``--user`` or ``--rate``: a known user, or a new one's ratings."""
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user id the model was trained on")
    who.add_argument(
        "--rate",
        nargs="+",
        metavar="ITEM=RATING",
        help="a new user's ratings by raw item id, folded in by a ridge solve against fixed Q",
    )
    r.add_argument(
        "--user-feature",
        nargs="+",
        metavar="NAME",
        help="with --rate: the new user's features by name in the model's vocabulary (an svdpp "
        "model trained with user features, e.g. gender=F occupation=student)",
    )


def parse_rates(pairs: list[str], model, item_ids: np.ndarray, model_path: str):
    """``ITEM=RATING`` strings as (item indices, ratings); errors name the bad pair.

    A rating outside the model's scale is refused: the scale declared at training
    (``--rating-scale``, or the release's), else the range of the training ratings.
    """
    lo = model.params.get("scale_min", getattr(model, "r_min", None))
    hi = model.params.get("scale_max", getattr(model, "r_max", None))
    items, ratings = [], []
    for pair in pairs:
        item, sep, value = pair.rpartition("=")
        try:
            r = float(value)
        except ValueError:
            raise ValueError(f"--rate expects ITEM=RATING, got {pair!r}") from None
        if not sep or not item or not np.isfinite(r):
            raise ValueError(f"--rate expects ITEM=RATING with a finite rating, got {pair!r}")
        if lo is not None and not lo <= r <= hi:
            raise ValueError(
                f"--rate {pair}: rating {r:g} is outside the model's rating scale [{lo:g}, {hi:g}]"
            )
        pos = id_index(item_ids, item)
        if pos is None:
            raise ValueError(f"--rate: item {item} is not in {model_path}")
        items.append(pos)
        ratings.append(r)
    if len(set(items)) != len(items):
        raise ValueError("--rate: each item may be rated once")
    return np.array(items, dtype=np.int64), np.array(ratings)


def cmd_recommend(args) -> int:
    """Top-k for a raw user id from a saved model, or for new ratings folded in."""
    if args.user_feature and not args.rate:
        raise ValueError("--user-feature describes a new user: it goes with --rate")
    use = "fold-in" if args.rate else None
    model, user_ids, item_ids, titles = load_serving_model(args, use, "--rate")
    if args.rate:
        items, ratings = parse_rates(args.rate, model, item_ids, args.model)
        # ids are indices here; an unknown feature name is a ValueError naming it
        top, values = model.recommend_new_user(items, ratings, args.top, args.user_feature)
        header = f"top {len(top)} movies for a new user with {plural(len(items), 'rating')}:"
        print_items(header, top, values, item_ids, titles)
        args.result = {"user": None, "known_user": False, "n_rated": len(items),
                       "user_features": args.user_feature or [],
                       "items": items_json(top, values, item_ids, titles, "rating")}  # fmt: skip
        return 0
    pos = id_index(user_ids, args.user)
    if pos is None:
        print(
            f"user {args.user} is not in {args.model}: ranking by item bias (μ + bᵢ) instead; "
            "for a new user, pass their ratings with --rate ITEM=RATING ..."
        )
    u = UNKNOWN if pos is None else pos
    raw_user = args.user if pos is None else raw_id(user_ids[pos])
    if predicts_probabilities(model):  # a liked-or-not model: its values are P(liked)
        top, values = top_items(model, u, args.top)
        header = f"top {len(top)} unseen movies for user {raw_user} (P(liked)):"
        print_items(header, top, values, item_ids, titles, fmt="5.3f")
        items = items_json(top, values, item_ids, titles, "p_liked")
    else:
        print_top(model, u, raw_user, args.top, item_ids, titles)
        items = top_json(model, u, args.top, item_ids, titles)
    args.result = {"user": raw_user, "known_user": pos is not None, "items": items}
    return 0
