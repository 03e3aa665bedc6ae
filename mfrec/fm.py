"""``mfrec train --model bfm``: the Bayesian factorization machine on everything the data has.

:class:`DataFM` is :class:`~mfrec.job.FeatureFM` (Gibbs-sampled :class:`BayesianFM` over the
ids, the user and item features it is built with, and the implicit feedback N(u) and R(i) of
the ratings it is fitted on) that dates the ratings itself, as the default model does: given
``fit(timestamps=...)`` and ``dates`` on, a block of the ratings' ``date_unit`` periods.
"""

from __future__ import annotations

import numpy as np

from mfrec.data.features import Features, date_features, date_periods
from mfrec.job import (
    DATE_UNIT,
    FM_CHAINS,
    FM_FACTORS,
    FM_SAMPLES,
    MAX_KEPT,
    FeatureFM,
    check_date_unit,
    dated_ratings,
    usable_cores,
)

BURN_IN = 20
"""``--model bfm``'s burn-in sweeps of each chain; it runs the default's FM member's chains
(:data:`~mfrec.job.FM_CHAINS` of :data:`~mfrec.job.FM_SAMPLES` kept sweeps, averaged)."""


class DataFM(FeatureFM):
    """:class:`~mfrec.job.FeatureFM` with the ratings' dates from ``fit(timestamps=...)``.

    With ``dates`` on and timestamps given, ``date_span_`` is the first and last training
    period and each rating's period is a feature of a rating block; :meth:`predict` then takes
    each pair's ``timestamps`` (a date outside the span counts as its nearest end; none given:
    a training pair's own date, any other pair the latest period), and ``recommend`` ranks as
    of the latest period. Such a model cannot be saved (a model file holds no rating block).
    """

    takes_timestamps = True
    """``fit`` and ``predict`` take ``timestamps=`` (see the class doc)."""

    def __init__(self, *, dates: bool = True, date_unit: str = DATE_UNIT, **kw) -> None:
        kw.setdefault("item_implicit", True)
        super().__init__(**kw)
        self.dates, self.date_unit = bool(dates), check_date_unit(date_unit)

    @property
    def dated(self) -> bool:
        """Whether the fitted model has a date block."""
        return not self.factor_form

    def fit(self, users, items, ratings, n_users=None, n_items=None, callback=None, *,
            timestamps=None):  # fmt: skip
        """:meth:`FeatureFM.fit`, with a block of the ratings' periods when ``dates`` is on and
        ``timestamps`` (seconds since 1970, one per rating) are given."""
        self.set_rating_dates(None)
        self.__dict__.pop("date_span_", None)
        if self.dates and timestamps is not None:
            n = np.shape(ratings)[0]
            self.date_span_, dates = dated_ratings(timestamps, self.date_unit, n)
            self.set_rating_dates((np.asarray(users), np.asarray(items), dates))
        return super().fit(users, items, ratings, n_users, n_items, callback)

    def rows_at(self, timestamps) -> Features:
        """The date rows of ``timestamps`` on the training span's vocabulary."""
        return date_features(date_periods(timestamps, self.date_unit), *self.date_span_,
                             self.date_unit)  # fmt: skip

    def predict(self, users, items, timestamps=None) -> np.ndarray:
        """Predicted ratings of raw-id pairs; with a date block each at its ``timestamps``
        (one per pair; none: see the class doc)."""
        if self.factor_form:
            return super().predict(users, items)
        if timestamps is None:
            rows = self.dates_of(self._user_index(users, "users"), self._item_index(items, "items"))
        else:
            rows = self.rows_at(timestamps)
        return super().predict(users, items, rows)

    def _predict_indices(self, users, items, timestamps=None) -> np.ndarray:
        """``predict`` on index arrays, ``timestamps`` as there (the CLI scores this way)."""
        if self.factor_form or getattr(self, "_query", None) is not None:  # within predict
            return super()._predict_indices(users, items)
        u, i = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        self._query = self.dates_of(u, i) if timestamps is None else self.rows_at(timestamps)
        try:
            return super()._predict_indices(users, items)
        finally:
            self._query = None


def bfm_model(seed: int = 0, user_features: Features | None = None,
              item_features: Features | None = None, dates: bool = True) -> DataFM:  # fmt: skip
    """``--model bfm`` before its flags: k=10, the default's FM member's chains (each 20
    burn-in + 40 kept sweeps, every sample stored, seeds ``seed`` + c) averaged, on every
    core; the features given, N(u) and R(i), and the ratings' months when ``dates``."""
    return DataFM(
        user_features=user_features, item_features=item_features, dates=dates,
        n_factors=FM_FACTORS, burn_in=BURN_IN, n_samples=FM_SAMPLES,
        thin=-(-FM_SAMPLES // MAX_KEPT), n_chains=FM_CHAINS, n_threads=usable_cores(),
        seed=seed,
    )  # fmt: skip
