"""Prequential splits that respect label delay.

A fold trains on payments in ``[train_start, train_end)``, waits ``delay`` (the labels of
those days are not known yet when the model ships), and tests on ``[test_start, test_end)``
with ``test_start = train_end + delay``. Training labels are those reported before
``test_start``: a fraud reported later counts as legitimate at training time, as it would in
production.

.. warning::
   Giving training rows labels reported after ``test_start`` leaks the future; use
   :func:`labels_known_at` rather than joining all labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """One prequential fold; all bounds are UTC datetimes, intervals half-open."""

    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime

    @property
    def delay(self) -> timedelta:
        return self.test_start - self.train_end

    def to_dict(self) -> dict[str, str]:
        return {k: getattr(self, k).isoformat() for k in
                ("train_start", "train_end", "test_start", "test_end")}


def as_utc(value: datetime | date | str) -> datetime:
    """A UTC datetime from a date, a naive or aware datetime, or an ISO 8601 string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"'{value}' is not a date; use ISO 8601, e.g. 2018-08-15") from exc
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ConfigError(f"{value!r} is not a date")


def prequential_folds(first_train_start: datetime | date | str, n_folds: int = 4, *,
                      train_days: int = 7, delay_days: int = 7, test_days: int = 7,
                      step_days: int | None = None) -> list[Fold]:
    """Folds whose training windows start at ``first_train_start`` and then step back in time.

    The Handbook's four test folds are ``prequential_folds("2018-08-15")``; its validation
    folds ``prequential_folds("2018-07-11")``.

    >>> [f.train_start.date().isoformat() for f in prequential_folds("2018-08-15")]
    ['2018-08-15', '2018-08-08', '2018-08-01', '2018-07-25']
    """
    if n_folds < 1 or train_days < 1 or test_days < 1 or delay_days < 0:
        raise ConfigError("n_folds, train_days and test_days must be >= 1 and delay_days >= 0")
    step = timedelta(days=step_days if step_days is not None else test_days)
    start = as_utc(first_train_start)
    folds = []
    for i in range(n_folds):
        train_start = start - i * step
        train_end = train_start + timedelta(days=train_days)
        test_start = train_end + timedelta(days=delay_days)
        folds.append(Fold(train_start, train_end, test_start,
                          test_start + timedelta(days=test_days)))
    return folds


def _micros(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _ts_us(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False))


def in_window(ts: pa.ChunkedArray | pa.Array, start: datetime, end: datetime) -> np.ndarray:
    """Boolean mask of timestamps in ``[start, end)``."""
    t = _ts_us(ts)
    return (t >= _micros(start)) & (t < _micros(end))


def labels_known_at(payment_ids: pa.ChunkedArray | pa.Array, labels: pa.Table,
                    cutoff: datetime | None) -> np.ndarray:
    """Per payment: True when a fraud label for it was reported strictly before ``cutoff``.

    With ``cutoff=None`` every label counts (the truth as known today, for test sets).
    """
    fraud = labels.filter(labels.column("is_fraud"))
    if cutoff is not None:
        fraud = fraud.filter(pc.less(fraud.column("reported_at"),
                                     pa.scalar(cutoff, pa.timestamp("us", tz="UTC"))))
    return np.asarray(pc.is_in(payment_ids, fraud.column("payment_id")).to_numpy(
        zero_copy_only=False), dtype=bool)


def known_compromised_mask(payments: pa.Table, labels: pa.Table, fold: Fold) -> np.ndarray:
    """Test payments of cards already known to be compromised, which the protocol removes.

    For each test day, a card is known compromised when one of its payments made on or after
    ``train_start`` had a fraud label reported before that day began. With labels reported a
    fixed 7 days after payment this is exactly the Handbook's rule (cards with fraud in the
    training week, plus those with fraud on each day of the delay period as it elapses).
    Returns a mask over ``payments``, True for payments to drop (test days only).
    """
    t = _ts_us(payments.column("ts"))
    drop = np.zeros(len(t), dtype=bool)
    in_test = np.flatnonzero((t >= _micros(fold.test_start)) & (t < _micros(fold.test_end)))
    if not len(in_test):
        return drop
    ids = payments.column("payment_id")
    cards = payments.column("card_id")
    fraud = labels.filter(labels.column("is_fraud"))
    idx = np.asarray(pc.fill_null(pc.index_in(fraud.column("payment_id"), ids), -1)
                     .to_numpy(zero_copy_only=False)).astype(np.int64)
    ok = idx >= 0
    idx = idx[ok]
    reported = _ts_us(fraud.column("reported_at"))[ok]
    since_start = t[idx] >= _micros(fold.train_start)
    fraud_cards = pd.Series(pc.take(cards, pa.array(idx[since_start])).to_numpy(
        zero_copy_only=False))
    fraud_reported = reported[since_start]
    test_cards = pd.Series(pc.take(cards, pa.array(in_test)).to_numpy(zero_copy_only=False))
    test_t = t[in_test]
    day_us = 86_400_000_000
    d0 = _micros(fold.test_start)
    while d0 < _micros(fold.test_end):
        known = fraud_cards[fraud_reported < d0].unique()
        in_day = (test_t >= d0) & (test_t < d0 + day_us)
        drop[in_test[in_day & test_cards.isin(known).to_numpy()]] = True
        d0 += day_us
    return drop
