"""Ratings files: the reader is in :mod:`mfrec.data.parse`; ``align`` maps test onto train."""

from __future__ import annotations

from mfrec.data.dataset import align
from mfrec.data.parse import DataError, read_ratings, sniff_delimiter

__all__ = ["DataError", "align", "read_ratings", "sniff_delimiter"]
