"""The review queue: a case per payment sent to manual review, closed once with an outcome.

Closing a case is one transaction that also records what it means, as Stripe Radar does: a
``review_outcome`` label (fraud or not), and, for ``refunded_as_fraud``, the payment's card and
e-mail on the ``blocked_cards`` and ``blocked_emails`` lists.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa

from vigil.store._base import StoreBase
from vigil.store._errors import ReviewClosed, ReviewExists, UnknownPayment, UnknownReview
from vigil.store._lists import add_items
from vigil.store._payments import insert_labels
from vigil.store._records import (
    BLOCKED_CARDS,
    BLOCKED_EMAILS,
    REVIEW_OUTCOMES,
    ClosedReview,
    Review,
)
from vigil.store._tables import insert_or_ignore, payments, reviews
from vigil.store._validate import choice, text


class ReviewsMixin(StoreBase):
    """The review queue."""

    def open_review(self, payment_id: str) -> Review:
        """Open a review case for a recorded payment and return it.

        A ``review`` decision opens its case when the payment is recorded; this is for sending
        any other payment to review. Raises :class:`~vigil.store.UnknownPayment` and
        :class:`~vigil.store.ReviewExists` (one case per payment).
        """
        with self._write() as conn:
            if conn.execute(sa.select(payments.c.seq).where(
                    payments.c.payment_id == payment_id)).first() is None:
                raise UnknownPayment(f"payment '{payment_id}' is not in the store; "
                                     "record it before reviewing it")
            added = conn.execute(insert_or_ignore(conn, reviews).values(
                payment_id=payment_id, status="open", opened_at=self._now(),
            ).returning(reviews.c.id)).first()
            case = _review(conn, reviews.c.payment_id == payment_id)
            assert case is not None  # inserted just now, or there before
            if added is None:
                raise ReviewExists(f"payment '{payment_id}' already has review case {case.id} "
                                   f"({case.status})")
        return case

    def get_review(self, review_id: int) -> Review:
        """The review case ``review_id``; raises :class:`~vigil.store.UnknownReview`."""
        with self._read() as conn:
            case = _review(conn, reviews.c.id == review_id)
        if case is None:
            raise UnknownReview(f"there is no review case {review_id}")
        return case

    def list_reviews(self, status: Literal["open", "closed"] | None = "open", limit: int = 100,
                     after: int | None = None) -> list[Review]:
        """Review cases in ``status`` (None: any), oldest first, at most ``limit``.

        ``after`` is the id of the last case of the previous page, to page through the queue.
        """
        query = sa.select(reviews).order_by(reviews.c.id).limit(limit)
        if status is not None:
            query = query.where(reviews.c.status == choice(status, ("open", "closed"), "status"))
        if after is not None:
            query = query.where(reviews.c.id > after)
        with self._read() as conn:
            return [Review(**row) for row in conn.execute(query).mappings()]

    def close_review(self, review_id: int, outcome: str, by: str) -> ClosedReview:
        """Close a case with ``outcome`` (``approved`` or ``refunded_as_fraud``), ``by`` whom.

        In the same transaction: records a ``review_outcome`` label (fraud for
        ``refunded_as_fraud``, reported now) and, for ``refunded_as_fraud``, adds the
        payment's card id and e-mail (where it has one) to ``blocked_cards`` and
        ``blocked_emails``. Returns the closed case, the label (with its ``seq``, for the
        online state) and the list entries added. Raises :class:`~vigil.store.UnknownReview`
        and :class:`~vigil.store.ReviewClosed` (a case is closed once).
        """
        outcome = choice(outcome, REVIEW_OUTCOMES, "outcome")
        by = text(by, "who closes the review (by)")
        now = self._now()
        with self._write("labels") as conn:
            closed = conn.execute(reviews.update().where(
                reviews.c.id == review_id, reviews.c.status == "open").values(
                status="closed", outcome=outcome, closed_at=now, closed_by=by)).rowcount
            case = _review(conn, reviews.c.id == review_id)
            if case is None:
                raise UnknownReview(f"there is no review case {review_id}")
            if not closed:
                raise ReviewClosed(f"review case {review_id} was already closed "
                                   f"({case.outcome}, by {case.closed_by} at "
                                   f"{case.closed_at:%Y-%m-%d %H:%M:%S} UTC)")
            fraud = outcome == "refunded_as_fraud"
            label: dict[str, Any] = {"payment_id": case.payment_id, "kind": "review_outcome",
                                     "is_fraud": fraud, "reported_at": now, "received_at": now}
            label["seq"] = insert_labels(conn, [dict(label)])[0]
            listed: list[tuple[str, str]] = []
            if fraud:
                card, email = conn.execute(sa.select(payments.c.card_id, payments.c.email).where(
                    payments.c.payment_id == case.payment_id)).one()
                source, reason = f"review {review_id}", f"refunded as fraud by {by}"
                items = [{"list_name": name, "value": value, "source": source, "reason": reason}
                         for name, value in ((BLOCKED_CARDS, card), (BLOCKED_EMAILS, email))
                         if value]
                listed = add_items(conn, items, now)
        return ClosedReview(case, label, listed)


def _review(conn: sa.Connection, where: sa.ColumnElement[bool]) -> Review | None:
    row = conn.execute(sa.select(reviews).where(where)).mappings().first()
    return Review(**row) if row is not None else None
