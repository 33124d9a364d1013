"""The store's errors, under :class:`~vigil.VigilError`.

Bad values in a payment, decision or label raise :class:`~vigil.SchemaError` (naming the
record and the field); a bad URL or option raises :class:`~vigil.ConfigError`. Everything else
the store refuses on purpose is a :class:`StoreError`. The two middle branches map onto the
answers a service gives: :class:`NotFound` is a 404, :class:`Conflict` a 409.

::

    VigilError
    └── StoreError                the store cannot do what was asked
        ├── StoreUnavailable      the database cannot be reached, opened, or stayed locked
        ├── SchemaVersionError    the database's schema is newer than this vigil, or not migrated
        ├── NotFound
        │   ├── UnknownPayment    a label or review names a payment the store does not hold
        │   ├── UnknownReview
        │   └── UnknownApiKey
        └── Conflict
            ├── DuplicatePayment  the payment id is already recorded
            ├── ReviewExists      the payment already has a review case
            ├── ReviewClosed      the review case is already closed
            └── IdempotencyError  completing or releasing a key that is not claimed
"""

from __future__ import annotations

from vigil._errors import VigilError


class StoreError(VigilError):
    """The store cannot do what was asked."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened, or stayed locked past the busy timeout."""


class SchemaVersionError(StoreError):
    """The database's schema version does not match what this vigil knows."""


class NotFound(StoreError):
    """A record named by the caller does not exist."""


class UnknownPayment(NotFound):
    """A payment id that the store does not hold."""


class UnknownReview(NotFound):
    """A review id that the store does not hold."""


class UnknownApiKey(NotFound):
    """An API key id that the store does not hold."""


class Conflict(StoreError):
    """The request contradicts what is already stored."""


class DuplicatePayment(Conflict):
    """The payment id is already recorded; nothing was written.

    ``payment_id`` is the duplicate id.
    """

    def __init__(self, payment_id: str) -> None:
        super().__init__(f"payment '{payment_id}' is already recorded; payment ids must be unique")
        self.payment_id = payment_id


class ReviewExists(Conflict):
    """The payment already has a review case (one per payment)."""


class ReviewClosed(Conflict):
    """The review case is already closed; a case is closed once."""


class IdempotencyError(Conflict):
    """Completing or releasing an idempotency key that is not claimed and in progress."""
