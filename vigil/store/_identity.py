"""Identity verification sessions: their state, uploaded files, history, the worker's claims,
and the ID-number reference table.

The store never sees personal data in the clear: images, claimed and verified identities,
context (e-mail, IP, ...), face embeddings and error texts (which may quote a date read
from the document) arrive as sealed blobs (``bytes``) from
:mod:`vigil.identity`'s key ring and go back out the same way. What stays readable is what
an audit needs: ids, tenant, status, error codes, timestamps.

A session moves through::

    requires_input ──submit──► processing ──worker──► verified
          ▲                        │
          └──── an error code ─────┘          requires_input / processing ──cancel──► canceled

The worker's claim is one conditional ``UPDATE`` (status ``processing`` and no live lease)
that sets a fresh claim token and a lease; the result is written only where the token still
matches, in the same transaction as the status change. A worker that dies loses its lease
and another claims the session; a worker that comes back late finds its token gone and
writes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from vigil.store._base import StoreBase
from vigil.store._errors import Conflict, NotFound, StoreError
from vigil.store._tables import (
    identity_events,
    identity_files,
    identity_reference,
    identity_sessions,
)

SESSION_STATUSES = ("requires_input", "processing", "verified", "canceled")
"""A verification session's statuses (Stripe Identity's names)."""

_SEALED = ("claimed", "context", "verified_outputs", "face_embedding", "last_error_reason",
           "signal_facts")


class UnknownVerificationSession(NotFound):
    """No verification session with this id for this tenant (another tenant's is unknown too:
    the answer does not reveal that it exists)."""


class SessionStateError(Conflict):
    """The session's status does not allow this (e.g. uploading to a verified session)."""


class SessionIncomplete(StoreError):
    """A session is submitted without a file its checks need; ``missing`` lists them and
    ``column`` names the first (the field a service reports)."""

    def __init__(self, session_id: str, missing: list[str]) -> None:
        super().__init__(f"{session_id} cannot be submitted: {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} missing; upload "
                         f"{'it' if len(missing) == 1 else 'them'} first")
        self.missing = missing
        self.column = missing[0]


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file's description (its sealed bytes stay in the store)."""

    purpose: str
    content_type: str
    size: int
    uploaded_at: datetime


@dataclass(frozen=True)
class SessionEvent:
    """One step of a session's history: the audit trail that survives redaction."""

    at: datetime
    status: str
    attempt: int
    error_code: str | None


@dataclass(frozen=True)
class StoredSession:
    """A verification session as stored; the ``bytes`` fields are sealed blobs."""

    id: str
    tenant: str
    status: str
    checks: list[str]
    options: dict[str, Any]
    attempt: int
    last_error_code: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    redacted_at: datetime | None
    claimed: bytes | None = field(default=None, repr=False)
    context: bytes | None = field(default=None, repr=False)
    verified_outputs: bytes | None = field(default=None, repr=False)
    face_embedding: bytes | None = field(default=None, repr=False)
    last_error_reason: bytes | None = field(default=None, repr=False)
    insights: list[dict[str, Any]] | None = None
    files: dict[str, StoredFile] = field(default_factory=dict)
    history: tuple[SessionEvent, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a processing session, good until ``lease_until``."""

    session_id: str
    token: str
    attempt: int
    lease_until: datetime


class IdentityMixin(StoreBase):
    """Verification sessions, their files and history, worker claims, the ID reference."""

    # sessions

    def create_verification_session(
            self, session_id: str, tenant: str, checks: list[str], options: Mapping[str, Any], *,
            claimed: bytes | None = None, context: bytes | None = None) -> StoredSession:
        """Store a new session in ``requires_input``. ``options`` must hold no personal data
        (it is stored in the clear); ``claimed`` and ``context`` are sealed blobs."""
        now = self._now()
        with self._write() as conn:
            conn.execute(identity_sessions.insert().values(
                id=session_id, tenant=tenant, status="requires_input", checks=list(checks),
                options=dict(options), claimed=claimed, context=context, attempt=0,
                created_at=now, updated_at=now))
            self._event(conn, session_id, "requires_input", 0, None, now)
        return self.get_verification_session(tenant, session_id)

    def get_verification_session(self, tenant: str | None, session_id: str) -> StoredSession:
        """The session, its files and history; ``tenant=None`` finds any tenant's (for the
        worker). Raises :class:`UnknownVerificationSession`."""
        with self._read() as conn:
            return self._session(conn, tenant, session_id, full=True)

    def list_verification_sessions(self, tenant: str, *, limit: int = 100,
                                   status: str | None = None) -> list[StoredSession]:
        """The tenant's sessions, newest first (without files and history)."""
        query = sa.select(identity_sessions).where(identity_sessions.c.tenant == tenant)
        if status is not None:
            query = query.where(identity_sessions.c.status == status)
        query = query.order_by(identity_sessions.c.created_at.desc(),
                               identity_sessions.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [_session(row) for row in conn.execute(query).mappings()]

    def put_verification_file(self, tenant: str, session_id: str, purpose: str,
                              content_type: str, data: bytes, size: int) -> StoredFile:
        """Store (or replace) the session's file for ``purpose``; ``data`` is sealed and
        ``size`` the plaintext's. Only while the session is ``requires_input``."""
        now = self._now()
        with self._write() as conn:
            self._require(conn, tenant, session_id, ("requires_input",), "upload a file to")
            conn.execute(identity_files.delete().where(
                identity_files.c.session_id == session_id, identity_files.c.purpose == purpose))
            conn.execute(identity_files.insert().values(
                session_id=session_id, purpose=purpose, content_type=content_type, size=size,
                data=data, uploaded_at=now))
            conn.execute(identity_sessions.update().where(identity_sessions.c.id == session_id)
                         .values(updated_at=now))
        return StoredFile(purpose, content_type, size, now)

    def verification_files(self, session_id: str) -> dict[str, bytes]:
        """The session's sealed files by purpose (for the worker)."""
        with self._read() as conn:
            return {row.purpose: bytes(row.data) for row in conn.execute(
                sa.select(identity_files.c.purpose, identity_files.c.data)
                .where(identity_files.c.session_id == session_id))}

    def submit_verification_session(self, tenant: str, session_id: str, *,
                                    required: Iterable[str]) -> StoredSession:
        """``requires_input`` → ``processing`` (a new attempt), if every ``required`` file is
        there; raises :class:`SessionIncomplete` naming those missing."""
        now = self._now()
        with self._write() as conn:
            row = self._require(conn, tenant, session_id, ("requires_input",), "submit")
            have = set(conn.execute(sa.select(identity_files.c.purpose).where(
                identity_files.c.session_id == session_id)).scalars())
            missing = [p for p in required if p not in have]
            if missing:
                raise SessionIncomplete(session_id, missing)
            attempt = row["attempt"] + 1
            conn.execute(identity_sessions.update().where(identity_sessions.c.id == session_id)
                         .values(status="processing", attempt=attempt, submitted_at=now,
                                 updated_at=now, claim_token=None, lease_until=None))
            self._event(conn, session_id, "processing", attempt, None, now)
        return self.get_verification_session(tenant, session_id)

    def cancel_verification_session(self, tenant: str, session_id: str) -> StoredSession:
        """→ ``canceled``, from ``requires_input`` or ``processing`` (a worker's result for it
        is then discarded). Raises :class:`SessionStateError` from the other statuses."""
        now = self._now()
        with self._write() as conn:
            row = self._require(conn, tenant, session_id, ("requires_input", "processing"),
                                "cancel")
            conn.execute(identity_sessions.update().where(identity_sessions.c.id == session_id)
                         .values(status="canceled", updated_at=now, claim_token=None,
                                 lease_until=None))
            self._event(conn, session_id, "canceled", row["attempt"], None, now)
        return self.get_verification_session(tenant, session_id)

    def redact_verification_session(self, tenant: str, session_id: str) -> StoredSession:
        """Delete every personal part of a session for good: files, claimed and verified
        data, context, face embedding, insights and error texts. Kept: id, tenant, status,
        timestamps, error codes and the history. A session in ``requires_input`` is canceled
        too; one in ``processing`` is refused (:class:`SessionStateError`): cancel it or wait.
        Redacting twice changes nothing."""
        now = self._now()
        with self._write() as conn:
            row = self._require(conn, tenant, session_id,
                                ("requires_input", "verified", "canceled"), "redact")
            if row["redacted_at"] is not None:
                return self._session(conn, tenant, session_id, full=True)
            status = "canceled" if row["status"] == "requires_input" else row["status"]
            conn.execute(identity_files.delete().where(
                identity_files.c.session_id == session_id))
            conn.execute(identity_sessions.update().where(identity_sessions.c.id == session_id)
                         .values(status=status, redacted_at=now, updated_at=now,
                                 insights=None, **dict.fromkeys(_SEALED)))
            if status != row["status"]:
                self._event(conn, session_id, status, row["attempt"], None, now)
            self._event(conn, session_id, "redacted", row["attempt"], None, now)
            return self._session(conn, tenant, session_id, full=True)

    # the worker

    def claim_verification_session(self, lease: timedelta) -> Claim | None:
        """Claim the oldest ``processing`` session nobody holds a live lease on, or None."""
        for _ in range(3):  # another worker took our candidate: look again
            now = self._now()
            free = sa.and_(identity_sessions.c.status == "processing",
                           sa.or_(identity_sessions.c.lease_until.is_(None),
                                  identity_sessions.c.lease_until <= now))
            with self._write() as conn:
                row = conn.execute(
                    sa.select(identity_sessions.c.id, identity_sessions.c.attempt).where(free)
                    .order_by(identity_sessions.c.submitted_at).limit(1)
                    .with_for_update(skip_locked=True)).first()
                if row is None:
                    return None
                token, until = secrets.token_hex(16), now + lease
                if conn.execute(identity_sessions.update().where(
                        identity_sessions.c.id == row.id, free)
                        .values(claim_token=token, lease_until=until)).rowcount == 1:
                    return Claim(row.id, token, row.attempt, until)
        return None

    def renew_verification_claim(self, claim: Claim, lease: timedelta) -> Claim | None:
        """Extend a live claim's lease; None if the claim was lost (expired and taken,
        canceled)."""
        until = self._now() + lease
        with self._write() as conn:
            if conn.execute(identity_sessions.update().where(*_held(claim))
                            .values(lease_until=until)).rowcount != 1:
                return None
        return Claim(claim.session_id, claim.token, claim.attempt, until)

    def finish_verification_session(
            self, claim: Claim, status: str, *, error_code: str | None = None,
            error_reason: bytes | None = None, verified_outputs: bytes | None = None,
            face_embedding: bytes | None = None, signal_facts: bytes | None = None,
            insights: list[dict[str, Any]] | None = None) -> datetime | None:
        """Write a processed attempt's result (``verified`` or ``requires_input``), if the
        claim still holds: returns the time written (the session's ``updated_at``), or None
        (and writes nothing) if the claim is lost.
        ``signal_facts``: what the cross-session signals keep of the attempt (sealed)."""
        if status not in ("verified", "requires_input"):
            raise ValueError(f"a processed session is verified or requires_input, not {status!r}")
        now = self._now()
        with self._write() as conn:
            done = conn.execute(identity_sessions.update().where(*_held(claim)).values(
                status=status, last_error_code=error_code, last_error_reason=error_reason,
                verified_outputs=verified_outputs, face_embedding=face_embedding,
                signal_facts=signal_facts, insights=insights, claim_token=None, lease_until=None,
                updated_at=now)).rowcount == 1
            if done:
                self._event(conn, claim.session_id, status, claim.attempt, error_code, now)
        return now if done else None

    def verification_facts_since(self, since: datetime | None
                                 ) -> list[tuple[str, datetime, bytes | None, bytes | None]]:
        """Sessions changed at or after ``since`` (all when None) that the cross-session
        signals must know of, oldest change first: ``(id, updated_at, signal_facts,
        face_embedding)``; both blobs are None for a redacted session (forget it)."""
        s = identity_sessions.c
        query = (sa.select(s.id, s.updated_at, s.signal_facts, s.face_embedding)
                 .where(sa.or_(s.signal_facts.is_not(None), s.redacted_at.is_not(None)))
                 .order_by(s.updated_at, s.id))
        if since is not None:
            query = query.where(s.updated_at >= since)
        with self._read() as conn:
            return [(r[0], r[1], _blob(r[2]), _blob(r[3])) for r in conn.execute(query)]

    # the ID-number reference

    def add_identity_reference(self, country: str, key_id: str, number_token: str,
                               record: bytes) -> None:
        """Store (or replace) a reference record, found later by its number's keyed hash."""
        now = self._now()
        pk = (identity_reference.c.country == country,
              identity_reference.c.number_token == number_token)
        with self._write() as conn:
            conn.execute(identity_reference.delete().where(*pk))
            conn.execute(identity_reference.insert().values(
                country=country, number_token=number_token, key_id=key_id, record=record,
                added_at=now))

    def find_identity_reference(self, country: str, tokens: Mapping[str, str]
                                ) -> tuple[str, bytes] | None:
        """The ``(number token, sealed record)`` for a number whose token under each key id
        is ``tokens[key_id]``, or None."""
        conditions = [sa.and_(identity_reference.c.key_id == kid,
                              identity_reference.c.number_token == token)
                      for kid, token in tokens.items()]
        if not conditions:
            return None
        with self._read() as conn:
            row = conn.execute(sa.select(identity_reference.c.number_token,
                                         identity_reference.c.record)
                               .where(identity_reference.c.country == country,
                                      sa.or_(*conditions)).limit(1)).first()
        return None if row is None else (row.number_token, bytes(row.record))

    def count_identity_reference(self) -> int:
        """How many reference records the store holds."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(identity_reference)
                                ).scalar_one()

    # helpers

    def _require(self, conn: sa.Connection, tenant: str, session_id: str,
                 allowed: tuple[str, ...], action: str) -> Any:
        query = sa.select(identity_sessions).where(identity_sessions.c.id == session_id,
                                                   identity_sessions.c.tenant == tenant)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise UnknownVerificationSession(f"there is no verification session {session_id!r}")
        if row["status"] not in allowed:
            hint = " (cancel it or wait until it is processed)" \
                if row["status"] == "processing" else ""
            raise SessionStateError(f"cannot {action} {session_id}: it is {row['status']}"
                                    f"{hint}; only a session that is {' or '.join(allowed)} "
                                    "can be")
        return row

    def _session(self, conn: sa.Connection, tenant: str | None, session_id: str, *,
                 full: bool) -> StoredSession:
        query = sa.select(identity_sessions).where(identity_sessions.c.id == session_id)
        if tenant is not None:
            query = query.where(identity_sessions.c.tenant == tenant)
        row = conn.execute(query).mappings().first()
        if row is None:
            raise UnknownVerificationSession(f"there is no verification session {session_id!r}")
        if not full:
            return _session(row)
        files = {r.purpose: StoredFile(r.purpose, r.content_type, r.size, r.uploaded_at)
                 for r in conn.execute(sa.select(
                     identity_files.c.purpose, identity_files.c.content_type,
                     identity_files.c.size, identity_files.c.uploaded_at)
                     .where(identity_files.c.session_id == session_id))}
        history = tuple(SessionEvent(r.at, r.status, r.attempt, r.error_code)
                        for r in conn.execute(sa.select(identity_events).where(
                            identity_events.c.session_id == session_id)
                            .order_by(identity_events.c.seq)))
        return _session(row, files, history)

    def _event(self, conn: sa.Connection, session_id: str, status: str, attempt: int,
               error_code: str | None, at: datetime) -> None:
        conn.execute(identity_events.insert().values(
            session_id=session_id, at=at, status=status, attempt=attempt, error_code=error_code))


def _held(claim: Claim) -> tuple[Any, ...]:
    return (identity_sessions.c.id == claim.session_id,
            identity_sessions.c.status == "processing",
            identity_sessions.c.claim_token == claim.token)


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _session(row: Any, files: dict[str, StoredFile] | None = None,
             history: tuple[SessionEvent, ...] = ()) -> StoredSession:
    return StoredSession(
        id=row["id"], tenant=row["tenant"], status=row["status"], checks=list(row["checks"]),
        options=dict(row["options"]), attempt=row["attempt"],
        last_error_code=row["last_error_code"],
        last_error_reason=_blob(row["last_error_reason"]),
        created_at=row["created_at"], updated_at=row["updated_at"],
        submitted_at=row["submitted_at"], redacted_at=row["redacted_at"],
        claimed=_blob(row["claimed"]), context=_blob(row["context"]),
        verified_outputs=_blob(row["verified_outputs"]),
        face_embedding=_blob(row["face_embedding"]), insights=row["insights"],
        files=files or {}, history=history)
