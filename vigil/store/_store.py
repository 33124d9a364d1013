"""The store: one class whose methods are grouped by topic in the mixin modules."""

from __future__ import annotations

from vigil.store._access import AccessMixin
from vigil.store._identity import IdentityMixin
from vigil.store._lists import ListsMixin
from vigil.store._payments import PaymentsMixin
from vigil.store._reviews import ReviewsMixin
from vigil.store._rulesets import RulesMixin
from vigil.store._snapshots import SnapshotsMixin


class Store(PaymentsMixin, ReviewsMixin, ListsMixin, RulesMixin, AccessMixin, SnapshotsMixin,
            IdentityMixin):
    """vigil's relational store: payments and decisions, labels, reviews, lists, rules, API
    keys, idempotency keys, online state snapshots and identity verification sessions, on
    SQLite or PostgreSQL.

    Every method is one transaction; the store is safe to share between threads and, on
    SQLite, between processes on one machine.

    >>> from datetime import UTC, datetime
    >>> store = Store.open("sqlite://", migrate=True)      # in memory; a path or URL in use
    >>> seq = store.record_payment(
    ...     {"payment_id": "p1", "ts": datetime(2024, 3, 1, 12, tzinfo=UTC), "amount": 42.0,
    ...      "currency": "EUR", "card_id": "c1", "customer_id": "u1", "merchant_id": "m1",
    ...      "email": "a@example.com"},
    ...     {"risk_score": 82, "risk_level": "highest", "probability": 0.61,
    ...      "decision": "review", "reasons": ["amount_sum_by_card_24h"]})
    >>> store.get_payment("p1")["decision"]["decision"], store.list_reviews()[0].payment_id
    ('review', 'p1')
    >>> closed = store.close_review(store.list_reviews()[0].id, "refunded_as_fraud", by="ana")
    >>> closed.label["is_fraud"], sorted(store.members("blocked_cards"))
    (True, ['c1'])
    >>> store.contains("blocked_emails", "a@example.com")
    True
    >>> store.close()
    """
