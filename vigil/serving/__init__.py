"""The scoring service: :class:`ScoringService` (no HTTP) and its FastAPI app.

``vigil serve`` runs it; see docs/serving.md for the API.
"""

from vigil.serving._app import MAX_BODY_BYTES, ApiProblem, create_app
from vigil.serving._service import ScoringService, StoreLists, check_workers
from vigil.serving._settings import Settings, app_from_env, build_service

__all__ = [
    "MAX_BODY_BYTES",
    "ApiProblem",
    "ScoringService",
    "Settings",
    "StoreLists",
    "app_from_env",
    "build_service",
    "check_workers",
    "create_app",
]
