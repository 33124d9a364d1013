"""Prequential splits: fold dates, labels known at a cutoff, known-compromised cards."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from vigil import ConfigError
from vigil.evaluation import (
    Fold,
    as_utc,
    in_window,
    known_compromised_mask,
    labels_known_at,
    prequential_folds,
)

T0 = datetime(2018, 8, 1, tzinfo=UTC)


def _ts(*days_hours):
    return pa.array([T0 + timedelta(days=d, hours=h) for d, h in days_hours],
                    pa.timestamp("us", tz="UTC"))


def test_handbook_fold_dates():
    test = prequential_folds("2018-08-15")
    assert [f.train_start.date().isoformat() for f in test] == [
        "2018-08-15", "2018-08-08", "2018-08-01", "2018-07-25"]
    first = test[0]
    assert first.train_end == as_utc("2018-08-22")
    assert first.test_start == as_utc("2018-08-29")  # 7 days of delay
    assert first.test_end == as_utc("2018-09-05")
    assert first.delay == timedelta(days=7)
    valid = prequential_folds("2018-07-11")
    assert valid[-1].train_start == as_utc("2018-06-20")


def test_bad_fold_arguments():
    with pytest.raises(ConfigError):
        prequential_folds("2018-08-15", n_folds=0)
    with pytest.raises(ConfigError, match="not a date"):
        prequential_folds("15/08/2018")


def test_in_window_is_half_open():
    ts = _ts((0, 0), (1, 0), (2, 0))
    mask = in_window(ts, T0, T0 + timedelta(days=2))
    assert mask.tolist() == [True, True, False]


def test_labels_known_at_counts_only_fraud_reported_strictly_before_the_cutoff():
    ids = pa.array(["a", "b", "c", "d"])
    labels = pa.table({
        "payment_id": ["a", "b", "c", "d"],
        "kind": ["dispute"] * 4,
        "is_fraud": [True, True, False, True],
        "reported_at": _ts((1, 0), (3, 0), (0, 1), (2, 0)),
    })
    cutoff = T0 + timedelta(days=2)
    # a reported before; b after; c not fraud; d exactly at the cutoff: not yet known
    assert labels_known_at(ids, labels, cutoff).tolist() == [True, False, False, False]
    assert labels_known_at(ids, labels, None).tolist() == [True, True, False, True]


def test_known_compromised_cards_are_removed_day_by_day():
    # training week days 0-6, delay 7-13, test 14-20
    fold = Fold(T0, T0 + timedelta(days=7), T0 + timedelta(days=14), T0 + timedelta(days=21))
    payments = pa.table({
        "payment_id": ["p1", "p2", "p3", "p4", "p5", "p6", "p7"],
        "ts": _ts((2, 10), (8, 10), (-3, 10), (14, 5), (15, 5), (16, 5), (15, 12)),
        "card_id": ["A", "B", "C", "A", "B", "C", "D"],
    })
    # p1 (card A) fraud in training week, reported day 9: A removed from the whole test week
    # p2 (card B) fraud on day 8 reported day 15 at 10:00: B known from test day 16 on
    # p3 (card C) fraud before train_start: never counts, C stays
    labels = pa.table({
        "payment_id": ["p1", "p2", "p3"],
        "kind": ["fraud_report"] * 3,
        "is_fraud": [True, True, True],
        "reported_at": _ts((9, 10), (15, 10), (4, 10)),
    })
    drop = known_compromised_mask(payments, labels, fold)
    assert drop.tolist() == [False, False, False, True, False, False, False]
    payments2 = payments.set_column(1, "ts", _ts((2, 10), (8, 10), (-3, 10), (14, 5), (16, 5),
                                                 (16, 6), (15, 12)))
    drop2 = known_compromised_mask(payments2, labels, fold)
    assert drop2.tolist() == [False, False, False, True, True, False, False]
    assert not np.any(drop2[:3])  # only test-day payments are ever dropped
