"""``mfrec similar``: the items nearest to one item by cosine on Q."""

from __future__ import annotations

from mfrec._internal import check_positive
from mfrec.cli._common import (
    HelpFormatter,
    add_output_flags,
    items_json,
    print_items,
)
from mfrec.modelio import id_index, load_model, raw_id
from mfrec.modelstate import refusal
from mfrec.reference.serving import similar_items


def add_parser(sub) -> None:
    """Register ``mfrec similar``."""
    fmt = HelpFormatter
    s = sub.add_parser(
        "similar", help="items nearest to one item (cosine on Q)", formatter_class=fmt
    )
    s.add_argument("--model", required=True, help="a file written by `mfrec train --save`")
    s.add_argument("--item", required=True, help="raw item id")
    s.add_argument("-k", "--top", type=int, default=10, help="how many items")
    add_output_flags(s, quiet=False)


def cmd_similar(args) -> int:
    """The items nearest to one item by cosine similarity of their rows of Q."""
    check_positive("-k/--top", args.top, integer=True)
    model, _, item_ids, titles = load_model(args.model)
    why = refusal(model, "similar")
    if why is not None:
        raise ValueError(why)
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
