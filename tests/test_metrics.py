"""Fraud metrics: each checked against a hand-computed value or an independent definition."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import ConfigError
from vigil.evaluation import (
    average_precision,
    card_precision_at_k,
    fraud_metrics,
    money_recall_at_fpr,
    recall_at_fpr,
    recall_by_group,
    roc_auc,
    summarize_folds,
    threshold_at_fpr,
)


def test_card_precision_takes_each_cards_max_and_removes_detected_cards():
    # day 1: card a (fraud) scores highest, card b legit; k=1 -> precision 1, a detected
    # day 2: card a again scores highest but is removed; card c (fraud) next -> precision 1
    y = [1, 0, 1, 0, 1]
    scores = [0.9, 0.5, 0.99, 0.1, 0.6]
    cards = ["a", "b", "a", "b", "c"]
    days = [1, 1, 2, 2, 2]
    mean, per_day = card_precision_at_k(y, scores, cards, days, k=1)
    assert per_day == [1.0, 1.0]
    assert mean == 1.0
    # without removal, card a wins day 2 again (still a fraud): same precision, different card
    _, per_day_kept = card_precision_at_k(y, scores, cards, days, k=1, remove_detected=False)
    assert per_day_kept == [1.0, 1.0]


def test_card_precision_counts_a_card_once_per_day_with_its_highest_score():
    # card a has one fraud and one legit payment; its max score (0.8, the legit one) ranks it
    y = [0, 1, 0]
    scores = [0.8, 0.1, 0.5]
    cards = ["a", "a", "b"]
    mean, _ = card_precision_at_k(y, scores, cards, [0, 0, 0], k=1)
    assert mean == 1.0  # card a is compromised that day, and ranked first by its max score
    mean2, _ = card_precision_at_k(y, scores, cards, [0, 0, 0], k=2)
    assert mean2 == 0.5


def test_recall_at_fpr_never_exceeds_the_false_positive_budget():
    y = np.array([0] * 1000 + [1] * 10)
    scores = np.r_[np.linspace(0, 1, 1000), np.full(10, 0.995)]
    # 1% of 1000 legit = 10 may be flagged: threshold is the 11th highest legit score
    t = threshold_at_fpr(y, scores, 0.01)
    assert np.sum(scores[:1000] > t) <= 10
    assert recall_at_fpr(y, scores, 0.01) == 1.0
    assert recall_at_fpr(y, scores, 0.001) == 0.0  # only one legit may be flagged: 0.995 < 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=80),
       st.sampled_from([0.001, 0.01, 0.1, 0.5]))
def test_recall_at_fpr_matches_its_definition(rows, fpr):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    if y.all() or not y.any():
        assert np.isnan(recall_at_fpr(y, s, fpr))
        return
    t = threshold_at_fpr(y, s, fpr)
    assert np.mean(s[~y] > t) <= fpr + 1e-12
    assert recall_at_fpr(y, s, fpr) == pytest.approx(np.mean(s[y] > t))


def test_money_recall_weights_by_amount():
    y = np.array([1, 1, 0, 0])
    s = np.array([0.9, 0.1, 0.2, 0.3])
    amounts = np.array([300.0, 100.0, 5.0, 5.0])
    # budget allows no legit: threshold is the top legit score 0.3; only the 300 fraud caught
    assert money_recall_at_fpr(y, s, amounts, 0.01) == pytest.approx(0.75)


def test_auc_and_ap_agree_with_hand_computed_values():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)
    assert average_precision(y, s) == pytest.approx((1.0 + 2 / 3) / 2)
    assert np.isnan(roc_auc([0, 0], [0.1, 0.2]))


def test_metrics_reject_mismatched_or_nan_input():
    with pytest.raises(ConfigError, match="differ in length"):
        roc_auc([0, 1], [0.5])
    with pytest.raises(ConfigError, match="NaN"):
        average_precision([0, 1], [0.5, float("nan")])
    with pytest.raises(ConfigError, match="between 0 and 1"):
        recall_at_fpr([0, 1], [0.1, 0.2], 1.5)


def test_fraud_metrics_and_fold_summary():
    rng = np.random.default_rng(0)
    folds = []
    for _ in range(3):
        y = rng.random(500) < 0.05
        s = y * 0.5 + rng.random(500)
        folds.append(fraud_metrics(y, s, cards=rng.integers(0, 50, 500),
                                   days=rng.integers(0, 3, 500), amounts=rng.random(500)))
    assert set(folds[0]) >= {"auc", "ap", "cp@100", "recall@1%fpr", "money_recall@1%fpr"}
    summary = summarize_folds(folds)
    aucs = [f["auc"] for f in folds]
    assert summary["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert summary["auc"]["std"] == pytest.approx(np.std(aucs, ddof=1))


def test_recall_by_group_counts_only_frauds():
    out = recall_by_group([1, 1, 0, 1], [1, 0, 1, 1], ["x", "x", "x", "y"])
    assert out["x"] == {"frauds": 2.0, "flagged": 1.0, "recall": 0.5}
    assert out["y"]["recall"] == 1.0
