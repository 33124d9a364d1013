"""API keys and idempotency keys: who may call the service, and answering a retry once.

An API key's secret (``vk_<prefix>_<random>``, 256 random bits) is shown once, at creation;
the store keeps its public prefix, to find the key, and the SHA-256 of the whole secret, to
check it. A fast hash is enough for a secret this random (nothing to guess), and comparing in
constant time keeps the check from leaking how much of a hash matched.

An idempotency key (per API key) makes a retried request safe: the first request claims the
key, does its work and stores its answer; a retry with the same body gets that answer again,
and a retry while the first still runs is told so. The claim is one ``INSERT`` that the
unique (API key, key) pair lets only one concurrent request win, on every backend.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from vigil._errors import SchemaError
from vigil.store._base import StoreBase
from vigil.store._errors import IdempotencyError, StoreError, UnknownApiKey
from vigil.store._records import SCOPES, ApiKey, IdempotencyResult
from vigil.store._tables import api_keys, idempotency, insert_or_ignore
from vigil.store._validate import choice, text

_SECRET_PREFIX = "vk"
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def tenant_name(tenant: object) -> str:
    """``tenant`` if it can name a tenant (lower-case letters, digits, ``-`` and ``_``, up to
    63), else a SchemaError that says so."""
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise SchemaError(f"{tenant!r} cannot name a tenant; use lower-case letters, digits, "
                          "- and _ (up to 63), e.g. acme")
    return tenant


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AccessMixin(StoreBase):
    """API keys and idempotency keys."""

    # API keys

    def create_api_key(self, scope: str, name: str, *,
                       tenant: str = "default") -> tuple[int, str]:
        """Create a key with ``scope`` (``score`` or ``admin``) and a ``name`` for people,
        acting for ``tenant`` (whose identity sessions it sees; one word, e.g. ``acme``).

        Returns ``(key_id, secret)``. The secret is not stored and cannot be shown again.
        """
        scope = choice(scope, SCOPES, "scope")
        name = text(name, "an API key's name")
        tenant = tenant_name(tenant)
        for _ in range(5):  # 48-bit prefixes: a collision is a once-in-a-lifetime event
            prefix = secrets.token_hex(6)
            secret = f"{_SECRET_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
            with self._write() as conn:
                row = conn.execute(insert_or_ignore(conn, api_keys).values(
                    prefix=prefix, secret_sha256=_digest(secret), scope=scope, name=name,
                    tenant=tenant, created_at=self._now()).returning(api_keys.c.id)).first()
            if row is not None:
                return row[0], secret
        raise StoreError("could not draw an unused API key prefix; try again")  # pragma: no cover

    def verify_api_key(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, or None if it is unknown, malformed or revoked."""
        parts = secret.split("_", 2) if isinstance(secret, str) else []
        if len(parts) != 3 or parts[0] != _SECRET_PREFIX or not parts[1]:
            return None
        with self._read() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.prefix == parts[1])
                               ).mappings().first()
        if row is None or not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
            return None
        key = _api_key(row)
        return key if key.active else None

    def revoke_api_key(self, key_id: int) -> ApiKey:
        """Revoke a key (from now on it verifies as None) and return it; revoking twice is
        harmless. Raises :class:`~vigil.store.UnknownApiKey`."""
        with self._write() as conn:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id,
                                                 api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=self._now()))
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)
                               ).mappings().first()
        if row is None:
            raise UnknownApiKey(f"there is no API key {key_id}")
        return _api_key(row)

    def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first (never a secret)."""
        with self._read() as conn:
            return [_api_key(row) for row in conn.execute(
                sa.select(api_keys).order_by(api_keys.c.id)).mappings()]

    # idempotency keys

    def idempotency_begin(self, api_key_id: int, key: str, request_hash: str, *,
                          stale_after: timedelta = timedelta(minutes=5)) -> IdempotencyResult:
        """Claim ``key`` for a request whose body hashes to ``request_hash``, or say why not.

        See :class:`~vigil.store.IdempotencyResult` for the four answers. A claim left in
        progress for longer than ``stale_after`` (its process died) is taken over by a retry
        with the same body. Raises :class:`~vigil.store.UnknownApiKey`.
        """
        key = text(key, "an idempotency key")
        request_hash = text(request_hash, "a request hash")
        try:
            for _ in range(3):  # a claim released between our INSERT and SELECT: try again
                answer = self._claim(api_key_id, key, request_hash, stale_after)
                if answer is not None:
                    return answer
        except sa.exc.IntegrityError as exc:  # the only constraint left: the key's API key
            raise UnknownApiKey(f"there is no API key {api_key_id}") from exc
        return IdempotencyResult("in_progress")  # pragma: no cover - needs three races in a row

    def _claim(self, api_key_id: int, key: str, request_hash: str,
               stale_after: timedelta) -> IdempotencyResult | None:
        now = self._now()
        pk = (idempotency.c.api_key_id == api_key_id, idempotency.c.key == key)
        with self._write() as conn:
            if conn.execute(insert_or_ignore(conn, idempotency).values(
                    api_key_id=api_key_id, key=key, request_hash=request_hash,
                    created_at=now).returning(idempotency.c.key)).first() is not None:
                return IdempotencyResult("claimed")
            row = conn.execute(sa.select(idempotency).where(*pk)).mappings().first()
            if row is None:
                return None
            if not hmac.compare_digest(row["request_hash"], request_hash):
                return IdempotencyResult("conflict")
            if row["completed_at"] is not None:
                return IdempotencyResult("replay", row["status_code"], row["response"])
            if row["created_at"] <= now - stale_after and conn.execute(
                    idempotency.update().where(*pk, idempotency.c.completed_at.is_(None),
                                               idempotency.c.created_at == row["created_at"])
                    .values(created_at=now)).rowcount:
                return IdempotencyResult("claimed")
        return IdempotencyResult("in_progress")

    def idempotency_complete(self, api_key_id: int, key: str, status_code: int,
                             body: Any) -> None:
        """Store the answer (``status_code`` and a JSON-able ``body``) of a claimed key.

        Raises :class:`~vigil.store.IdempotencyError` if the key is not claimed or is already
        complete.
        """
        try:
            json.dumps(body, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"the response body cannot be stored as JSON ({exc})") from exc
        with self._write() as conn:
            done = conn.execute(idempotency.update().where(
                idempotency.c.api_key_id == api_key_id, idempotency.c.key == key,
                idempotency.c.completed_at.is_(None)).values(
                status_code=int(status_code), response=body, completed_at=self._now())).rowcount
        if not done:
            raise IdempotencyError(f"idempotency key '{key}' is not claimed and in progress; "
                                   "call idempotency_begin first")

    def idempotency_release(self, api_key_id: int, key: str) -> None:
        """Give up a claim (the request failed before doing anything), so a retry can run.

        Raises :class:`~vigil.store.IdempotencyError` if the key is not claimed or already
        complete.
        """
        with self._write() as conn:
            gone = conn.execute(idempotency.delete().where(
                idempotency.c.api_key_id == api_key_id, idempotency.c.key == key,
                idempotency.c.completed_at.is_(None))).rowcount
        if not gone:
            raise IdempotencyError(f"idempotency key '{key}' is not claimed and in progress")

    def purge_idempotency(self, before: datetime) -> int:
        """Forget idempotency keys claimed before ``before``; return how many."""
        with self._write() as conn:
            return conn.execute(idempotency.delete().where(
                idempotency.c.created_at < before)).rowcount


def _api_key(row: Any) -> ApiKey:
    return ApiKey(id=row["id"], prefix=row["prefix"], scope=row["scope"], name=row["name"],
                  created_at=row["created_at"], revoked_at=row["revoked_at"],
                  tenant=row["tenant"])
