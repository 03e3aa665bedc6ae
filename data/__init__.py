"""Dataset loading and splitting (MovieLens files are never committed)."""

from data.dataset import Ratings
from data.io import DataError, align, read_ratings
from data.movielens import (
    DownloadError,
    fetch_release,
    find_ml100k,
    find_release,
    load_ml100k,
    load_movielens,
)
from data.registry import RELEASES, get_release
from data.splits import kfold, train_test_split

__all__ = [
    "RELEASES",
    "DataError",
    "DownloadError",
    "Ratings",
    "align",
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
