"""The service's settings, from the command line or the environment (``VIGIL_*``).

The library never reads the environment; the service does, here, because ``vigil serve
--workers N`` starts N processes that each build their app from these variables.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from vigil._errors import ConfigError
from vigil.models import ModelBundle
from vigil.serving._app import create_app
from vigil.serving._service import ScoringService
from vigil.store import Store


@dataclass(frozen=True)
class Settings:
    """Where the model, the store and (optionally) the Redis state are."""

    bundle: Path
    store_url: str
    redis_url: str | None = None
    snapshot_every: int = 50_000

    def to_env(self) -> dict[str, str]:
        env = {"VIGIL_BUNDLE": str(self.bundle), "VIGIL_STORE_URL": self.store_url,
               "VIGIL_SNAPSHOT_EVERY": str(self.snapshot_every)}
        if self.redis_url:
            env["VIGIL_REDIS_URL"] = self.redis_url
        return env

    @classmethod
    def from_env(cls) -> Settings:
        missing = [k for k in ("VIGIL_BUNDLE", "VIGIL_STORE_URL") if not os.environ.get(k)]
        if missing:
            raise ConfigError(f"set {' and '.join(missing)} (or run `vigil serve`)")
        every = os.environ.get("VIGIL_SNAPSHOT_EVERY", "50000")
        if not every.isdigit() or int(every) < 1:
            raise ConfigError(f"VIGIL_SNAPSHOT_EVERY must be a positive integer, not {every!r}")
        return cls(Path(os.environ["VIGIL_BUNDLE"]), os.environ["VIGIL_STORE_URL"],
                   os.environ.get("VIGIL_REDIS_URL") or None, int(every))


def build_service(settings: Settings,
                  progress: Callable[[str], None] | None = None) -> ScoringService:
    """Open the store (migrating it), load the bundle, start the scoring service."""
    bundle = ModelBundle.load(settings.bundle)
    store = Store.open(settings.store_url, migrate=True)
    return ScoringService(store, bundle, redis_url=settings.redis_url,
                          snapshot_every=settings.snapshot_every, progress=progress)


def app_from_env() -> FastAPI:
    """The ASGI app factory ``uvicorn`` calls in each worker process."""
    return create_app(build_service(Settings.from_env()), close_on_shutdown=True)
