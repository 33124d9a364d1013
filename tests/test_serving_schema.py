"""Schemathesis against the API's own OpenAPI document: whatever it generates, valid or not,
the service never answers 5xx (bounded examples per operation), identity routes included
(served with a key, so they answer rather than say 503)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from vigil.identity import KeyRing, VerificationSessions, new_key
from vigil.serving import ScoringService, create_app
from vigil.store import Store


def test_no_operation_answers_5xx(small_bundle, tmp_path):
    store = Store.open(tmp_path / "vigil.db", migrate=True)
    admin = {"Authorization": f"Bearer {store.create_api_key('admin', 'schemathesis')[1]}"}
    service = ScoringService(store, small_bundle)
    try:
        identity = VerificationSessions(store, KeyRing.from_text(new_key()))
        schema = schemathesis.openapi.from_asgi("/openapi.json",
                                                create_app(service, identity=identity))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 20
        for operation in operations:
            _check(operation, admin)
    finally:
        service.close()
        store.close()


def _check(operation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=20, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def no_server_error(case):
        response = case.call(headers={**(case.headers or {}), **headers})
        assert response.status_code < 500, (operation.label, response.text)

    no_server_error()
