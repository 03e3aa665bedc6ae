"""Dataset loading and splitting (MovieLens files are never committed)."""

from mfrec.data.binary import binarize
from mfrec.data.dataset import Ratings
from mfrec.data.io import DataError, align, read_ratings
from mfrec.data.movielens import (
    DownloadError,
    fetch_release,
    find_ml100k,
    find_release,
    load_ml100k,
    load_movielens,
)
from mfrec.data.registry import RELEASES, get_release
from mfrec.data.splits import kfold, train_test_split

__all__ = [
    "RELEASES",
    "DataError",
    "DownloadError",
    "Ratings",
    "align",
    "binarize",
    "fetch_release",
    "find_ml100k",
    "find_release",
    "get_release",
    "kfold",
    "load_ml100k",
    "load_movielens",
    "read_ratings",
    "train_test_split",
]
