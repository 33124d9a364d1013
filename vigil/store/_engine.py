"""Database URLs and engines: SQLite set up for durability and sharing, PostgreSQL by URL.

SQLite runs with a write-ahead log (readers never block the writer), ``synchronous=FULL``
(the log is flushed to disk at every commit, so a commit survives a power cut, not only a
crash), foreign keys on, and a busy timeout so several service processes can share one file.
Write transactions start with ``BEGIN IMMEDIATE``: they take the write lock first, so two
writers queue on the busy timeout instead of deadlocking when both upgrade a read lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from vigil._errors import ConfigError

WRITE = "vigil_write"
"""Execution option that marks a connection's next transaction as a write."""


def database_url(url: str | os.PathLike[str]) -> sa.URL:
    """The SQLAlchemy URL for what a user gives: a URL, or a file path meaning SQLite.

    ``postgresql://`` and ``postgres://`` get the psycopg (version 3) driver.

    >>> database_url("postgresql://vigil@db/risk").drivername
    'postgresql+psycopg'
    >>> database_url(":memory:").render_as_string()
    'sqlite://'
    """
    text = os.fspath(url)
    if text == ":memory:":
        return sa.make_url("sqlite://")
    if "://" not in text:
        return sa.make_url("sqlite://").set(database=str(Path(text).expanduser().absolute()))
    try:
        parsed = sa.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"'{text}' is not a database URL; use sqlite:///PATH.db, a file path "
                          "or postgresql://USER@HOST/DB") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        return parsed
    raise ConfigError(f"database '{parsed.drivername}' is not supported; use sqlite:///PATH.db, "
                      "a file path or postgresql://USER@HOST/DB")


def create_engine(url: sa.URL, *, busy_timeout: float) -> sa.Engine:
    """An engine for ``url`` with vigil's settings (see the module docstring)."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout)
    # no pool_pre_ping: it costs a round trip per transaction; after a server restart the
    # first statement fails (StoreUnavailable), SQLAlchemy drops the stale pool, and the
    # next transaction reconnects
    try:
        return sa.create_engine(url, pool_size=8, max_overflow=16)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{url.drivername} needs the Python package '{exc.name}'; "
                          "pip install 'vigil[serve]'") from exc


def _sqlite_engine(url: sa.URL, busy_timeout: float) -> sa.Engine:
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False,
                                               "timeout": busy_timeout}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one connection, else every checkout is a new database
    else:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(pool_size=8, max_overflow=16)
    engine = sa.create_engine(url, **kwargs)
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # the driver's own transaction handling would BEGIN lazily and deferred: we BEGIN
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
