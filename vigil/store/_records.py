"""What the store hands back, besides plain dicts of payments and labels: small frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

DECISIONS = ("allow", "review", "block", "request_3ds", "request_verification")
"""The decisions a payment can get, as the rules return them."""

REVIEW_OUTCOMES = ("approved", "refunded_as_fraud")
"""How a review case closes: the payment was fine, or it was fraud and refunded."""

SCOPES = ("score", "admin")
"""What an API key may do: ``score`` payments and send labels, or also ``admin``."""

BLOCKED_CARDS = "blocked_cards"
BLOCKED_EMAILS = "blocked_emails"
"""The lists that a review closed as ``refunded_as_fraud`` adds the card and e-mail to."""


@dataclass(frozen=True)
class BatchResult:
    """The outcome of :meth:`~vigil.store.Store.record_payments`, aligned with the batch.

    ``seqs[i]`` is the sequence number of the i-th payment, or None where its id was already
    recorded (or appeared earlier in the same batch) and nothing was written for it.
    """

    payment_ids: list[str]
    seqs: list[int | None]

    @property
    def duplicates(self) -> list[str]:
        """The ids that were not written because they were already recorded."""
        return [pid for pid, seq in zip(self.payment_ids, self.seqs, strict=True) if seq is None]

    @property
    def written(self) -> int:
        """How many payments were written."""
        return sum(seq is not None for seq in self.seqs)


class FirstReports(NamedTuple):
    """The earliest report time of any label and of a fraud label of one payment (or None)."""

    labelled: datetime | None
    fraud: datetime | None


@dataclass(frozen=True)
class Review:
    """A review case: one per payment that a rule (or a person) sent to manual review."""

    id: int
    payment_id: str
    status: Literal["open", "closed"]
    outcome: str | None
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None


@dataclass(frozen=True)
class ClosedReview:
    """What closing a review did, in one transaction: the case, the label, the list entries.

    ``label`` is the ``review_outcome`` label as recorded (with its ``seq``), ready for the
    online state; ``listed`` holds the ``(list_name, value)`` pairs newly added to lists.
    """

    review: Review
    label: dict[str, Any]
    listed: list[tuple[str, str]]


@dataclass(frozen=True)
class ListItem:
    """One value on a named list (``blocked_cards``, ``suspicious_emails``, ...)."""

    list_name: str
    value: str
    added_at: datetime
    source: str
    reason: str | None


@dataclass(frozen=True)
class RuleSet:
    """One saved version of the rules text; the highest version is the one in force."""

    version: int
    text: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: never its secret, only a hash of it."""

    id: int
    prefix: str
    scope: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    tenant: str = "default"  # whose identity sessions the key sees

    @property
    def active(self) -> bool:
        """True unless the key was revoked."""
        return self.revoked_at is None


@dataclass(frozen=True)
class IdempotencyResult:
    """The answer of :meth:`~vigil.store.Store.idempotency_begin`.

    ``state`` is one of:

    - ``claimed``: the caller owns the key; run the request, then ``idempotency_complete``
      (or ``idempotency_release`` if it failed and may be retried);
    - ``replay``: the request was done before; answer ``status_code`` and ``body`` again;
    - ``conflict``: the key was used with a different request body;
    - ``in_progress``: the same request is running right now elsewhere.
    """

    state: Literal["claimed", "replay", "conflict", "in_progress"]
    status_code: int | None = None
    body: Any = None


@dataclass(frozen=True)
class Snapshot:
    """A saved online feature state and the last payment and label sequence numbers it holds.

    Restarting from it means loading ``payload`` and replaying only the payments after
    ``payments_seq`` and the labels after ``labels_seq``.
    """

    id: int
    taken_at: datetime
    payments_seq: int
    labels_seq: int
    payload: bytes
