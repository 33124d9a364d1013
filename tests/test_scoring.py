"""The in-process scorer: online features into the model, reasons, decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from vigil.features import (
    Count,
    FeatureSet,
    FraudRate,
    Max,
    Ratio,
    Relative,
    TimeSinceLast,
    Value,
)
from vigil.scoring import Describer, Scorer, elapsed_words, window_words


@pytest.fixture
def world(small_world):
    return small_world


@pytest.fixture
def bundle(small_bundle):
    return small_bundle


def test_window_and_elapsed_words():
    assert window_words(3_600_000_000) == "hour"
    assert window_words(7 * 86_400_000_000) == "week"
    assert window_words(30 * 86_400_000_000) == "30 days"
    assert window_words(14 * 86_400_000_000) == "14 days"
    assert window_words(15 * 60_000_000) == "15 minutes"
    assert elapsed_words(45) == "45 seconds"
    assert elapsed_words(3600) == "1 hour"
    assert elapsed_words(1.5 * 86_400) == "1.5 days"


def test_sentences_say_what_the_feature_means():
    fs = FeatureSet("s", {"card": "card_id", "terminal": "terminal_id"}, [
        Count(by="card", window="1h"), FraudRate(by="terminal", window="7d"),
        Relative("amount", by="card", window="30d"), TimeSinceLast(by="card"),
        Max("amount", by="card", window="7d", include_current=False), Value("amount"),
        Ratio(Count(by="card", window="1h"), Count(by="card", window="7d"))])
    d = Describer(fs.specs(), fs.entity_keys)
    assert d.sentence("count_by_card_1h", 14.0) == "14 payments on this card in the last hour"
    assert d.sentence("count_by_card_1h", 1.0) == "1 payment on this card in the last hour"
    assert d.sentence("fraud_rate_by_terminal_7d", 0.25) == (
        "25% of this terminal's payments labelled in the last week were fraud")
    assert d.sentence("amount_vs_mean_by_card_30d", 5.36) == (
        "amount is 5.4× this card's average in the last 30 days")
    assert d.sentence("seconds_since_last_by_card", 120.0) == (
        "2 minutes since this card's previous payment")
    assert d.sentence("seconds_since_last_by_card", None) == (
        "no earlier payment from this card")
    assert d.sentence("amount_max_by_card_7d_prior", 1234.5) == (
        "largest amount on this card in the last week before this one: 1,234.50")
    assert d.sentence("amount", 99.0) == "amount: 99.00"
    assert d.sentence(fs.names[-1], 0.5) == (
        "the payments on this card in the last hour is 0.50× the payments on this card in the "
        "last week")


def test_scores_equal_the_batch_model_and_reasons_add_up(world, bundle):
    """The scorer's probability is the bundle's batch probability for the same features,
    and the reasons are the largest positive SHAP contributions."""
    scorer = Scorer(bundle, top_reasons=3)
    rows = world.payments.sort_by("ts").slice(0, 3000).to_pylist()
    results = []
    for row in rows:
        results.append(scorer.score(row))
        scorer.record(row)
    X = np.array([[np.nan if r.features[n] is None else r.features[n]
                   for n in bundle.feature_names] for r in results])
    batch = bundle.model.predict_proba(X)
    online = np.array([r.probability for r in results])
    np.testing.assert_allclose(online, batch, rtol=1e-4, atol=1e-7)
    contribs = bundle.model.contributions(X[:50])
    for r, c in zip(results[:50], contribs, strict=True):
        expected = [bundle.feature_names[i] for i in np.argsort(-c[:-1], kind="stable")[:3]
                    if c[i] > 0]
        assert [reason.feature for reason in r.reasons] == expected
        assert all(reason.contribution > 0 for reason in r.reasons)
        assert 0 <= r.risk_score <= 100


def test_payments_are_not_counted_until_recorded(bundle):
    scorer = Scorer(bundle)
    t = datetime(2024, 3, 1, 12, tzinfo=UTC)
    p1 = {"payment_id": "x1", "ts": t, "amount": 10.0, "card_id": "c", "terminal_id": "t"}
    p2 = {**p1, "payment_id": "x2", "ts": t.replace(minute=5)}
    scorer.score(p1)  # scored but, say, never stored: it must leave no trace
    assert scorer.score(p2).features["count_by_card_1h"] == 1.0
    scorer.record(p1)
    assert scorer.score(p2).features["count_by_card_1h"] == 2.0


def test_rules_decide_with_the_score_and_features(bundle):
    class BlockBigAmounts:  # the shape vigil.rules.RuleSet.decide returns
        def decide(self, attributes, lists):
            class Rule:
                id = "big"

                def __str__(self):
                    return "big: block if :amount: > 1000"

            class Decided:
                action = "block" if attributes["amount"] > 1000 else "allow"
                rule = Rule() if attributes["amount"] > 1000 else None
            assert "risk_score" in attributes and "count_by_card_1h" in attributes
            return Decided

    scorer = Scorer(bundle, rules=BlockBigAmounts())
    t = datetime(2024, 3, 1, 12, tzinfo=UTC)
    big = scorer.score({"payment_id": "b", "ts": t, "amount": 5000.0, "card_id": "c",
                        "terminal_id": "t"})
    small = scorer.score({"payment_id": "s", "ts": t, "amount": 5.0, "card_id": "c",
                          "terminal_id": "t"})
    assert (big.decision, big.rule) == ("block", {"id": "big",
                                                  "text": "big: block if :amount: > 1000"})
    assert (small.decision, small.rule) == ("allow", None)
    assert big.to_dict()["timing_us"]["total"] > 0


def test_scoring_without_reasons_gives_the_same_score(world, bundle):
    scorer = Scorer(bundle)
    for row in world.payments.sort_by("ts").slice(0, 200).to_pylist():
        full, plain = scorer.score(row), scorer.score(row, explain=False)
        assert plain.reasons == []
        assert plain.probability == pytest.approx(full.probability, rel=1e-4, abs=1e-7)
        assert abs(plain.risk_score - full.risk_score) <= 1  # rounding at a boundary
        scorer.record(row)
