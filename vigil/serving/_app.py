"""The HTTP API (FastAPI): the only module of vigil that speaks HTTP.

Routes under ``/v1`` need an API key (``Authorization: Bearer vk_...``): a ``score`` key may
score payments, send labels and read payments; an ``admin`` key may also work the review
queue, lists and rules. Either may run identity verification sessions, of its own tenant
only (``_identity_api.py``). ``/healthz``, ``/metrics`` and ``/docs`` are open.

Every error is JSON, ``{"error": {"type", "message", "errors": [{"field", "reason"}]}}``:
4xx for what the caller can fix, never a 500 for a user mistake.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as FastApiPath
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.responses import Response

from vigil import __version__
from vigil._errors import VigilError
from vigil.identity import SealError, Worker
from vigil.rules import RuleError
from vigil.serving._heap import freeze_periodically, freeze_survivors
from vigil.serving._schemas import (
    ApiError,
    LabelIn,
    LabelOut,
    ListItemIn,
    PaymentIn,
    ReviewClose,
    RulesBacktestIn,
    RulesIn,
    RulesOut,
    ScoreOut,
)
from vigil.serving._service import ScoringService
from vigil.store import ApiKey, Conflict, NotFound, StoreUnavailable

if TYPE_CHECKING:
    from vigil.identity import VerificationSessions

MAX_BODY_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # an identity document's or selfie's image
_UPLOAD_PATH = re.compile(r"^/v1/identity/verification_sessions/[^/]+/files/[^/]+$")
KEY_CACHE_SECONDS = 30.0  # a revoked key stops working within this long

_ERRORS = {401: {"model": ApiError}, 403: {"model": ApiError}, 422: {"model": ApiError}}


class FastJSONResponse(JSONResponse):
    """JSON encoded by orjson: a scoring answer, reasons and all, in a tenth of the time the
    standard library takes (NaN, which no answer holds, would become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiProblem(Exception):
    """An error answer: status, type and message (and field errors)."""

    def __init__(self, status: int, kind: str, message: str,
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.errors = status, kind, message, errors or []


def _problem(status: int, kind: str, message: str,
             errors: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse({"error": body}, status_code=status)


class _Keys:
    """API key checks, cached for a few seconds so a request costs no store read."""

    def __init__(self, service: ScoringService) -> None:
        self._service = service
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def verify(self, secret: str) -> ApiKey | None:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = self._service.store.verify_api_key(secret)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + KEY_CACHE_SECONDS, key)
        return key


class _BodyLimitAndTiming:
    """ASGI middleware: refuse bodies over :data:`MAX_BODY_BYTES` (413; image uploads: over
    :data:`MAX_UPLOAD_BYTES`) and time requests."""

    def __init__(self, app: Any, latency: Histogram, errors: Counter) -> None:
        self.app, self.latency, self.errors = app, latency, errors

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_UPLOAD_BYTES if _UPLOAD_PATH.match(scope["path"]) else MAX_BODY_BYTES
        length = dict(scope["headers"]).get(b"content-length")
        too_big = length is not None and (not length.isdigit()
                                          or int(length) > limit)
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            chunks, size, more = [], 0, True  # chunked: count what actually comes
            while more and size <= limit:
                message = await receive()
                chunks.append(message)
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            too_big = size > limit
            pending = iter(chunks)

            async def replay() -> dict:
                return next(pending, None) or await receive()
            receive = replay
        if too_big:
            self.errors.labels("413").inc()
            await _problem(413, "too_large", f"request bodies are limited to "
                           f"{limit // 1024:,} KB")(scope, receive, send)
            return
        start = time.perf_counter()
        await self.app(scope, receive, send)
        route = scope.get("route")
        self.latency.labels(getattr(route, "path", "other")).observe(time.perf_counter() - start)


async def _key(request: Request,
               authorization: Annotated[str | None, Header()] = None) -> ApiKey:
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiProblem(401, "unauthorized", "send an API key: 'Authorization: Bearer "
                         "<key>' (create one with `vigil keys create`)")
    key = request.app.state.keys.verify(authorization.removeprefix("Bearer ").strip())
    if key is None:
        raise ApiProblem(401, "unauthorized", "unknown or revoked API key")
    return key


async def _admin(key: Annotated[ApiKey, Depends(_key)]) -> ApiKey:
    if key.scope != "admin":
        raise ApiProblem(403, "forbidden", f"this route needs an admin key; key "
                         f"'{key.name}' has scope '{key.scope}'")
    return key


Key = Annotated[ApiKey, Depends(_key)]
Admin = Annotated[ApiKey, Depends(_admin)]


def _payment_openapi() -> dict[str, Any]:
    """The request body and header of ``POST /v1/payments`` for the OpenAPI document."""
    schema = PaymentIn.model_json_schema()
    return {
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": schema}}},
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        "description": "makes retries safe (see the route's description)"},
                       {"name": "authorization", "in": "header", "required": False,
                        "schema": {"type": "string"}}],
    }


def create_app(service: ScoringService, *, close_on_shutdown: bool = False,
               identity: VerificationSessions | None = None,
               identity_worker: bool = False, freeze_heap: bool = False) -> FastAPI:
    """The FastAPI application around a started :class:`ScoringService`; with
    ``close_on_shutdown`` the server's shutdown closes the service (saving a snapshot).
    With ``freeze_heap`` (the server process; not a test's) the garbage collector is kept
    to short pauses (:mod:`vigil.serving._heap`).

    ``identity`` serves the verification sessions (without it their routes answer 503);
    with ``identity_worker`` a worker thread processes submitted sessions while the app runs.
    """
    from vigil.serving._identity_api import identity_router  # it imports this module

    worker = Worker(identity) if identity is not None and identity_worker else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        freezer = None
        if freeze_heap:
            freeze_survivors(full=True)
            freezer = asyncio.create_task(freeze_periodically())
        yield
        if freezer is not None:
            freezer.cancel()
        if worker is not None:
            worker.stop()
        if close_on_shutdown:
            service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="vigil scoring API", version=__version__,
        description="Real-time fraud scoring: a risk score with reasons and a decision per "
                    "payment; labels, reviews, lists and rules. Authenticate with "
                    "`Authorization: Bearer <API key>` (create one with `vigil keys create`).")
    app.state.service = service
    app.state.keys = _Keys(service)
    registry = CollectorRegistry()
    scored = Counter("vigil_payments_scored_total", "Payments scored, by decision",
                     ["decision"], registry=registry)
    labels_total = Counter("vigil_labels_total", "Labels recorded", ["kind"], registry=registry)
    latency = Histogram("vigil_request_seconds", "Request time, by route",
                        ["route"], registry=registry,
                        buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1))
    errors_total = Counter("vigil_errors_total", "Error answers, by status",
                           ["status"], registry=registry)
    Gauge("vigil_gc_frozen_objects", "Objects the garbage collector no longer walks "
          "(frozen; see vigil.serving._heap)", registry=registry
          ).set_function(gc.get_freeze_count)
    identity_total = Counter("vigil_identity_sessions_total",
                             "Verification attempts processed here, by outcome and error code",
                             ["status", "error_code"], registry=registry)
    app.state.identity = identity
    if identity is not None:
        identity.on_outcome = lambda status, code: identity_total.labels(
            status, code or "").inc()
    app.include_router(identity_router())

    # ------------------------------------------------------------------ errors
    @app.exception_handler(ApiProblem)
    async def _api_problem(_: Request, exc: ApiProblem) -> JSONResponse:
        errors_total.labels(str(exc.status)).inc()
        return _problem(exc.status, exc.kind, exc.message, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
            reason = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            errors.append({"field": ".".join(loc) or "body", "reason": reason})
        errors_total.labels("422").inc()
        first = errors[0] if errors else {"field": "body", "reason": "invalid"}
        return _problem(422, "invalid_request", f"{first['field']}: {first['reason']}", errors)

    @app.exception_handler(VigilError)
    async def _vigil_error(_: Request, exc: VigilError) -> JSONResponse:
        status, kind = 422, "invalid_request"
        if isinstance(exc, NotFound):
            status, kind = 404, "not_found"
        elif isinstance(exc, Conflict):
            status, kind = 409, "conflict"
        elif isinstance(exc, StoreUnavailable | SealError):
            status, kind = 503, "unavailable"
        errors_total.labels(str(status)).inc()
        field = getattr(exc, "column", None)
        errors = [{"field": field, "reason": str(exc)}] if field else None
        return _problem(status, kind, str(exc), errors)

    app.add_middleware(_BodyLimitAndTiming, latency=latency, errors=errors_total)

    # ------------------------------------------------------------------ payments
    # The hot route reads its body and headers itself: FastAPI's per-parameter machinery
    # cost more than the features here. The OpenAPI document still describes both.
    @app.post("/v1/payments", response_model=ScoreOut, tags=["payments"],
              responses={**_ERRORS, 409: {"model": ApiError}},
              openapi_extra=_payment_openapi())
    async def score_payment(request: Request) -> Any:
        """Score a payment: risk score, level, decision, the rule that decided and reasons.

        The payment and its decision are durably stored before the answer. Send an
        `Idempotency-Key` header to make retries safe: the same key and body answer the
        stored response without scoring twice; the same key with another body is a 409.
        """
        key = await _key(request, request.headers.get("authorization"))
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
            raise ApiProblem(422, "invalid_request", "Idempotency-Key: 1 to 255 characters",
                             [{"field": "Idempotency-Key", "reason": "1 to 255 characters"}])
        raw = await request.body()
        try:
            body = PaymentIn.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None

        async def run() -> tuple[int, Any]:
            event = body.to_event()
            # the model call, the decision and the commit run on worker threads, shared with
            # the payments of concurrent requests (one model call, one disk flush); this
            # coroutine wakes once, with the payment stored and counted
            result, _ = await service.score_async(event)
            scored.labels(result.decision).inc()
            return 200, result.to_dict()
        # answered as built (response_model still documents it): validating our own output
        # again would cost more than the features
        answer = await _idempotent(service, key, idempotency_key, body.model_dump_json(), run)
        return answer if isinstance(answer, Response) else FastJSONResponse(answer)

    @app.get("/v1/payments/{payment_id}", tags=["payments"], responses=_ERRORS)
    def get_payment(payment_id: Annotated[str, FastApiPath(max_length=200)], key: Key) -> Any:
        """A stored payment with its decision, labels and review."""
        stored = service.store.get_payment(payment_id)
        if stored is None:
            raise ApiProblem(404, "not_found", f"no payment '{payment_id}'")
        return json.loads(json.dumps(stored, default=str))

    @app.post("/v1/labels", response_model=LabelOut, status_code=201, tags=["labels"],
              responses={**_ERRORS, 404: {"model": ApiError}})
    def add_label(body: LabelIn, key: Key) -> Any:
        """Record a dispute, fraud report or review outcome for a stored payment."""
        event = body.to_event()
        seq = service.add_label(event)
        labels_total.labels(event["kind"]).inc()
        return {"payment_id": event["payment_id"], "seq": seq}

    # ------------------------------------------------------------------ reviews
    @app.get("/v1/reviews", tags=["reviews"], responses=_ERRORS)
    def list_reviews(key: Admin, status: Annotated[str, Query(pattern="^(open|closed)$")] = "open",
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        """The review queue: cases sent to review by a rule, oldest first."""
        return [json.loads(json.dumps(r.__dict__, default=str))
                for r in service.store.list_reviews(status, limit)]  # type: ignore[arg-type]

    @app.post("/v1/reviews/{review_id}/close", tags=["reviews"],
              responses={**_ERRORS, 404: {"model": ApiError}, 409: {"model": ApiError}})
    def close_review(review_id: Annotated[int, FastApiPath(ge=1, le=2**63 - 1)],
                     body: ReviewClose, key: Admin) -> Any:
        """Close a case: `approved`, or `refunded_as_fraud`, which records a fraud label and
        puts the card and e-mail on the block lists."""
        closed = service.close_review(review_id, body.outcome, key.name)
        return json.loads(json.dumps({"review": closed.review.__dict__, "label": closed.label,
                                      "listed": closed.listed}, default=str))

    # ------------------------------------------------------------------ lists
    @app.get("/v1/lists", tags=["lists"], responses=_ERRORS)
    def list_names(key: Admin) -> Any:
        """Names of the lists that hold values."""
        return {"lists": service.store.list_names()}

    @app.get("/v1/lists/{name}/items", tags=["lists"], responses=_ERRORS)
    def list_items(name: str, key: Admin) -> Any:
        """The values on a list."""
        return [json.loads(json.dumps(i.__dict__, default=str))
                for i in service.store.list_items(name)]

    @app.post("/v1/lists/{name}/items", status_code=201, tags=["lists"], responses=_ERRORS)
    def add_list_item(name: str, body: ListItemIn, key: Admin) -> Any:
        """Put a value on a list (creating the list)."""
        service.add_list_item(name, body.value, f"api key {key.name}", body.reason)
        return {"list": name, "value": body.value}

    @app.delete("/v1/lists/{name}/items/{value}", tags=["lists"], responses=_ERRORS)
    def remove_list_item(name: str, value: str, key: Admin) -> Any:
        """Take a value off a list."""
        if not service.remove_list_item(name, value):
            raise ApiProblem(404, "not_found", f"'{value}' is not on list '{name}'")
        return {"list": name, "value": value, "removed": True}

    # ------------------------------------------------------------------ rules
    @app.get("/v1/rules", response_model=RulesOut, tags=["rules"], responses=_ERRORS)
    def get_rules(key: Admin) -> Any:
        """The rules in force."""
        return {"version": service.rules_version, "rules": service.rules_text}

    @app.put("/v1/rules", response_model=RulesOut, tags=["rules"], responses=_ERRORS)
    def put_rules(body: RulesIn, key: Admin) -> Any:
        """Replace the rules. A rule that does not parse, or names an unknown attribute or
        list, is refused with its line and column; nothing is saved then."""
        try:
            version = service.save_rules(body.rules, key.name)
        except RuleError as exc:
            raise ApiProblem(422, "invalid_rules", str(exc),
                             [{"field": "rules", "reason": str(exc)}]) from None
        return {"version": version, "rules": body.rules}

    @app.post("/v1/rules/backtest", tags=["rules"], responses=_ERRORS)
    def backtest_rules(body: RulesBacktestIn, key: Admin) -> Any:
        """Replay the stored payments and their labels through these rules (and the rules
        in force): fraud caught, good payments blocked or reviewed, precision, review volume
        per day, per rule and for the whole set. Features are recomputed point in time."""
        try:
            return service.backtest(body.rules, against_current=body.against_current)
        except RuleError as exc:
            raise ApiProblem(422, "invalid_rules", str(exc),
                             [{"field": "rules", "reason": str(exc)}]) from None

    # ------------------------------------------------------------------ operations
    @app.get("/healthz", tags=["operations"])
    def healthz() -> Any:
        """Liveness and what is loaded."""
        return {"status": "ok", "model_version": service.scorer.model_version,
                "rules_version": service.rules_version,
                "state": "redis" if service.shared_state else "memory"}

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def refuse_taken_key(state: str, idem: str, other: str) -> None:
    """The 409 for an idempotency key that is no longer free: used with ``other`` (what
    differed), or its first request still running."""
    if state == "conflict":
        raise ApiProblem(409, "idempotency_conflict", f"Idempotency-Key '{idem}' was used "
                         f"with a different {other}")
    if state == "in_progress":
        raise ApiProblem(409, "idempotency_in_progress", f"a request with Idempotency-Key "
                         f"'{idem}' is still running; retry in a moment")


async def _idempotent(service: ScoringService, key: ApiKey, idem: str | None, body: str,
                      run: Callable[[], Awaitable[tuple[int, Any]]]) -> Any:
    if idem is None:
        return (await run())[1]
    digest = hashlib.sha256(body.encode()).hexdigest()
    store = service.store
    answer = await run_in_threadpool(store.idempotency_begin, key.id, idem, digest)
    if answer.state == "replay":
        return JSONResponse(answer.body, status_code=answer.status_code or 200,
                            headers={"Idempotent-Replayed": "true"})
    refuse_taken_key(answer.state, idem, "request body")
    try:
        status, result = await run()
    except VigilError as exc:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 422
        await run_in_threadpool(store.idempotency_complete, key.id, idem, status, {"error": {
            "type": "conflict" if status == 409 else "invalid_request", "message": str(exc)}})
        raise
    except Exception:
        await run_in_threadpool(store.idempotency_release, key.id, idem)
        raise
    await run_in_threadpool(store.idempotency_complete, key.id, idem, status, result)
    return result
