"""The store's tables as the code reads and writes them: the schema after the last migration.

The migrations (:mod:`vigil.store._migrations`) build this schema step by step; a test checks
that a database migrated from empty has exactly these tables and columns. Changing a table
here therefore always comes with a new migration.

Timestamps go through :class:`UTCDateTime`: stored as UTC, returned timezone-aware, on every
backend. Sequence numbers (``seq``) are 64-bit on PostgreSQL and SQLite's rowid (never reused,
``AUTOINCREMENT``) on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names, so that a later migration can name what it drops."""


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored as UTC and returned as a timezone-aware UTC ``datetime``.

    A naive ``datetime`` is read as UTC, as everywhere in vigil. SQLite keeps the naive UTC
    text (which sorts in time order); PostgreSQL a ``timestamp with time zone``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Type of an auto-incrementing key: SQLite needs exactly INTEGER for a rowid alias."""

metadata = sa.MetaData(naming_convention=NAMING)
"""Every table of the store, as the code uses them (for ad-hoc queries through ``engine``)."""

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

payments = sa.Table(
    "payments", metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("payment_id", sa.String, nullable=False, unique=True),
    sa.Column("ts", UTCDateTime, nullable=False, index=True),
    sa.Column("amount", sa.Double, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("card_id", sa.String, nullable=False),
    sa.Column("customer_id", sa.String, nullable=False),
    sa.Column("merchant_id", sa.String, nullable=False),
    sa.Column("terminal_id", sa.String),
    sa.Column("device_id", sa.String),
    sa.Column("ip", sa.String),
    sa.Column("email", sa.String),
    sa.Column("card_country", sa.String),
    sa.Column("ip_country", sa.String),
    sa.Column("merchant_country", sa.String),
    sa.Column("channel", sa.String),
    sa.Column("extra", sa.JSON(none_as_null=True)),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

decisions = sa.Table(
    "decisions", metadata,
    sa.Column("payment_id", sa.String, sa.ForeignKey("payments.payment_id"), primary_key=True),
    sa.Column("risk_score", sa.Integer, nullable=False),
    sa.Column("risk_level", sa.String, nullable=False),
    sa.Column("probability", sa.Double, nullable=False),
    sa.Column("decision", sa.String, nullable=False),
    sa.Column("rule_id", sa.String),
    sa.Column("rule", sa.String),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("model_version", sa.String),
    sa.Column("timings", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

labels = sa.Table(
    "labels", metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("payment_id", sa.String, sa.ForeignKey("payments.payment_id"), nullable=False,
              index=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("is_fraud", sa.Boolean, nullable=False),
    sa.Column("reported_at", UTCDateTime, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

reviews = sa.Table(
    "reviews", metadata,
    sa.Column("id", SEQ, primary_key=True, autoincrement=True),
    sa.Column("payment_id", sa.String, sa.ForeignKey("payments.payment_id"), nullable=False,
              unique=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("outcome", sa.String),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed_by", sa.String),
    sa.Index(None, "status", "id"),
    sqlite_autoincrement=True,
)

list_items = sa.Table(
    "list_items", metadata,
    sa.Column("list_name", sa.String, primary_key=True),
    sa.Column("value", sa.String, primary_key=True),
    sa.Column("added_at", UTCDateTime, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("reason", sa.String),
)

rules = sa.Table(
    "rules", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String, nullable=False),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", SEQ, primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.String, nullable=False, unique=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("scope", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("tenant", sa.String, nullable=False, server_default="default"),
    sqlite_autoincrement=True,
)

idempotency = sa.Table(
    "idempotency", metadata,
    sa.Column("api_key_id", SEQ, sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("request_hash", sa.String, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("response", sa.JSON(none_as_null=True)),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("completed_at", UTCDateTime),
)

state_snapshots = sa.Table(
    "state_snapshots", metadata,
    sa.Column("id", SEQ, primary_key=True, autoincrement=True),
    sa.Column("taken_at", UTCDateTime, nullable=False),
    sa.Column("payments_seq", sa.BigInteger, nullable=False),
    sa.Column("labels_seq", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sqlite_autoincrement=True,
)


# identity verification (migration 2). Personal data is only ever in the LargeBinary
# columns, sealed by vigil.identity's key ring before it reaches the store.

identity_sessions = sa.Table(
    "identity_sessions", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("claimed", sa.LargeBinary),
    sa.Column("context", sa.LargeBinary),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("last_error_code", sa.String),
    sa.Column("last_error_reason", sa.LargeBinary),
    sa.Column("verified_outputs", sa.LargeBinary),
    sa.Column("face_embedding", sa.LargeBinary),
    # what the cross-session signals remember of the last attempt (sealed JSON), so that every
    # process can rebuild them from the store
    sa.Column("signal_facts", sa.LargeBinary),
    sa.Column("insights", sa.JSON(none_as_null=True)),
    sa.Column("claim_token", sa.String),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("submitted_at", UTCDateTime),
    sa.Column("redacted_at", UTCDateTime),
    sa.Index(None, "tenant", "created_at"),
    sa.Index(None, "status", "lease_until"),
    sa.Index(None, "updated_at"),
)

identity_files = sa.Table(
    "identity_files", metadata,
    sa.Column("session_id", sa.String, sa.ForeignKey("identity_sessions.id"), primary_key=True),
    sa.Column("purpose", sa.String, primary_key=True),
    sa.Column("content_type", sa.String, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("uploaded_at", UTCDateTime, nullable=False),
)

identity_events = sa.Table(
    "identity_events", metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String, sa.ForeignKey("identity_sessions.id"), nullable=False,
              index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String),
    sqlite_autoincrement=True,
)

identity_reference = sa.Table(
    "identity_reference", metadata,
    sa.Column("country", sa.String, primary_key=True),
    sa.Column("number_token", sa.String, primary_key=True),
    sa.Column("key_id", sa.String, nullable=False),
    sa.Column("record", sa.LargeBinary, nullable=False),
    sa.Column("added_at", UTCDateTime, nullable=False),
)


def insert_or_ignore(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table``, in the connection's dialect.

    Add ``RETURNING`` to learn whether a row went in: an INSERT's rowcount is -1 on psycopg.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()
