"""Dataset loading and splitting (MovieLens files are never committed)."""

from mfrec.data.binary import binarize
from mfrec.data.dataset import Ratings
from mfrec.data.features import (
    Features,
    implicit_feedback,
    rating_dates,
    read_features,
    release_features,
)
from mfrec.data.io import DataError, align, read_ratings
from mfrec.data.movielens import (
    DownloadError,
    fetch_release,
    find_ml100k,
    find_release,
    load_ml100k,
    load_movielens,
    place_release,
)
from mfrec.data.registry import RELEASES, get_release
from mfrec.data.splits import CANONICAL_SPLITS, canonical_split, kfold, train_test_split

__all__ = [
    "CANONICAL_SPLITS",
    "RELEASES",
    "DataError",
    "DownloadError",
    "Features",
    "Ratings",
    "align",
    "binarize",
    "canonical_split",
    "fetch_release",
    "find_ml100k",
    "find_release",
    "place_release",
    "get_release",
    "implicit_feedback",
    "kfold",
    "load_ml100k",
    "load_movielens",
    "rating_dates",
    "read_ratings",
    "read_features",
    "release_features",
    "train_test_split",
]
