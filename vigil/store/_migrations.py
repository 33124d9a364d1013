"""Versioned schema migrations: an ordered list in code, applied one transaction each.

The database records each applied migration in ``schema_version``. ``Store.migrate()`` applies
those the database lacks, in order, each in its own transaction together with its
``schema_version`` row, so a failed migration leaves the database at the version before it.
Several processes may migrate at once: a lock (SQLite's write lock, a PostgreSQL advisory
lock) makes one of them do the work and the others find it done.

A migration is history: once shipped it never changes, so migration 1 defines its tables
here, as they were, rather than importing :mod:`vigil.store._tables` (which follows the latest
migration). To change the schema:

1. write a function that takes a :class:`sqlalchemy.Connection` and changes the schema with
   SQLAlchemy Core (``Table.create``, ``Index.create``, :func:`add_column`, ``UPDATE``...);
2. append ``Migration(2, "what it does", that_function)`` to :data:`MIGRATIONS`;
3. change the table in ``_tables.py`` to match (a test compares the two).

SQLite's ``ALTER TABLE`` adds, renames and drops columns but cannot change a column's type or
constraints; for that, create the new table, copy the rows, drop the old one and rename.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from vigil._errors import ConfigError
from vigil.store._tables import NAMING, SEQ, UTCDateTime


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version (1, 2, ...), what it does, and how."""

    version: int
    description: str
    apply: Callable[[sa.Connection], None]


def add_column(conn: sa.Connection, table: str, column: sa.Column) -> None:
    """``ALTER TABLE table ADD COLUMN ...`` for ``column``, in the backend's own dialect.

    A column added to a table that holds rows must be nullable or have a ``server_default``.
    """
    sa.Table(table, sa.MetaData(), column)  # the compiler reads the column's table
    spec = conn.dialect.ddl_compiler(conn.dialect, None).get_column_specification(column)
    quoted = conn.dialect.identifier_preparer.quote(table)
    conn.exec_driver_sql(f"ALTER TABLE {quoted} ADD COLUMN {spec}")


def _v1_all_tables(conn: sa.Connection) -> None:
    md = sa.MetaData(naming_convention=NAMING)
    sa.Table(
        "payments", md,
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("payment_id", sa.String, nullable=False, unique=True),
        sa.Column("ts", UTCDateTime, nullable=False, index=True),
        sa.Column("amount", sa.Double, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("card_id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("merchant_id", sa.String, nullable=False),
        *(sa.Column(name, sa.String) for name in (
            "terminal_id", "device_id", "ip", "email", "card_country", "ip_country",
            "merchant_country", "channel")),
        sa.Column("extra", sa.JSON),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "decisions", md,
        sa.Column("payment_id", sa.String, sa.ForeignKey("payments.payment_id"),
                  primary_key=True),
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
    sa.Table(
        "labels", md,
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("payment_id", sa.String, sa.ForeignKey("payments.payment_id"),
                  nullable=False, index=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("is_fraud", sa.Boolean, nullable=False),
        sa.Column("reported_at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "reviews", md,
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("payment_id", sa.String, sa.ForeignKey("payments.payment_id"),
                  nullable=False, unique=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("outcome", sa.String),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("closed_by", sa.String),
        sa.Index(None, "status", "id"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "list_items", md,
        sa.Column("list_name", sa.String, primary_key=True),
        sa.Column("value", sa.String, primary_key=True),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("reason", sa.String),
    )
    sa.Table(
        "rules", md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
    )
    sa.Table(
        "api_keys", md,
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("prefix", sa.String, nullable=False, unique=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("scope", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "idempotency", md,
        sa.Column("api_key_id", SEQ, sa.ForeignKey("api_keys.id"), primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("request_hash", sa.String, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False, index=True),
        sa.Column("completed_at", UTCDateTime),
    )
    sa.Table(
        "state_snapshots", md,
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("taken_at", UTCDateTime, nullable=False),
        sa.Column("payments_seq", sa.BigInteger, nullable=False),
        sa.Column("labels_seq", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sqlite_autoincrement=True,
    )
    md.create_all(conn, checkfirst=False)


def _v2_identity(conn: sa.Connection) -> None:
    add_column(conn, "api_keys", sa.Column("tenant", sa.String, nullable=False,
                                           server_default="default"))
    md = sa.MetaData(naming_convention=NAMING)
    sa.Table(
        "identity_sessions", md,
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
        sa.Column("signal_facts", sa.LargeBinary),
        sa.Column("insights", sa.JSON),
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
    sa.Table(
        "identity_files", md,
        sa.Column("session_id", sa.String, sa.ForeignKey("identity_sessions.id"),
                  primary_key=True),
        sa.Column("purpose", sa.String, primary_key=True),
        sa.Column("content_type", sa.String, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "identity_events", md,
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String, sa.ForeignKey("identity_sessions.id"),
                  nullable=False, index=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "identity_reference", md,
        sa.Column("country", sa.String, primary_key=True),
        sa.Column("number_token", sa.String, primary_key=True),
        sa.Column("key_id", sa.String, nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=False),
        sa.Column("added_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn, checkfirst=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "payments, decisions, labels, reviews, lists, rules, api keys, idempotency, "
                 "state snapshots", _v1_all_tables),
    Migration(2, "api keys' tenant; identity verification sessions, files, events and the "
                 "ID-number reference", _v2_identity),
)
"""Every migration, in order. Append; never edit or remove one that has shipped."""


def check_migrations(migrations: Sequence[Migration]) -> tuple[Migration, ...]:
    """``migrations`` as a tuple, after checking that they number 1, 2, 3, ... in order."""
    migrations = tuple(migrations)
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ConfigError(f"migration versions must be 1, 2, 3, ... in order; found {versions}")
    return migrations
