"""The store's engine, transactions and schema version; the operations build on this base."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import sqlalchemy as sa

from vigil.store._engine import WRITE, create_engine, database_url
from vigil.store._errors import SchemaVersionError, StoreUnavailable
from vigil.store._migrations import MIGRATIONS, Migration, check_migrations
from vigil.store._tables import schema_version

# PostgreSQL advisory locks (one 64-bit number each) that serialise one kind of writer across
# every process: payment writers, so that sequence numbers become visible in commit order
# (a reader that has seen seq N never later finds a smaller one appear); the same for labels;
# rule versions (max + 1); migrations. SQLite needs none: it has one writer at a time.
_LOCKS = {"migrate": 0x76_69_67_69_6C_00, "payments": 0x76_69_67_69_6C_01,
          "labels": 0x76_69_67_69_6C_02, "rules": 0x76_69_67_69_6C_03}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StoreBase:
    """Engine, transactions and migrations; :class:`~vigil.store.Store` adds the operations."""

    def __init__(self, engine: sa.Engine, *, migrations: Sequence[Migration] = MIGRATIONS,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._migrations = check_migrations(migrations)
        self._clock = clock or _utcnow
        self._ready = False

    @classmethod
    def open(cls, url: str | os.PathLike[str], *, migrate: bool = False,
             busy_timeout: float = 5.0, clock: Callable[[], datetime] | None = None,
             migrations: Sequence[Migration] = MIGRATIONS) -> Self:
        """Open the store at ``url``; with ``migrate=True``, bring its schema up to date.

        ``url`` is ``sqlite:///path.db``, a plain file path (SQLite; the folder is created),
        ``sqlite://`` or ``":memory:"`` (a private in-memory database on one connection: for
        examples and single-threaded tests), or
        ``postgresql://user@host/db`` (the psycopg driver is added). ``busy_timeout`` is how
        long, in seconds, a SQLite writer waits for another process's write to finish.
        ``clock`` returns the current time (tests pass a fake one). ``migrations`` is the list
        to migrate by, :data:`~vigil.store.MIGRATIONS` unless a test defines its own.

        Raises :class:`~vigil.store.StoreUnavailable` when the database cannot be reached and
        :class:`~vigil.store.SchemaVersionError` when its schema is newer than this code.
        """
        engine = create_engine(database_url(url), busy_timeout=busy_timeout)
        store = cls(engine, migrations=migrations, clock=clock)
        try:
            store.schema_version()
            if migrate:
                store.migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for inspection and ad-hoc queries)."""
        return self._engine

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def close(self) -> None:
        """Close every pooled connection; the store is not used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # schema version and migrations

    @property
    def latest_version(self) -> int:
        """The schema version this code migrates to (the last migration's)."""
        return self._migrations[-1].version if self._migrations else 0

    def schema_version(self) -> int:
        """The database's schema version (0 for an empty database).

        Raises :class:`~vigil.store.SchemaVersionError` if it is newer than this code knows.
        """
        with self._connect() as conn:
            return self._version(conn)

    def migrate(self) -> list[int]:
        """Apply the migrations the database lacks, each in its own transaction.

        Returns the versions applied (empty when the schema was up to date). Safe to call on
        every start and from several processes at once.
        """
        applied = []
        with self._connect() as conn:
            current = self._version(conn)
        for migration in self._migrations[current:]:
            with self._connect(write=True) as conn, conn.begin():
                self._lock(conn, "migrate")
                schema_version.create(conn, checkfirst=True)
                if self._version(conn) >= migration.version:
                    continue  # another process got here first
                migration.apply(conn)
                conn.execute(schema_version.insert().values(
                    version=migration.version, description=migration.description,
                    applied_at=self._now()))
            applied.append(migration.version)
        self._ready = True
        return applied

    def _version(self, conn: sa.Connection) -> int:
        if not sa.inspect(conn).has_table(schema_version.name):
            return 0
        version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        if version > self.latest_version:
            raise SchemaVersionError(
                f"{self.url}: the database schema is version {version}, newer than this vigil "
                f"knows (up to {self.latest_version}); upgrade vigil")
        return version

    def _check_ready(self) -> None:
        if self._ready:
            return
        version = self.schema_version()
        if version < self.latest_version:
            raise SchemaVersionError(
                f"{self.url}: the database schema is version {version}, this vigil needs "
                f"{self.latest_version}; run store.migrate() (the service migrates on start)")
        self._ready = True

    # transactions

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sa.Connection]:
        """A pooled connection; database failures become StoreUnavailable."""
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE: True})  # SQLite: BEGIN IMMEDIATE
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(f"{self.url}: {_first_line(exc.orig or exc)}") from exc

    @contextmanager
    def _write(self, *locks: str) -> Iterator[sa.Connection]:
        """A write transaction, committed on success; ``locks`` serialise writers on PostgreSQL."""
        self._check_ready()
        with self._connect(write=True) as conn, conn.begin():
            for name in sorted(locks):  # one order everywhere: no deadlock between writers
                self._lock(conn, name)
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A read-only transaction (one consistent snapshot on SQLite), rolled back after."""
        self._check_ready()
        with self._connect() as conn:
            yield conn

    def _lock(self, conn: sa.Connection, name: str) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCKS[name])))

    def _now(self) -> datetime:
        now = self._clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
