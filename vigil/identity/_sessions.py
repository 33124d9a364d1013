"""Verification sessions: what a session asks for, the checks run in order, and the
operations on a session (create, upload, submit, read, cancel, redact), shaped after Stripe
Identity's VerificationSession.

A session asks for a ``document`` check (optionally with a matching ``selfie`` and an
``id_number`` check), or an ``id_number`` check alone. Submitted, it is ``processing`` until a
worker (:mod:`vigil.identity._worker`) runs the checks in order (document, then the selfie
against the document's portrait, then the ID number) and ends it ``verified``, or back in
``requires_input`` with the first failing check's error code, ready for new uploads and
another attempt.

The checks themselves are injected as a :class:`Checks` object: :class:`DefaultChecks` imports
the document, face and ID-number checks only when a session needs them (the OCR and face
models are the ``identity`` extra); tests pass fakes.

Every image and every personal field is sealed with the :class:`~vigil.identity.KeyRing`
before it reaches the store.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from vigil._errors import ConfigError, VigilError
from vigil.identity._crypto import KeyRing
from vigil.identity._types import (
    DOCUMENT_TYPES,
    CheckFailed,
    Claimed,
    DocumentFields,
    FaceMatch,
    Insight,
    SessionFacts,
)
from vigil.store import Store, StoredSession, StoreUnavailable

log = logging.getLogger("vigil.identity")

CHECKS = ("document", "selfie", "id_number")
"""The checks a session can ask for, in the order they run."""
SESSION_TYPES = ("document", "id_number")
"""Stripe's session types: a document (with options), or an ID number alone."""
PURPOSES = ("document_front", "document_back", "selfie")
"""What an uploaded file is for."""
MAX_FILE_BYTES = 10 * 1024 * 1024
"""The largest image accepted (10 MB)."""
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
_CONTEXT_FIELDS = ("account_id", "device_id", "ip", "email")
_MAX_METADATA_KEYS = 50
# how far back from the newest change seen the signals re-read the store (see
# VerificationSessions.catch_up_signals)
SIGNALS_MARGIN = timedelta(seconds=30)

_FACT_FIELDS = ("session_id", "tenant", "outcome", "error_code", "account_id", "device_id",
                "ip", "email", "document_number", "document_country", "name")


def facts_to_dict(facts: SessionFacts) -> dict[str, Any]:
    """A session's facts as JSON-able data, without the face embedding (stored apart)."""
    return {**{k: getattr(facts, k) for k in _FACT_FIELDS},
            "created_at": facts.created_at.isoformat(),
            "birth_date": facts.birth_date and facts.birth_date.isoformat()}


def facts_from_dict(doc: Mapping[str, Any], face: np.ndarray | None) -> SessionFacts:
    """:func:`facts_to_dict`'s inverse, with the face embedding."""
    return SessionFacts(**{k: doc.get(k) for k in _FACT_FIELDS},
                        created_at=datetime.fromisoformat(doc["created_at"]),
                        birth_date=(date.fromisoformat(doc["birth_date"])
                                    if doc.get("birth_date") else None),
                        face_embedding=face)


_CRASH_CODES = {"document": "document_unverified_other", "selfie": "selfie_unverified_other",
                "id_number": "id_number_unverified_other"}


class SessionInputError(VigilError):
    """A request about a session cannot be done as asked; ``column`` names the field (the
    service answers 4xx with it)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column


class CheckCrashed(VigilError):
    """A check raised something other than :class:`CheckFailed` (a bug, a missing model);
    ``check`` names it and the original exception is the cause."""

    def __init__(self, check: str, exc: BaseException) -> None:
        super().__init__(f"the {check} check crashed: {type(exc).__name__}: {exc}")
        self.check = check


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class SessionRequest:
    """What a session checks and how; validated on construction.

    >>> SessionRequest("document", require_matching_selfie=True, min_age=18).checks
    ('document', 'selfie')
    >>> SessionRequest("id_number").checks
    ('id_number',)
    """

    type: str = "document"
    allowed_types: tuple[str, ...] = DOCUMENT_TYPES
    require_matching_selfie: bool = False
    require_id_number: bool = False
    min_age: int | None = None

    def __post_init__(self) -> None:
        if self.type not in SESSION_TYPES:
            raise SessionInputError("type", f"{self.type!r} is not a session type; use one of "
                                    f"{', '.join(SESSION_TYPES)}")
        allowed = tuple(self.allowed_types)
        bad = [t for t in allowed if t not in DOCUMENT_TYPES]
        if bad or not allowed:
            raise SessionInputError("options.document.allowed_types",
                                    f"{bad[0] if bad else 'an empty list'!r} is not allowed; "
                                    f"choose among {', '.join(DOCUMENT_TYPES)}")
        object.__setattr__(self, "allowed_types", tuple(dict.fromkeys(allowed)))
        if self.type == "id_number" and (self.require_matching_selfie or self.min_age):
            raise SessionInputError("options.document", "a selfie and a minimum age need a "
                                    "document; use type 'document' for them")
        if self.min_age is not None and (isinstance(self.min_age, bool)
                                         or not isinstance(self.min_age, int)
                                         or not 0 < self.min_age <= 150):
            raise SessionInputError("options.document.min_age",
                                    f"{self.min_age!r} is not an age; use a whole number of "
                                    "years from 1 to 150, e.g. 18")

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks to run, in order."""
        if self.type == "id_number":
            return ("id_number",)
        return ("document", *(("selfie",) if self.require_matching_selfie else ()),
                *(("id_number",) if self.require_id_number else ()))

    @property
    def required_files(self) -> tuple[str, ...]:
        """The uploads a submit needs (a document's back is optional: passports have none)."""
        return (*(("document_front",) if "document" in self.checks else ()),
                *(("selfie",) if "selfie" in self.checks else ()))

    def accepts(self, purpose: str) -> bool:
        """Whether an upload for ``purpose`` is of use to this session."""
        return purpose in self.required_files or (
            purpose == "document_back" and "document" in self.checks)

    def to_options(self) -> dict[str, Any]:
        """The stored, non-personal form (Stripe's ``type`` and ``options``)."""
        document: dict[str, Any] = {"allowed_types": list(self.allowed_types),
                                    "require_matching_selfie": self.require_matching_selfie,
                                    "require_id_number": self.require_id_number}
        if self.min_age is not None:
            document["min_age"] = self.min_age
        return {"type": self.type, "document": document if self.type == "document" else {}}

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SessionRequest:
        """The request back from :meth:`to_options` (or an API body's ``type``/``options``)."""
        document = options.get("document") or {}
        return cls(type=options.get("type", "document"),
                   allowed_types=tuple(document.get("allowed_types") or DOCUMENT_TYPES),
                   require_matching_selfie=bool(document.get("require_matching_selfie")),
                   require_id_number=bool(document.get("require_id_number")),
                   min_age=document.get("min_age"))


def claimed_from_dict(data: Mapping[str, Any] | None) -> Claimed:
    """A :class:`Claimed` from ``{"name", "dob" (YYYY-MM-DD), "id_number",
    "id_number_country"}``, every key optional."""
    data = dict(data or {})
    dob = data.get("dob")
    if isinstance(dob, str):
        try:
            dob = date.fromisoformat(dob)
        except ValueError:
            raise SessionInputError("claimed.dob", f"{dob!r} is not a date; write YYYY-MM-DD, "
                                    "e.g. 1990-01-31") from None
    if dob is not None and not isinstance(dob, date):
        raise SessionInputError("claimed.dob", "write the date of birth as YYYY-MM-DD")
    country = data.get("id_number_country")
    return Claimed(name=data.get("name") or None, birth_date=dob,
                   id_number=data.get("id_number") or None,
                   id_number_country=country.upper() if isinstance(country, str) else None)


def claimed_to_dict(claimed: Claimed) -> dict[str, Any]:
    """The inverse of :func:`claimed_from_dict` (``None`` parts left out)."""
    out = {"name": claimed.name, "dob": claimed.birth_date and claimed.birth_date.isoformat(),
           "id_number": claimed.id_number, "id_number_country": claimed.id_number_country}
    return {k: v for k, v in out.items() if v is not None}


def _check_claimed(request: SessionRequest, claimed: Claimed) -> None:
    """An ID-number check needs the number and its country; alone (no document to read
    them from), the name and date of birth too."""
    if "id_number" not in request.checks:
        return
    need = ["id_number", "id_number_country"]
    if request.type == "id_number":
        need += ["name", "birth_date"]
    missing = [n for n in need if getattr(claimed, n) is None]
    if missing:
        names = ["dob" if n == "birth_date" else n for n in missing]
        raise SessionInputError(f"claimed.{names[0]}", f"an ID-number check needs claimed "
                                f"{', '.join(names)}")


def sniff_image(data: bytes, purpose: str = "file") -> str:
    """``image/png`` or ``image/jpeg`` from the file's first bytes; anything else (or too big,
    or empty) is a :class:`SessionInputError`."""
    if not data:
        raise SessionInputError(purpose, "the file is empty; send the image's bytes")
    if len(data) > MAX_FILE_BYTES:
        raise SessionInputError(purpose, f"the file is {len(data):,} bytes; images are "
                                f"limited to {MAX_FILE_BYTES // 2**20} MB")
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    raise SessionInputError(purpose, "not a PNG or JPEG image (judged by its first bytes); "
                            "send a photo or scan as PNG or JPEG")


# --------------------------------------------------------------------------- the checks


class Checks(Protocol):
    """The three checks a session can run; each raises :class:`CheckFailed` to send the
    session back to ``requires_input``."""

    def document(self, front: bytes, back: bytes | None, *, allowed_types: tuple[str, ...],
                 min_age: int | None, claimed: Claimed, today: date) -> DocumentFields: ...

    def selfie(self, document_image: bytes, selfie_image: bytes) -> FaceMatch: ...

    def id_number(self, claimed: Claimed) -> None: ...


class Signals(Protocol):
    """Cross-session identity signals (:class:`vigil.identity.IdentitySignals`)."""

    def observe(self, facts: SessionFacts) -> None: ...

    def insights(self, facts: SessionFacts) -> list[Insight]: ...

    def forget(self, session_id: str) -> None: ...


class DefaultChecks:
    """The real checks, imported when first needed (the OCR and face models load once).

    ``reference`` is where ID numbers are looked up (e.g. :class:`StoreReferenceSource`);
    without one, an ``id_number`` check cannot run.
    """

    def __init__(self, reference: Any | None = None) -> None:
        self.reference = reference
        self._faces: Any = None

    def document(self, front: bytes, back: bytes | None, *, allowed_types: tuple[str, ...],
                 min_age: int | None, claimed: Claimed, today: date) -> DocumentFields:
        from vigil.identity._document_check import check_document

        return check_document(front, back, allowed_types=allowed_types, min_age=min_age,
                              claimed=claimed, today=today)

    def selfie(self, document_image: bytes, selfie_image: bytes) -> FaceMatch:
        if self._faces is None:
            from vigil.identity._faces import FaceModel

            self._faces = FaceModel()
        return self._faces.check_selfie(document_image, selfie_image)

    def id_number(self, claimed: Claimed) -> None:
        from vigil.identity._id_numbers import check_id_number

        if self.reference is None:
            raise ConfigError("an id_number check needs a reference source; pass "
                              "DefaultChecks(reference=...)")
        check_id_number(claimed, self.reference)


@dataclass(frozen=True)
class Outcome:
    """What running a session's checks gave: ``verified``, or ``requires_input`` with the
    first failing check's error; the document's fields and the face match where they ran."""

    status: str
    error: CheckFailed | None = None
    document: DocumentFields | None = None
    face: FaceMatch | None = None
    id_number_verified: bool = False
    ran: tuple[str, ...] = field(default=())

    def verified_outputs(self, claimed: Claimed) -> dict[str, Any] | None:
        """Stripe's ``verified_outputs``: what the checks verified (None unless verified)."""
        if self.status != "verified":
            return None
        out: dict[str, Any] = {}
        doc = self.document
        if doc is not None:
            out.update(first_name=doc.given_names, last_name=doc.surname, name=doc.full_name,
                       dob=doc.birth_date.isoformat(), document_type=doc.document_type,
                       document_number=doc.document_number,
                       issuing_country=doc.issuing_country, nationality=doc.nationality,
                       expiration_date=doc.expiry_date and doc.expiry_date.isoformat(),
                       sex=doc.sex)
        if self.id_number_verified:
            out.update(id_number=claimed.id_number, id_number_country=claimed.id_number_country)
            if doc is None:
                out.update(name=claimed.name,
                           dob=claimed.birth_date and claimed.birth_date.isoformat())
        return out


def run_checks(request: SessionRequest, files: Mapping[str, bytes], claimed: Claimed,
               checks: Checks, *, today: date) -> Outcome:
    """Run the session's checks in order (document, selfie against the document, ID
    number), stopping at the first :class:`CheckFailed`.

    The ID-number check uses the claimed name and date of birth, or the document's where
    nothing was claimed.
    """
    document: DocumentFields | None = None
    face: FaceMatch | None = None
    ran: list[str] = []
    try:
        for check in request.checks:
            ran.append(check)
            if check == "document":
                document = checks.document(
                    files["document_front"], files.get("document_back"),
                    allowed_types=request.allowed_types, min_age=request.min_age,
                    claimed=claimed, today=today)
            elif check == "selfie":
                face = checks.selfie(files["document_front"], files["selfie"])
            else:
                checks.id_number(_with_document(claimed, document))
    except CheckFailed as failed:
        return Outcome("requires_input", failed, document, face or failed.face, False,
                       tuple(ran))
    except Exception as exc:  # a broken check, told apart from one that said no
        raise CheckCrashed(ran[-1], exc) from exc
    return Outcome("verified", None, document, face, "id_number" in request.checks, tuple(ran))


def _with_document(claimed: Claimed, document: DocumentFields | None) -> Claimed:
    if document is None:
        return claimed
    return Claimed(name=claimed.name or document.full_name,
                   birth_date=claimed.birth_date or document.birth_date,
                   id_number=claimed.id_number, id_number_country=claimed.id_number_country)


# --------------------------------------------------------------------------- the reference


@dataclass(frozen=True)
class _ReferenceRecord:
    name: str
    birth_date: date


class StoreReferenceSource:
    """The ``identity_reference`` table as a reference source for ID numbers (it stands in
    for a data provider). Numbers are found by a keyed hash and names and dates of birth are
    sealed, so the table holds no personal data in the clear.

    ``lookup`` takes the number in its normal form (as the ID-number check gives it);
    ``add`` brings a number to that form first.
    """

    def __init__(self, store: Store, keys: KeyRing) -> None:
        self.store = store
        self.keys = keys

    def add(self, country: str, id_number: str, name: str, birth_date: date) -> None:
        """Hold ``name`` and ``birth_date`` for ``country``'s ``id_number``."""
        from vigil.identity._id_numbers import validate_id_number

        country = country.strip().upper()
        try:
            number = validate_id_number(country, id_number)
        except CheckFailed as exc:
            raise SessionInputError("id_number", exc.reason) from None
        if not name.strip():
            raise SessionInputError("name", "the name is empty")
        token = self.keys.lookup_tokens(f"{country}|{number}")[self.keys.current]
        record = self.keys.seal_json({"name": name.strip(), "dob": birth_date.isoformat()},
                                     session_id=f"reference:{country}", purpose=token)
        self.store.add_identity_reference(country, self.keys.current, token, record)

    def lookup(self, country: str, id_number: str) -> _ReferenceRecord | None:
        country = country.strip().upper()
        found = self.store.find_identity_reference(
            country, self.keys.lookup_tokens(f"{country}|{id_number}"))
        if found is None:
            return None
        token, record = found
        data = self.keys.open_json(record, session_id=f"reference:{country}", purpose=token)
        return _ReferenceRecord(data["name"], date.fromisoformat(data["dob"]))


# --------------------------------------------------------------------------- the sessions


def new_session_id() -> str:
    """A fresh session id, ``vs_`` and 24 random hex characters."""
    return f"vs_{secrets.token_hex(12)}"


class VerificationSessions:
    """Verification sessions for a tenant: create, upload, submit, read, list, cancel,
    redact; and, for the worker, :meth:`process` a claimed session.

    ``keys`` seals personal data; ``checks`` runs the checks (:class:`DefaultChecks` on a
    :class:`StoreReferenceSource` unless given); ``signals`` (optional) observes processed
    sessions and gives their insights; ``on_outcome(status, error_code)`` is told of each
    processed attempt (metrics); ``lease`` is how long a worker's claim lasts unrenewed.
    """

    def __init__(self, store: Store, keys: KeyRing, *, checks: Checks | None = None,
                 signals: Signals | None = None, lease: timedelta = timedelta(minutes=2),
                 on_outcome: Callable[[str, str | None], None] | None = None) -> None:
        self.store = store
        self.keys = keys
        self.reference = StoreReferenceSource(store, keys)
        self.checks = checks if checks is not None else DefaultChecks(self.reference)
        self.signals = signals
        self.lease = lease
        self.on_outcome = on_outcome
        self.submitted: Callable[[], None] = lambda: None  # a worker's wake-up, when one runs
        # what the signals have taken from the store: the newest change seen, and the
        # (session, change time) pairs applied within SIGNALS_MARGIN of it
        self._signals_lock = threading.Lock()
        self._signals_seen: datetime | None = None
        self._signals_applied: dict[str, datetime] = {}

    def catch_up_signals(self) -> int:
        """Bring the cross-session signals up to date with the store: observe every session
        processed since the last look, by any process or host, and forget those redacted.
        The first call rebuilds them whole (a restart). Returns how many changes it applied.

        Changes are read from ``SIGNALS_MARGIN`` before the newest one seen, so a writer whose
        clock or commit lags a little is not missed; what was already applied is skipped.
        """
        if self.signals is None:
            return 0
        with self._signals_lock:
            since = (None if self._signals_seen is None
                     else self._signals_seen - SIGNALS_MARGIN)
            applied = 0
            for sid, changed, sealed, embedding in self.store.verification_facts_since(since):
                if self._signals_applied.get(sid) == changed:
                    continue
                if sealed is None:
                    self.signals.forget(sid)
                else:
                    self.signals.observe(self._open_facts(sid, sealed, embedding))
                self._signals_applied[sid] = changed
                if self._signals_seen is None or changed > self._signals_seen:
                    self._signals_seen = changed
                applied += 1
            if self._signals_seen is not None:
                horizon = self._signals_seen - SIGNALS_MARGIN
                self._signals_applied = {k: v for k, v in self._signals_applied.items()
                                         if v >= horizon}
            return applied

    def _open_facts(self, session_id: str, sealed: bytes, embedding: bytes | None
                    ) -> SessionFacts:
        doc = self.keys.open_json(sealed, session_id=session_id, purpose="signal_facts")
        face = None if embedding is None else np.frombuffer(
            self.keys.open(embedding, session_id=session_id, purpose="face_embedding"),
            "<f4").astype(np.float64)
        return facts_from_dict(doc, face)

    # the integrator's operations

    def create(self, tenant: str, request: SessionRequest, *, claimed: Claimed | None = None,
               metadata: Mapping[str, Any] | None = None,
               context: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        """A new session in ``requires_input``; ``context`` holds the signals' ``account_id``,
        ``device_id``, ``ip`` and ``email``; ``metadata`` is the integrator's own."""
        if metadata is not None and (not isinstance(metadata, Mapping)
                                     or len(metadata) > _MAX_METADATA_KEYS):
            raise SessionInputError("metadata", f"an object of up to {_MAX_METADATA_KEYS} keys")
        unknown = sorted(set(context or {}) - set(_CONTEXT_FIELDS))
        if unknown:
            raise SessionInputError(unknown[0], f"not a context field; use "
                                    f"{', '.join(_CONTEXT_FIELDS)}")
        _check_claimed(request, claimed or Claimed())
        session_id = new_session_id()
        ctx = {"metadata": dict(metadata or {}),
               **{k: v for k, v in (context or {}).items() if v is not None}}
        stored = self.store.create_verification_session(
            session_id, tenant, list(request.checks), request.to_options(),
            claimed=None if claimed is None or claimed == Claimed() else self.keys.seal_json(
                claimed_to_dict(claimed), session_id=session_id, purpose="claimed"),
            context=self.keys.seal_json(ctx, session_id=session_id, purpose="context"))
        return self.view(stored)

    def upload(self, tenant: str, session_id: str, purpose: str, data: bytes) -> dict[str, Any]:
        """Store (replace) the session's image for ``purpose``: PNG or JPEG, up to 10 MB."""
        if purpose not in PURPOSES:
            raise SessionInputError("purpose", f"{purpose!r} is not a file purpose; use "
                                    f"{', '.join(PURPOSES)}")
        content_type = sniff_image(data, purpose)
        stored = self.store.get_verification_session(tenant, session_id)
        if not SessionRequest.from_options(stored.options).accepts(purpose):
            raise SessionInputError("purpose", f"this session does not check a {purpose} "
                                    f"(its checks: {', '.join(stored.checks)})")
        sealed = self.keys.seal(data, session_id=session_id, purpose=purpose)
        info = self.store.put_verification_file(tenant, session_id, purpose, content_type,
                                                sealed, len(data))
        return {"purpose": info.purpose, "content_type": info.content_type, "size": info.size,
                "uploaded_at": info.uploaded_at.isoformat()}

    def submit(self, tenant: str, session_id: str) -> dict[str, Any]:
        """Send the session to processing (raises ``SessionIncomplete`` naming a missing
        file); a session back in ``requires_input`` is submitted again for a new attempt."""
        stored = self.store.get_verification_session(tenant, session_id)
        required = SessionRequest.from_options(stored.options).required_files
        view = self.view(self.store.submit_verification_session(tenant, session_id,
                                                                required=required))
        self.submitted()
        return view

    def get(self, tenant: str, session_id: str) -> dict[str, Any]:
        """The session as the API shows it (see :meth:`view`)."""
        return self.view(self.store.get_verification_session(tenant, session_id))

    def list(self, tenant: str, *, limit: int = 100,
             status: str | None = None) -> list[dict[str, Any]]:
        """The tenant's sessions, newest first (without verified outputs)."""
        return [self.view(s, outputs=False)
                for s in self.store.list_verification_sessions(tenant, limit=limit,
                                                               status=status)]

    def cancel(self, tenant: str, session_id: str) -> dict[str, Any]:
        """→ ``canceled`` (from ``requires_input`` or ``processing``)."""
        return self.view(self.store.cancel_verification_session(tenant, session_id))

    def redact(self, tenant: str, session_id: str) -> dict[str, Any]:
        """Delete the session's personal data for good (see the store's
        ``redact_verification_session``), and make the signals forget it."""
        stored = self.store.redact_verification_session(tenant, session_id)
        if self.signals is not None:
            self.signals.forget(session_id)
        return self.view(stored)

    def view(self, stored: StoredSession, *, outputs: bool = True) -> dict[str, Any]:
        """A JSON-able view of a stored session (Stripe's field names where they exist)."""
        request = SessionRequest.from_options(stored.options)
        metadata: dict[str, Any] = {}
        if stored.context is not None:
            metadata = self.keys.open_json(stored.context, session_id=stored.id,
                                           purpose="context").get("metadata", {})
        verified = None
        if outputs and stored.verified_outputs is not None:
            verified = self.keys.open_json(stored.verified_outputs, session_id=stored.id,
                                           purpose="verified_outputs")
        error = None
        if stored.status == "requires_input" and stored.last_error_code is not None:
            reason = None if stored.last_error_reason is None else self.keys.open(
                stored.last_error_reason, session_id=stored.id,
                purpose="last_error_reason").decode()
            error = {"code": stored.last_error_code, "reason": reason}
        return {
            "id": stored.id, "object": "identity.verification_session",
            "status": stored.status, "type": request.type, "checks": stored.checks,
            "options": stored.options, "attempt": stored.attempt, "last_error": error,
            "verified_outputs": verified, "insights": stored.insights or [],
            "metadata": metadata,
            "files": {p: {"content_type": f.content_type, "size": f.size,
                          "uploaded_at": f.uploaded_at.isoformat()}
                      for p, f in stored.files.items()},
            "history": [{"at": e.at.isoformat(), "status": e.status, "attempt": e.attempt,
                         "error_code": e.error_code} for e in stored.history],
            "created": stored.created_at.isoformat(),
            "updated": stored.updated_at.isoformat(),
            "submitted": stored.submitted_at and stored.submitted_at.isoformat(),
            "redaction": None if stored.redacted_at is None else {
                "status": "redacted", "redacted_at": stored.redacted_at.isoformat()},
        }

    # the worker's part

    def process(self, session_id: str, token_holder: Any, *, today: date | None = None
                ) -> Outcome | None:
        """Run a claimed session's checks and write the result if the claim still holds.

        ``token_holder`` is the :class:`~vigil.store.Claim` (or a callable returning the
        current one, when a heartbeat renews it). Returns the outcome written, or None when
        the claim was lost meanwhile (another worker took over, or the session was canceled):
        then nothing was written and nothing observed.
        """
        stored = self.store.get_verification_session(None, session_id)
        request = SessionRequest.from_options(stored.options)
        claimed = Claimed() if stored.claimed is None else claimed_from_dict(
            self.keys.open_json(stored.claimed, session_id=session_id, purpose="claimed"))
        files = {purpose: self.keys.open(blob, session_id=session_id, purpose=purpose)
                 for purpose, blob in self.store.verification_files(session_id).items()}
        day = today or datetime.now(UTC).date()
        try:
            outcome = run_checks(request, files, claimed, self.checks, today=day)
        except CheckCrashed as crash:
            if isinstance(crash.__cause__, StoreUnavailable):
                raise  # transient: the lease runs out and a worker tries again
            # a check that broke (not one that said no): the session goes back to the user
            # with that check's "unverified_other" code, and the log says why
            log.error("identity: the %s check crashed on %s", crash.check, session_id,
                      exc_info=crash.__cause__)
            outcome = Outcome("requires_input", CheckFailed(
                _CRASH_CODES[crash.check], f"the {crash.check} check could not run "
                f"({type(crash.__cause__).__name__})"), ran=(crash.check,))
        facts = self._facts(stored, outcome, claimed)
        self.catch_up_signals()  # what other workers processed meanwhile
        insights = [] if self.signals is None else [
            {"kind": i.kind, "level": i.level, "detail": i.detail,
             "related_sessions": list(i.related_sessions)}
            for i in self.signals.insights(facts)]
        outputs = outcome.verified_outputs(claimed)
        embedding = None
        if outcome.face is not None:
            embedding = self.keys.seal(np.asarray(outcome.face.selfie_embedding, "<f4").tobytes(),
                                       session_id=session_id, purpose="face_embedding")
        claim = token_holder() if callable(token_holder) else token_holder
        written = self.store.finish_verification_session(
            claim, outcome.status,
            error_code=outcome.error.code if outcome.error else None,
            error_reason=None if outcome.error is None else self.keys.seal(
                outcome.error.reason.encode(), session_id=session_id,
                purpose="last_error_reason"),
            verified_outputs=None if outputs is None else self.keys.seal_json(
                outputs, session_id=session_id, purpose="verified_outputs"),
            face_embedding=embedding, insights=insights,
            signal_facts=self.keys.seal_json(facts_to_dict(facts), session_id=session_id,
                                             purpose="signal_facts"))
        if not written:
            return None
        # only after the result is durably written: a worker that lost its claim observes
        # nothing, so each attempt counts once in the signals
        if self.signals is not None:
            with self._signals_lock:
                self.signals.observe(facts)
                self._signals_applied[session_id] = written
        if self.on_outcome is not None:
            self.on_outcome(outcome.status, outcome.error.code if outcome.error else None)
        return outcome

    def _facts(self, stored: StoredSession, outcome: Outcome, claimed: Claimed) -> SessionFacts:
        ctx = {} if stored.context is None else self.keys.open_json(
            stored.context, session_id=stored.id, purpose="context")
        doc = outcome.document
        return SessionFacts(
            session_id=stored.id, tenant=stored.tenant, created_at=stored.created_at,
            outcome=outcome.status, error_code=outcome.error.code if outcome.error else None,
            account_id=ctx.get("account_id"), device_id=ctx.get("device_id"),
            ip=ctx.get("ip"), email=ctx.get("email"),
            document_number=doc.document_number if doc else None,
            document_country=doc.issuing_country if doc else None,
            name=doc.full_name if doc else claimed.name,
            birth_date=doc.birth_date if doc else claimed.birth_date,
            face_embedding=None if outcome.face is None else outcome.face.selfie_embedding)
