"""The store: payments, decisions, labels, reviews, lists, rules, API keys (with their
tenant), idempotency keys, online state snapshots and identity verification sessions,
through SQLAlchemy Core on SQLite (embedded) or PostgreSQL.

See ``docs/store.md`` for the tables, the URLs accepted, the durability settings and how to
add a migration.
"""

from vigil.store._access import tenant_name
from vigil.store._errors import (
    Conflict,
    DuplicatePayment,
    IdempotencyError,
    NotFound,
    ReviewClosed,
    ReviewExists,
    SchemaVersionError,
    StoreError,
    StoreUnavailable,
    UnknownApiKey,
    UnknownPayment,
    UnknownReview,
)
from vigil.store._identity import (
    SESSION_STATUSES,
    Claim,
    SessionEvent,
    SessionIncomplete,
    SessionStateError,
    StoredFile,
    StoredSession,
    UnknownVerificationSession,
)
from vigil.store._migrations import MIGRATIONS, Migration, add_column
from vigil.store._records import (
    BLOCKED_CARDS,
    BLOCKED_EMAILS,
    DECISIONS,
    REVIEW_OUTCOMES,
    SCOPES,
    ApiKey,
    BatchResult,
    ClosedReview,
    FirstReports,
    IdempotencyResult,
    ListItem,
    Review,
    RuleSet,
    Snapshot,
)
from vigil.store._store import Store
from vigil.store._tables import metadata

__all__ = [
    "BLOCKED_CARDS",
    "BLOCKED_EMAILS",
    "DECISIONS",
    "MIGRATIONS",
    "REVIEW_OUTCOMES",
    "SCOPES",
    "SESSION_STATUSES",
    "ApiKey",
    "BatchResult",
    "Claim",
    "ClosedReview",
    "Conflict",
    "DuplicatePayment",
    "FirstReports",
    "IdempotencyError",
    "IdempotencyResult",
    "ListItem",
    "Migration",
    "NotFound",
    "Review",
    "ReviewClosed",
    "ReviewExists",
    "RuleSet",
    "SchemaVersionError",
    "SessionEvent",
    "SessionIncomplete",
    "SessionStateError",
    "Snapshot",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredFile",
    "StoredSession",
    "UnknownApiKey",
    "UnknownPayment",
    "UnknownReview",
    "UnknownVerificationSession",
    "add_column",
    "metadata",
    "tenant_name",
]
