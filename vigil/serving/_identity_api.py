"""The identity verification routes, ``/v1/identity/verification_sessions`` (Stripe Identity's
shape; see docs/identity.md).

Every route needs an API key (``score`` or ``admin``) and sees only the key's tenant: another
tenant's session answers 404, exactly as an unknown id does. Without an identity key
(``VIGIL_IDENTITY_KEY``) the routes answer 503 and say how to set one; the rest of the service
works as before.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as FastApiPath
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vigil.identity import DOCUMENT_TYPES, Claimed, SessionRequest, VerificationSessions
from vigil.identity._sessions import MAX_FILE_BYTES, PURPOSES
from vigil.serving._app import _ERRORS, ApiProblem, Key, refuse_taken_key
from vigil.serving._schemas import ApiError, VerificationSessionIn
from vigil.store import SESSION_STATUSES, ApiKey

PREFIX = "/v1/identity/verification_sessions"

_SessionId = Annotated[str, FastApiPath(min_length=1, max_length=100,
                                        description="the session's id, vs_...")]
_IDEMPOTENCY_HEADER = {"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                       "description": "makes retries safe (see the route's description)"}
_MORE = {**_ERRORS, 404: {"model": ApiError}, 409: {"model": ApiError},
         503: {"model": ApiError}}


def _sessions(request: Request) -> VerificationSessions:
    sessions = getattr(request.app.state, "identity", None)
    if sessions is None:
        raise ApiProblem(503, "identity_unavailable",
                         "identity verification is not set up on this service: set "
                         "VIGIL_IDENTITY_KEY to a key made with `vigil identity key` (32 random "
                         "bytes, base64) and restart it")
    return sessions


def _create(sessions: VerificationSessions, body: VerificationSessionIn, key: ApiKey
            ) -> dict[str, Any]:
    doc = body.options.document if body.options and body.options.document else None
    session_request = SessionRequest(
        body.type,
        allowed_types=tuple(doc.allowed_types) if doc and doc.allowed_types
        else DOCUMENT_TYPES,
        require_matching_selfie=bool(doc and doc.require_matching_selfie),
        require_id_number=bool(doc and doc.require_id_number),
        min_age=doc.min_age if doc else None)
    claimed = None
    if body.claimed is not None:
        c = body.claimed
        claimed = Claimed(name=c.name, birth_date=c.dob, id_number=c.id_number,
                          id_number_country=c.id_number_country)
    return sessions.create(key.tenant, session_request, claimed=claimed,
                           metadata=body.metadata,
                           context={"account_id": body.account_id,
                                    "device_id": body.device_id, "ip": body.ip,
                                    "email": body.email})


def identity_router() -> APIRouter:
    """The routes; the app holds the :class:`VerificationSessions` in ``state.identity``."""
    router = APIRouter(prefix=PREFIX, tags=["identity"])

    @router.post("", responses=_MORE, openapi_extra={"parameters": [_IDEMPOTENCY_HEADER]})
    def create_session(body: VerificationSessionIn, key: Key, request: Request) -> Any:
        """Create a verification session in `requires_input`: upload its files, then submit.

        `type` is `document` (with `options.document`: `allowed_types`,
        `require_matching_selfie`, `require_id_number`, `min_age`) or `id_number` (checks
        `claimed.id_number` against the name and date of birth). `claimed`, `metadata` and
        the context fields are stored encrypted.

        Send an `Idempotency-Key` header to make retries safe: the same key and body answer
        the session already created (as it is now, with `Idempotent-Replayed: true`), never
        a second one; the same key with another body, or on another route, is a 409.
        """
        sessions = _sessions(request)
        idem = request.headers.get("idempotency-key")
        if idem is None:
            return _create(sessions, body, key)
        if not 0 < len(idem) <= 255:
            raise ApiProblem(422, "invalid_request", "Idempotency-Key: 1 to 255 characters",
                             [{"field": "Idempotency-Key", "reason": "1 to 255 characters"}])
        # the route is part of what is compared, so a key reused on another route conflicts;
        # only the session's id is kept with the key (the body holds personal data, which is
        # stored sealed, never in the clear)
        # (keyed, like every lookup of personal data: a plain hash of a name and a birth date
        # could be reversed by trying them)
        request_text = f"POST {PREFIX}\n{body.model_dump_json()}"
        digest = next(iter(sessions.keys.lookup_tokens(request_text).values()))
        store = sessions.store
        answer = store.idempotency_begin(key.id, idem, digest)
        if answer.state == "replay":
            session_id = (answer.body or {}).get("id")
            return JSONResponse(sessions.get(key.tenant, session_id),
                                headers={"Idempotent-Replayed": "true"})
        refuse_taken_key(answer.state, idem, "request")
        try:
            created = _create(sessions, body, key)
        except Exception:
            store.idempotency_release(key.id, idem)
            raise
        store.idempotency_complete(key.id, idem, 200, {"id": created["id"]})
        return created
    @router.get("", responses=_MORE)
    def list_sessions(key: Key, request: Request,
                      status: Annotated[str | None, Query(
                          pattern=f"^({'|'.join(SESSION_STATUSES)})$")] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        """The tenant's sessions, newest first (without verified outputs)."""
        return {"object": "list",
                "data": _sessions(request).list(key.tenant, limit=limit, status=status)}

    @router.get("/{session_id}", responses=_MORE)
    def get_session(session_id: _SessionId, key: Key, request: Request) -> Any:
        """A session: `status`, `last_error` {code, reason} when it is back in
        `requires_input`, `verified_outputs` when `verified`, `insights`, the history of
        attempts, and `redaction` once redacted."""
        return _sessions(request).get(key.tenant, session_id)

    @router.post("/{session_id}/files/{purpose}", responses={
        **_MORE, 413: {"model": ApiError}}, openapi_extra={"requestBody": {
            "required": True, "content": {"image/png": {"schema": {"type": "string",
                                                                   "format": "binary"}},
                                          "image/jpeg": {"schema": {"type": "string",
                                                                    "format": "binary"}}}}})
    async def upload_file(session_id: _SessionId,
                          purpose: Annotated[str, FastApiPath(
                              description=f"one of {', '.join(PURPOSES)}")],
                          key: Key, request: Request) -> Any:
        """Upload an image (the raw bytes as the body; PNG or JPEG, judged by its first
        bytes; up to 10 MB) for `document_front`, `document_back` or `selfie`. Uploading
        again replaces the file (a retry after `requires_input`)."""
        sessions = _sessions(request)
        data = await request.body()
        if len(data) > MAX_FILE_BYTES:  # pragma: no cover - the middleware stops it first
            raise ApiProblem(413, "too_large", "images are limited to 10 MB")
        return await run_in_threadpool(sessions.upload, key.tenant, session_id, purpose, data)

    @router.post("/{session_id}/submit", responses=_MORE)
    def submit_session(session_id: _SessionId, key: Key, request: Request) -> Any:
        """Submit for processing (`processing`; the checks run in the background). A missing
        file is a 422 naming it; a session not in `requires_input` a 409."""
        return _sessions(request).submit(key.tenant, session_id)

    @router.post("/{session_id}/cancel", responses=_MORE)
    def cancel_session(session_id: _SessionId, key: Key, request: Request) -> Any:
        """Cancel a session in `requires_input` or `processing` (409 from `verified` or
        `canceled`)."""
        return _sessions(request).cancel(key.tenant, session_id)

    @router.post("/{session_id}/redact", responses=_MORE)
    def redact_session(session_id: _SessionId, key: Key, request: Request) -> Any:
        """Delete the session's images, extracted and claimed data and face embedding for
        good; what an audit needs stays (id, status, history, error codes, timestamps).
        A `processing` session is refused (409): cancel it or wait. Redacting twice is
        harmless."""
        return _sessions(request).redact(key.tenant, session_id)

    return router
