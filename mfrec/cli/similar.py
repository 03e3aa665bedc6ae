"""``mfrec similar``: the items nearest to one item by cosine on Q."""

from __future__ import annotations

from mfrec.cli._common import add_serving_command, items_json, load_serving_model, print_items
from mfrec.modelio import id_index, raw_id
from mfrec.reference.serving import similar_items


def add_parser(sub) -> None:
    """Register ``mfrec similar``."""
    add_serving_command(
        sub,
        "similar",
        "items nearest to one item (cosine on Q)",
        lambda s: s.add_argument("--item", required=True, help="raw item id"),
    )


def cmd_similar(args) -> int:
    """The items nearest to one item by cosine similarity of their rows of Q."""
    model, _, item_ids, titles = load_serving_model(args, "similar")
    pos = id_index(item_ids, args.item)
    if pos is None:
        raise ValueError(f"item {args.item} is not in {args.model}")
    top, cos = similar_items(model.Q, pos, args.top)
    raw = raw_id(item_ids[pos])
    name = titles.get(raw, f"item {raw}")
    header = f"{len(top)} items most similar to {name} (cosine):"
    print_items(header, top, cos, item_ids, titles, fmt="+.3f")
    args.result = {"item": raw, "title": titles.get(raw),
                   "similar": items_json(top, cos, item_ids, titles, "cosine")}  # fmt: skip
    return 0
