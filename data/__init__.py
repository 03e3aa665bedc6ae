"""Dataset loading and splitting (MovieLens files are never committed)."""

from data.dataset import Ratings
from data.io import DataError, align, read_ratings
from data.movielens import DownloadError, find_ml100k, load_ml100k
from data.splits import kfold, train_test_split

__all__ = [
    "DataError",
    "DownloadError",
    "Ratings",
    "align",
    "find_ml100k",
    "kfold",
    "load_ml100k",
    "read_ratings",
    "train_test_split",
]
