"""What the subcommands share: data flags, loading, output flags and item lists."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mfrec._internal import check_positive
from mfrec.data import (
    CANONICAL_SPLITS,
    RELEASES,
    Ratings,
    canonical_split,
    find_release,
    get_release,
    load_movielens,
    read_features,
    read_ratings,
    release_features,
)
from mfrec.data.dataset import align, reindex
from mfrec.data.features import release_beside, release_files
from mfrec.data.parse import DUPLICATE_POLICIES, DataError, default_cache_dir
from mfrec.data.splits import train_test_split
from mfrec.factory import FEATURE_MODELS
from mfrec.modelio import load_model, raw_id
from mfrec.modelstate import refusal
from mfrec.outputs import check_outputs
from mfrec.progress import counted

DELIMITERS = {"tab": "\t", "comma": ",", "::": "::", "|": "|", ";": ";", "space": " "}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except ``None`` (such a flag's help says what happens without it)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Register the subcommand ``name`` on the subparsers ``sub``, its defaults shown in --help."""
    return sub.add_parser(name, help=help, formatter_class=HelpFormatter)


def add_serving_command(
    sub, name: str, help: str, add_target: Callable[[argparse.ArgumentParser], object]
) -> None:
    """Register a subcommand that answers from a saved model: ``--model``, then the flags
    ``add_target`` adds (whom or what it answers for), ``-k/--top`` and ``--json``."""
    p = add_command(sub, name, help)
    p.add_argument("--model", required=True, help="a file written by `mfrec train --save`")
    add_target(p)
    p.add_argument("-k", "--top", type=int, default=10, help="how many items")
    add_output_flags(p, quiet=False)


def load_serving_model(args, use: str | None, flag: str | None = None) -> tuple:
    """``-k/--top`` checked, then ``--model`` loaded (what :func:`~mfrec.modelio.load_model`
    returns); an error (after ``flag: `` when given) where the model cannot serve ``use``."""
    check_positive("-k/--top", args.top, integer=True)
    loaded = load_model(args.model)
    why = None if use is None else refusal(loaded[0], use)
    if why is not None:
        raise ValueError(why if flag is None else f"{flag}: {why}")
    return loaded


def add_data_options(p: argparse.ArgumentParser):
    """The data flags ``train`` and ``cv`` share; returns their argument group."""
    src = p.add_argument_group("data (default: --dataset ml-100k)")
    src.add_argument("--dataset", choices=list(RELEASES), default="ml-100k", help="MovieLens")
    src.add_argument("--data-dir", help="folder holding the release (else $MFREC_DATA, cache)")
    src.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="download the release when it is not found (checksum verified)",
    )
    src.add_argument("--ratings", help="one ratings file 'user item rating [timestamp]'")
    src.add_argument(
        "--delimiter",
        choices=list(DELIMITERS),
        help="field separator of the ratings files (default: sniffed from the first line)",
    )
    src.add_argument(
        "--rating-scale",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help="reject ratings outside [MIN, MAX] (MovieLens releases use their own scale)",
    )
    src.add_argument(
        "--duplicates",
        choices=DUPLICATE_POLICIES,
        default="error",
        help="a repeated (user, item) pair: stop with an error, or keep its last rating",
    )
    return src


def add_task_options(p: argparse.ArgumentParser) -> None:
    """The flags ``train`` and ``cv`` share beyond the data: the liked-or-not task, features."""
    g = p.add_argument_group("task and side information")
    g.add_argument(
        "--binary",
        type=float,
        metavar="T",
        help="the liked-or-not task: a rating >= T is liked (the book's reading: 4 on 1-5); "
        "prints AUC, log loss, precision/recall/accuracy at 0.5 and the ranked lists' @K",
    )
    g.add_argument("--user-features", metavar="F", help="CSV/TSV with a header, first column the "
                   "raw user id (default, svdpp, bfm, embedding-mlp)")  # fmt: skip
    g.add_argument("--item-features", metavar="F", help="the same for items (a MovieLens "
                   "movies.csv works as it is)")  # fmt: skip
    g.add_argument(
        "--features",
        choices=["auto", "none"],
        default="auto",
        help="auto: the release's feature files (u.user, u.item, ...; of --dataset, or beside "
        "the --train/--ratings file) for the default, svdpp, bfm and embedding-mlp; none: "
        "ignore them and the dates (the default then blends id-only members)",
    )
    g.add_argument(
        "--dates",
        choices=["auto", "none"],
        default="auto",
        help="auto: the default model and bfm date each rating by its month when the ratings "
        "have timestamps (a factorization machine with a date block; test ratings are scored "
        "at their own dates, recommendations as of the latest month); none: no dates",
    )


def load_features(args, train: Ratings, say=print) -> tuple:
    """(user, item) :class:`~mfrec.data.Features` for a model that uses them, aligned to
    ``train``'s ids: from --user-features/--item-features, else (with --features auto) the
    release's files, of --dataset or beside --ratings/--train; (None, None) for the other
    models. A flag overrides its side only."""
    if args.model not in FEATURE_MODELS:
        for f in ("--user-features", "--item-features"):
            if getattr(args, f[2:].replace("-", "_")):
                raise ValueError(f"{f}: only {', '.join(FEATURE_MODELS)} use features, not "
                                 f"--model {args.model}")  # fmt: skip
        return None, None
    if args.features == "none":
        return None, None
    users = items = None
    if not (args.user_features and args.item_features):
        users, items = release_side_information(args, train, say)
    if args.user_features:
        users = read_features(args.user_features, train.user_ids, what="user")
    if args.item_features:
        items = read_features(args.item_features, train.item_ids, what="item")
    for side, f in (("user", users), ("item", items)):
        if f is not None:
            say(f"{side} features: {f.n_features} from {f.source}")
            if f.note:
                say(f.note)
    return users, items


def release_side_information(args, train: Ratings, say=print) -> tuple:
    """(user, item) features of the release the data flags read: --dataset's, or the one whose
    files lie beside the --ratings or --train file (said in one line); (None, None) when
    that folder holds no release."""
    path = args.ratings or getattr(args, "train", None)
    if not path:
        folder = find_release(args.dataset, args.data_dir, download=False)
        return release_features(args.dataset, folder, train)
    found = release_beside(path)
    if found is None:
        return None, None
    name, folder = found
    say(f"feature files of {name} found beside {Path(path).name} in {folder} (--features none: "
        "without them)")  # fmt: skip
    try:
        return release_features(name, folder, train)
    except DataError as e:
        raise DataError(f"{e} (found beside {path}; --features none ignores them)") from None


def rating_scale(args, data: Ratings) -> tuple[float, float]:
    """The rating scale: --rating-scale, else the release's, else the range of ``data``."""
    if args.rating_scale is not None:
        lo, hi = args.rating_scale
    elif not (args.ratings or getattr(args, "train", None)):
        lo, hi = get_release(args.dataset).scale
    else:
        lo, hi = data.ratings.min(), data.ratings.max()
    return float(lo), float(hi)


def add_output_flags(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    """``--json`` (and ``--quiet``): the output flags every result-printing subcommand has."""
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document of results on stdout; everything else goes to stderr",
    )
    if quiet:
        p.add_argument("--quiet", action="store_true", help="print only the final results")


def check_output_files(args) -> None:
    """Before any work: ``--save``, ``--plot`` and ``--checkpoint`` can be written, and none
    is an input (``--ratings``, ``--train``, ``--test``, a file of the release), another output
    or inside the parse cache (see :func:`mfrec.outputs.check_outputs`)."""
    outputs = {f: getattr(args, f[2:], None) for f in ("--save", "--plot", "--checkpoint")}
    if not any(p is not None for p in outputs.values()):
        return
    inputs = [(f, getattr(args, f[2:], None)) for f in ("--ratings", "--train", "--test")]
    path = args.ratings or getattr(args, "train", None)
    found = release_beside(path) if path else None
    if found is not None:  # its feature files are inputs too
        inputs += [(f"{found[0]} feature file", f) for f in (found[1] / n for n in
                   release_files(found[0]))]  # fmt: skip
    if not (args.ratings or args.train):
        try:
            folder = find_release(args.dataset, args.data_dir, download=False)
        except FileNotFoundError:  # not here yet: it will be downloaded into a fresh folder
            folder = None
        if folder is not None:
            inputs += [(f"--dataset {args.dataset}", f) for f in sorted(folder.iterdir())]
    check_outputs(outputs, inputs, cache_dir=default_cache_dir() / "parsed")


def reader_options(args) -> dict:
    """The parse options of the data flags (``read_ratings`` keyword arguments)."""
    return dict(
        delimiter=DELIMITERS.get(args.delimiter),
        rating_scale=args.rating_scale,
        duplicates=args.duplicates,
    )


def read_file(args, path: str, progress: bool = False) -> Ratings:
    """``path`` read with the data flags; the bytes read and hashed are shown as a bar (with
    ``progress``) or, unless --quiet, as ETA lines."""
    with counted(Path(path).name, progress, not getattr(args, "quiet", False)) as report:
        return read_ratings(path, **reader_options(args), report=report)


def load_full(args, progress: bool = False) -> Ratings:
    """All ratings of ``--ratings`` or of ``--dataset`` (found, else downloaded)."""
    if args.ratings:
        return read_file(args, args.ratings, progress)
    with counted(args.dataset, progress, not getattr(args, "quiet", False)) as report:
        data = load_movielens(args.dataset, args.data_dir, download=args.download,
                              progress=progress, report=report)  # fmt: skip
    if args.rating_scale is not None:
        lo, hi = args.rating_scale
        if data.ratings.min() < lo or data.ratings.max() > hi:
            raise ValueError(
                f"{args.dataset} has ratings in [{data.ratings.min():g}, {data.ratings.max():g}]"
                f", outside --rating-scale {lo:g} {hi:g}"
            )
    return data


def load_split(args, progress: bool = False) -> tuple[Ratings, Ratings, int]:
    """(train, test, n_unknown): explicit files, or a seeded split of one file or a release.

    The training part is indexed on its own users and items; test ratings of a user or item
    not in it keep index ``UNKNOWN`` and are counted (``test_size=0``: an empty test).
    """
    train, test = load_parts(args, progress)
    return (train, *align(train, test))


def load_parts(args, progress: bool = False) -> tuple[Ratings, Ratings]:
    """(train, test) as :func:`load_split` cuts them, the test part on its own id maps (not
    yet aligned to the training part's)."""
    split = getattr(args, "split", None)
    if split is not None:
        if args.ratings or args.train or args.test or args.test_size is not None:
            raise ValueError(f"--split {split} is a split of ml-100k's u.data: it does not go "
                             "with --ratings, --train/--test or --test-size")  # fmt: skip
        if args.dataset != "ml-100k":
            raise ValueError(f"--split {split}: only ml-100k ships canonical splits "
                             f"({', '.join(CANONICAL_SPLITS)}), not {args.dataset}")  # fmt: skip
        full = load_full(args, progress)
        tr, te = canonical_split(full, split)
        train = reindex(full.subset(tr))
        return train, full.subset(te)
    if args.train or args.test:
        if not (args.train and args.test):
            raise ValueError("--train and --test go together")
        if args.ratings:
            raise ValueError("give either --ratings or --train/--test, not both")
        train = read_file(args, args.train, progress)
        return train, read_file(args, args.test, progress)
    full = load_full(args, progress)
    test_size = 0.2 if args.test_size is None else args.test_size
    if test_size == 0:
        return full, full.subset(np.empty(0, dtype=np.int64))
    n = len(full)  # counted twice: shuffled, then indexed (the training part, the test part)
    with counted("", progress, not getattr(args, "quiet", False), " ratings") as report:
        report("splitting (shuffle + index)", 0, 2 * n)
        tr, te = train_test_split(n, test_size, args.seed)
        report("splitting (shuffle + index)", n, 2 * n)
        train = reindex(full.subset(tr))
        report("splitting (shuffle + index)", n + len(tr), 2 * n)
        test = full.subset(te)
        report("splitting (shuffle + index)", 2 * n, 2 * n)
    return train, test


def top_items(model, u: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(item indices, clipped predicted ratings) of the top-k unseen items of user index ``u``
    (``UNKNOWN``: ranked by the fallback)."""
    top, scores = model._recommend_indices(np.array([u], dtype=np.int64), k)
    keep = np.isfinite(scores[0])
    return top[0][keep], scores[0][keep]


def top_json(model, u: int, k: int, item_ids, titles) -> list[dict]:
    """The top-k list as JSON records: raw item id, title (or null), predicted rating."""
    return items_json(*top_items(model, u, k), item_ids, titles, "rating")


def items_json(index, values, item_ids, titles, key: str) -> list[dict]:
    """JSON records of items by index: raw id, title (or null) and one value under ``key``."""
    out = []
    for i, v in zip(index, values, strict=True):
        raw = raw_id(item_ids[i])
        out.append({"item": raw, "title": titles.get(raw), key: float(v)})
    return out


def print_top(model, u: int, raw_user, k: int, item_ids, titles) -> None:
    """Print the top-k unseen items for user index ``u`` with titles and predicted ratings."""
    top, values = top_items(model, u, k)
    header = f"top {len(top)} unseen movies for user {raw_user}:"
    print_items(header, top, values, item_ids, titles)


def print_items(header: str, index, values, item_ids, titles, fmt: str = "5.2f") -> None:
    """A numbered list of items (by index) with one value each and the title."""
    print(header)
    for rank, (i, v) in enumerate(zip(index, values, strict=True), start=1):
        raw = raw_id(item_ids[i])
        print(f"{rank:3d}. {v:{fmt}}  {titles.get(raw, f'item {raw}')}")


def plural(n: int, word: str) -> str:
    """'1 rating', '2 ratings'."""
    return f"{n} {word}{'' if n == 1 else 's'}"
