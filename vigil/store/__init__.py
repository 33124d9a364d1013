"""The store: payments, decisions, labels, reviews, lists, rules, API keys, idempotency keys
and online state snapshots, through SQLAlchemy Core on SQLite (embedded) or PostgreSQL.

See ``docs/store.md`` for the tables, the URLs accepted, the durability settings and how to
add a migration.
"""

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
    "ApiKey",
    "BatchResult",
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
    "Snapshot",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownApiKey",
    "UnknownPayment",
    "UnknownReview",
    "add_column",
    "metadata",
]
