"""Identity-fraud signals that only many sessions together reveal: one document under many
faces, one face under many names, a device that opens session after session, attempts that
keep failing, a verified face that earlier failed a check in a way fraud does.

:class:`IdentitySignals` remembers the processed sessions of every tenant (:meth:`observe`)
and, for a session being processed, reports what it shares with earlier ones, as
:class:`~vigil.identity.Insight` objects for people (:meth:`insights`) and as numbers for
the sign-up and payment models (:meth:`features`).

==========================  ==================================================  ===============
kind                        raised when earlier sessions of the tenant ...      level
==========================  ==================================================  ===============
``document_reused``         used this document number (same country) with a     elevated; high
                            different name or birth date, or a different face   for a face or
                                                                                2+ identities
``face_reused``             showed this face (distance < ``face_threshold``)    elevated; high
                            under a different name, birth date or document      for 2+
``face_linked_to_fraud``    showed this face and failed with one of             high if this
                            :data:`FRAUD_LIKE_ERRORS`                           one verified
``retries_after_failures``  failed, sharing the account, device or document,    low 2, elevated
                            in the last 24 h                                    3, high 6
``device_many_sessions``    came from this device in the last 24 h              elevated 5,
                                                                                high 10
``ip_many_sessions``        came from this IP address in the last 24 h          elevated 10,
                                                                                high 25
==========================  ==================================================  ===============

Identities are compared on what both sessions hold: names with
:func:`~vigil.identity._id_numbers.names_match` (so "ANNA ERIKSSON" and "Anna Maria Eriksson"
are one person), birth dates and document numbers exactly.

.. warning::
   Point in time: a session is compared only with sessions *created before it*
   (``created_at`` strictly earlier), never with later ones, even when they were observed
   first (a replay, a backfill, a worker that fell behind). Otherwise a model trained on
   these features would learn from the future. Tenants never see each other's sessions.

The memory is in-process and rebuilt by the service from its store on start (as the face
index is); :meth:`forget` is redaction and drops everything a session left, its face included.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from vigil._errors import DataError
from vigil.identity._face_index import FaceIndex
from vigil.identity._id_numbers import names_match
from vigil.identity._types import Insight, SessionFacts

# --- thresholds (named, so a reviewer can find and argue with them) ------------------------

# sessions from one device in the last 24 h before the signal is raised (elevated / high)
DEVICE_SESSIONS_24H_ELEVATED = 5
DEVICE_SESSIONS_24H_HIGH = 10
# an IP is shared more often (offices, carrier NAT), so it needs more sessions
IP_SESSIONS_24H_ELEVATED = 10
IP_SESSIONS_24H_HIGH = 25
# failed sessions of the same account, device or document in the last 24 h (low/elevated/high)
RETRY_FAILURES_LOW = 2
RETRY_FAILURES_ELEVATED = 3
RETRY_FAILURES_HIGH = 6
# other identities behind one face or one document before "elevated" becomes "high"
OTHER_IDENTITIES_HIGH = 2
# failures that suggest someone tried to pass as another person or forged a document, as
# opposed to a blurry photo or an expired card
FRAUD_LIKE_ERRORS = frozenset(
    {"selfie_face_mismatch", "id_number_mismatch", "document_unverified_other"}
)
# an insight lists at most this many related sessions (the most recent)
MAX_RELATED_SESSIONS = 20
# distinct identities are counted up to this many (a bot farm's device need not cost O(n²))
MAX_IDENTITIES_COUNTED = 50

OUTCOMES = ("verified", "requires_input")

# the windows of the counting features; their names derive from these keys
WINDOWS: dict[str, timedelta] = {"24h": timedelta(hours=24), "30d": timedelta(days=30)}
# the windows the insights look at (keys of WINDOWS)
RETRY_WINDOW = "24h"
MANY_SESSIONS_WINDOW = "24h"
_SESSION_COUNT_KEYS = ("device", "ip")

FEATURE_NAMES: tuple[str, ...] = (
    "session_count_by_document",
    "identity_count_by_document",
    "session_count_by_face",
    "identity_count_by_face",
    "fraud_failure_count_by_face",
    *(f"session_count_by_{key}_{w}" for key in _SESSION_COUNT_KEYS for w in WINDOWS),
    *(f"failure_count_{w}" for w in WINDOWS),
)

_DOC_SEPARATORS = re.compile(r"[\s\-./<]+")


def _utc(moment: datetime) -> datetime:
    # naive times are read as UTC, so naive and aware sessions can be compared
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _document_key(facts: SessionFacts) -> tuple[str, str] | None:
    if not facts.document_number:
        return None
    number = _DOC_SEPARATORS.sub("", facts.document_number).upper()
    country = (facts.document_country or "").strip().upper()
    return (country, number) if number else None


@dataclass(frozen=True)
class _Seen:
    """What an observed session keeps (its face lives in the tenant's face index)."""

    session_id: str
    created_at: datetime  # UTC
    outcome: str
    error_code: str | None
    account_id: str | None
    device_id: str | None
    ip: str | None
    document: tuple[str, str] | None
    name: str | None
    birth_date: object  # date | None
    has_face: bool

    @property
    def failed(self) -> bool:
        return self.outcome != "verified"

    @property
    def fraud_like(self) -> bool:
        return self.failed and self.error_code in FRAUD_LIKE_ERRORS

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.created_at, self.session_id)


def _seen(facts: SessionFacts) -> _Seen:
    return _Seen(
        session_id=facts.session_id,
        created_at=_utc(facts.created_at),
        outcome=facts.outcome,
        error_code=facts.error_code,
        account_id=facts.account_id,
        device_id=facts.device_id,
        ip=facts.ip,
        document=_document_key(facts),
        name=facts.name,
        birth_date=facts.birth_date,
        has_face=facts.face_embedding is not None,
    )


def _differences(a: _Seen, b: _Seen) -> list[str]:
    """How two sessions' identities differ, comparing only what both have."""
    found = []
    if a.name and b.name and not names_match(a.name, b.name):
        found.append("name")
    if a.birth_date is not None and b.birth_date is not None and a.birth_date != b.birth_date:
        found.append("date of birth")
    if a.document and b.document and a.document != b.document:
        found.append("document number")
    return found


def _count_identities(sessions: Iterable[_Seen]) -> int:
    """Distinct identities among ``sessions``, at most :data:`MAX_IDENTITIES_COUNTED`: each
    session joins the first earlier group whose first session it does not differ from
    (in order of creation, so the count does not depend on the order sessions arrived)."""
    leaders: list[_Seen] = []
    for seen in sorted(sessions, key=lambda s: s.order):
        if not any(not _differences(seen, leader) for leader in leaders):
            leaders.append(seen)
            if len(leaders) == MAX_IDENTITIES_COUNTED:
                break
    return len(leaders)


def _related(sessions: Iterable[_Seen]) -> tuple[str, ...]:
    ordered = sorted(sessions, key=lambda s: s.order)
    return tuple(s.session_id for s in ordered[-MAX_RELATED_SESSIONS:])


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _identities(count: int, other: str = "") -> str:
    words = _plural(count, f"{other}identity", f"{other}identities")
    return f"at least {words}" if count >= MAX_IDENTITIES_COUNTED else words


@dataclass
class _Tenant:
    """One tenant's memory: sessions by id, time-ordered lists by shared key, the faces."""

    sessions: dict[str, _Seen] = field(default_factory=dict)
    # (kind, value) -> sorted [(created_at, session_id)]; kind: account, device, ip, document,
    # and failed_account, failed_device, failed_document for the failed sessions alone
    by_key: dict[tuple[str, object], list[tuple[datetime, str]]] = field(default_factory=dict)
    faces: FaceIndex | None = None


# a shared IP is too weak to tie failed attempts to one person, so retries ignore it
_RETRY_KINDS = ("account", "device", "document")


def _keys(seen: _Seen, *, indexed: bool = False) -> list[tuple[str, object]]:
    """The values ``seen`` shares with other sessions; ``indexed`` adds the failure keys
    under which a failed session is also filed."""
    keys: list[tuple[str, object]] = []
    for kind, value in (
        ("account", seen.account_id),
        ("device", seen.device_id),
        ("ip", seen.ip),
        ("document", seen.document),
    ):
        if value:
            keys.append((kind, value))
            if indexed and seen.failed and kind in _RETRY_KINDS:
                keys.append((f"failed_{kind}", value))
    return keys


@dataclass
class _Context:
    """What one session shares with the earlier sessions of its tenant."""

    document: list[_Seen]
    document_other: list[_Seen]  # with a different identity or face
    document_other_face: list[_Seen]
    face: list[_Seen]
    face_other: list[_Seen]  # with a different identity
    face_fraud: list[_Seen]
    counts: dict[tuple[str, str], int]  # (device|ip, window) -> earlier sessions
    recent: dict[str, list[_Seen]]  # device|ip -> its sessions in MANY_SESSIONS_WINDOW
    failures: dict[str, list[_Seen]]  # window -> failed sessions (account/device/document)


class IdentitySignals:
    """Cross-session identity-fraud signals, per tenant, point in time.

    ``face_threshold`` is the Euclidean distance under which two face embeddings are the same
    person (0.6 for dlib's model); ``dim`` the embedding length.

    >>> from datetime import datetime
    >>> signals = IdentitySignals()
    >>> signals.observe(SessionFacts("s1", "acme", datetime(2026, 1, 1, 9), "verified",
    ...                              document_number="X1", document_country="UTO",
    ...                              name="Anna Maria Eriksson"))
    >>> later = SessionFacts("s2", "acme", datetime(2026, 1, 2, 9), "verified",
    ...                      document_number="X1", document_country="UTO", name="Bo Lind")
    >>> [(i.kind, i.level, i.related_sessions) for i in signals.insights(later)]
    [('document_reused', 'elevated', ('s1',))]
    >>> signals.features(later)["identity_count_by_document"]
    1.0
    """

    def __init__(self, face_threshold: float = 0.6, *, dim: int = 128):
        if not face_threshold > 0:
            raise DataError(f"face_threshold must be a positive distance, not {face_threshold!r}")
        self.face_threshold = float(face_threshold)
        self.dim = dim
        self._lock = threading.RLock()
        self._tenants: dict[str, _Tenant] = {}
        self._tenant_of: dict[str, str] = {}  # session id -> tenant

    # --- memory --------------------------------------------------------------------------

    def _check(self, facts: SessionFacts) -> None:
        if not facts.session_id or not facts.tenant:
            raise DataError("session facts need a session_id and a tenant")
        if facts.outcome not in OUTCOMES:
            raise DataError(
                f"a session's outcome is 'verified' or 'requires_input', not {facts.outcome!r}"
            )
        if not isinstance(facts.created_at, datetime):
            raise DataError("a session's created_at must be a datetime")

    def observe(self, facts: SessionFacts) -> None:
        """Remember a processed session; observing the same session id again replaces it.

        Replacing (rather than adding each attempt) keeps the memory a function of what the
        store holds, one result per session, so a service that rebuilds it on start sees
        exactly what a long-running one saw. A session's earlier failed attempts share its
        ``created_at`` and would never count for it anyway (point in time).
        """
        self._check(facts)
        with self._lock:
            if facts.session_id in self._tenant_of:
                self.forget(facts.session_id)
            tenant = self._tenants.setdefault(facts.tenant, _Tenant())
            seen = _seen(facts)
            if facts.face_embedding is not None:
                if tenant.faces is None:
                    tenant.faces = FaceIndex(self.dim)
                tenant.faces.add(facts.session_id, facts.face_embedding)
            tenant.sessions[seen.session_id] = seen
            for key in _keys(seen, indexed=True):
                bisect.insort(tenant.by_key.setdefault(key, []), (seen.created_at, seen.session_id))
            self._tenant_of[seen.session_id] = facts.tenant

    def forget(self, session_id: str) -> None:
        """Redact a session: drop everything it left, its face included (irreversibly, see
        :class:`FaceIndex`). An unknown session id is ignored."""
        with self._lock:
            tenant_name = self._tenant_of.pop(session_id, None)
            if tenant_name is None:
                return
            tenant = self._tenants[tenant_name]
            seen = tenant.sessions.pop(session_id)
            for key in _keys(seen, indexed=True):
                entries = tenant.by_key[key]
                entries.pop(bisect.bisect_left(entries, (seen.created_at, seen.session_id)))
                if not entries:
                    del tenant.by_key[key]
            if tenant.faces is not None:
                tenant.faces.remove(session_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tenant_of)

    # --- what a session shares with earlier ones -------------------------------------------

    @staticmethod
    def _span(
        tenant: _Tenant, key: tuple[str, object], since: datetime | None, before: _Seen
    ) -> tuple[list[tuple[datetime, str]], int, int]:
        # [since, before.created_at): a session never counts one created at the same moment
        # or later, so never itself
        entries = tenant.by_key.get(key, [])
        start = 0 if since is None else bisect.bisect_left(entries, (since, ""))
        return entries, start, bisect.bisect_left(entries, (before.created_at, ""))

    def _count(
        self, tenant: _Tenant, key: tuple[str, object], since: datetime, before: _Seen
    ) -> int:
        _, start, end = self._span(tenant, key, since, before)
        return end - start

    def _earlier(
        self, tenant: _Tenant, key: tuple[str, object], since: datetime | None, before: _Seen
    ) -> list[_Seen]:
        entries, start, end = self._span(tenant, key, since, before)
        return [tenant.sessions[sid] for _, sid in entries[start:end]]

    def _context(self, facts: SessionFacts) -> _Context:
        self._check(facts)
        current = _seen(facts)
        tenant = self._tenants.get(facts.tenant, _Tenant())

        document = (
            self._earlier(tenant, ("document", current.document), None, current)
            if current.document
            else []
        )
        embedding = (
            None
            if facts.face_embedding is None
            else np.asarray(facts.face_embedding, dtype=np.float32)
        )

        face: list[_Seen] = []
        if embedding is not None and tenant.faces is not None and len(tenant.faces):
            for sid, distance in tenant.faces.within(embedding, self.face_threshold):
                seen = tenant.sessions[sid]
                if (
                    distance < self.face_threshold
                    and sid != current.session_id
                    and seen.created_at < current.created_at
                ):
                    face.append(seen)

        document_other_face = []
        if embedding is not None and tenant.faces is not None:
            for seen in document:
                other = tenant.faces.get(seen.session_id) if seen.has_face else None
                if other is not None and np.linalg.norm(other - embedding) >= self.face_threshold:
                    document_other_face.append(seen)
        different_face = {s.session_id for s in document_other_face}
        document_other = [
            s for s in document if s.session_id in different_face or _differences(current, s)
        ]

        counts: dict[tuple[str, str], int] = {}
        recent: dict[str, list[_Seen]] = {}
        failures: dict[str, list[_Seen]] = {}
        for window, span in WINDOWS.items():
            since = current.created_at - span
            for kind, value in (("device", current.device_id), ("ip", current.ip)):
                key = (kind, value)
                counts[kind, window] = self._count(tenant, key, since, current) if value else 0
                if window == MANY_SESSIONS_WINDOW:
                    recent[kind] = self._earlier(tenant, key, since, current) if value else []
            failed: dict[str, _Seen] = {}
            for kind, value in _keys(current):
                if kind in _RETRY_KINDS:
                    for seen in self._earlier(tenant, (f"failed_{kind}", value), since, current):
                        failed[seen.session_id] = seen
            failures[window] = sorted(failed.values(), key=lambda s: s.order)

        return _Context(
            document=document,
            document_other=document_other,
            document_other_face=document_other_face,
            face=sorted(face, key=lambda s: s.order),
            face_other=sorted(
                (s for s in face if _differences(current, s)), key=lambda s: s.order
            ),
            face_fraud=sorted((s for s in face if s.fraud_like), key=lambda s: s.order),
            counts=counts,
            recent=recent,
            failures=failures,
        )

    def features(self, facts: SessionFacts) -> dict[str, float]:
        """The signals as numbers (names in :data:`FEATURE_NAMES`), for the models.

        Counts are of earlier sessions of the same tenant; a session without a device, IP,
        document or face counts 0 for what it lacks.

        .. warning::
           Only sessions created before ``facts.created_at`` count, so the features are the
           same at training time (replayed) as they were live.
        """
        with self._lock:
            return self._features(self._context(facts))

    @staticmethod
    def _features(ctx: _Context) -> dict[str, float]:
        values: dict[str, float] = {
            "session_count_by_document": float(len(ctx.document)),
            "identity_count_by_document": float(_count_identities(ctx.document_other)),
            "session_count_by_face": float(len(ctx.face)),
            "identity_count_by_face": float(_count_identities(ctx.face_other)),
            "fraud_failure_count_by_face": float(len(ctx.face_fraud)),
        }
        for (kind, window), count in ctx.counts.items():
            values[f"session_count_by_{kind}_{window}"] = float(count)
        for window, sessions in ctx.failures.items():
            values[f"failure_count_{window}"] = float(len(sessions))
        return {name: values[name] for name in FEATURE_NAMES}

    def insights(self, facts: SessionFacts) -> list[Insight]:
        """The cross-session signals raised for ``facts`` by the earlier sessions of its
        tenant, strongest kinds first.

        .. warning::
           Only sessions created before ``facts.created_at`` count (see the module's note).
        """
        with self._lock:
            return self._insights(facts, self._context(facts))

    def assess(self, facts: SessionFacts) -> tuple[list[Insight], dict[str, float]]:
        """:meth:`insights` and :meth:`features` together, from one look at the memory."""
        with self._lock:
            ctx = self._context(facts)
            return self._insights(facts, ctx), self._features(ctx)

    @staticmethod
    def _insights(facts: SessionFacts, ctx: _Context) -> list[Insight]:
        found: list[Insight] = []

        if ctx.document_other:
            identities = _count_identities(ctx.document_other)
            faces = len(ctx.document_other_face)
            high = faces > 0 or identities >= OTHER_IDENTITIES_HIGH
            what = "with a different face" if faces else "under a different name or birth date"
            found.append(
                Insight(
                    "document_reused",
                    "high" if high else "elevated",
                    f"this document number was used in "
                    f"{_plural(len(ctx.document_other), 'earlier session')} {what} "
                    f"({_identities(identities, 'other ')})",
                    _related(ctx.document_other),
                )
            )

        if ctx.face_other:
            identities = _count_identities(ctx.face_other)
            verified = sum(1 for s in ctx.face_other if not s.failed)
            found.append(
                Insight(
                    "face_reused",
                    "high" if identities >= OTHER_IDENTITIES_HIGH else "elevated",
                    f"this face was seen under {_identities(identities, 'other ')} in "
                    f"{_plural(len(ctx.face_other), 'earlier session')} ({verified} verified)",
                    _related(ctx.face_other),
                )
            )

        if ctx.face_fraud:
            verified = facts.outcome == "verified"
            found.append(
                Insight(
                    "face_linked_to_fraud",
                    "high" if verified else "elevated",
                    f"{'a verified session' if verified else 'this session'} shows the face of "
                    f"{_plural(len(ctx.face_fraud), 'earlier session')} that failed a check "
                    "the way impersonation or forgery does",
                    _related(ctx.face_fraud),
                )
            )

        failures = ctx.failures[RETRY_WINDOW]
        if len(failures) >= RETRY_FAILURES_LOW:
            level = (
                "high"
                if len(failures) >= RETRY_FAILURES_HIGH
                else "elevated"
                if len(failures) >= RETRY_FAILURES_ELEVATED
                else "low"
            )
            found.append(
                Insight(
                    "retries_after_failures",
                    level,
                    f"{_plural(len(failures), 'failed session')} of the same account, device "
                    f"or document in the last {RETRY_WINDOW}",
                    _related(failures),
                )
            )

        for kind, elevated, high in (
            ("device", DEVICE_SESSIONS_24H_ELEVATED, DEVICE_SESSIONS_24H_HIGH),
            ("ip", IP_SESSIONS_24H_ELEVATED, IP_SESSIONS_24H_HIGH),
        ):
            sessions = ctx.recent[kind]
            if len(sessions) >= elevated:
                identities = _count_identities(sessions)
                where = "device" if kind == "device" else "IP address"
                found.append(
                    Insight(
                        f"{kind}_many_sessions",
                        "high" if len(sessions) >= high else "elevated",
                        f"{_plural(len(sessions), 'earlier session')} came from this "
                        f"{where} in the last {MANY_SESSIONS_WINDOW} "
                        f"({_identities(identities)})",
                        _related(sessions),
                    )
                )
        return found
