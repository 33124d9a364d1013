"""The service's settings, from the command line or the environment (``VIGIL_*``).

The library never reads the environment; the service does, here, because ``vigil serve
--workers N`` starts N processes that each build their app from these variables.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from vigil._errors import ConfigError
from vigil.models import ModelBundle
from vigil.serving._app import create_app
from vigil.serving._service import ScoringService
from vigil.store import Store

if TYPE_CHECKING:
    from vigil.identity import VerificationSessions


@dataclass(frozen=True)
class Settings:
    """Where the model, the store and (optionally) the Redis state are; the identity key
    (``VIGIL_IDENTITY_KEY``: without it identity verification is off) and whether this
    process runs an identity worker (``VIGIL_IDENTITY_WORKER``, default 1)."""

    bundle: Path
    store_url: str
    redis_url: str | None = None
    snapshot_every: int = 50_000
    identity_key: str | None = field(default=None, repr=False)
    identity_worker: bool = True

    def to_env(self) -> dict[str, str]:
        env = {"VIGIL_BUNDLE": str(self.bundle), "VIGIL_STORE_URL": self.store_url,
               "VIGIL_SNAPSHOT_EVERY": str(self.snapshot_every),
               "VIGIL_IDENTITY_WORKER": "1" if self.identity_worker else "0"}
        if self.redis_url:
            env["VIGIL_REDIS_URL"] = self.redis_url
        if self.identity_key:
            env["VIGIL_IDENTITY_KEY"] = self.identity_key
        return env

    @classmethod
    def from_env(cls) -> Settings:
        missing = [k for k in ("VIGIL_BUNDLE", "VIGIL_STORE_URL") if not os.environ.get(k)]
        if missing:
            raise ConfigError(f"set {' and '.join(missing)} (or run `vigil serve`)")
        every = os.environ.get("VIGIL_SNAPSHOT_EVERY", "50000")
        if not every.isdigit() or int(every) < 1:
            raise ConfigError(f"VIGIL_SNAPSHOT_EVERY must be a positive integer, not {every!r}")
        worker = os.environ.get("VIGIL_IDENTITY_WORKER", "1")
        if worker not in ("0", "1"):
            raise ConfigError(f"VIGIL_IDENTITY_WORKER must be 1 (run an identity worker in "
                              f"each process) or 0 (none), not {worker!r}")
        return cls(Path(os.environ["VIGIL_BUNDLE"]), os.environ["VIGIL_STORE_URL"],
                   os.environ.get("VIGIL_REDIS_URL") or None, int(every),
                   os.environ.get("VIGIL_IDENTITY_KEY") or None, worker == "1")


def build_service(settings: Settings,
                  progress: Callable[[str], None] | None = None) -> ScoringService:
    """Open the store (migrating it), load the bundle, start the scoring service."""
    bundle = ModelBundle.load(settings.bundle)
    store = Store.open(settings.store_url, migrate=True)
    return ScoringService(store, bundle, redis_url=settings.redis_url,
                          snapshot_every=settings.snapshot_every, progress=progress)


def build_identity(settings: Settings, store: Store) -> VerificationSessions | None:
    """Identity verification on ``store`` with the settings' key (and the cross-session
    signals), or None without a key."""
    if not settings.identity_key:
        return None
    from vigil.identity import IdentitySignals, KeyRing, VerificationSessions

    signals = IdentitySignals()
    return VerificationSessions(store, KeyRing.from_text(settings.identity_key),
                                signals=signals)


def app_from_env() -> FastAPI:
    """The ASGI app factory ``uvicorn`` calls in each worker process."""
    settings = Settings.from_env()
    service = build_service(settings)
    return create_app(service, close_on_shutdown=True,
                      identity=build_identity(settings, service.store),
                      identity_worker=settings.identity_worker, freeze_heap=True)
