"""Shared test fixtures: the real PostgreSQL and Redis servers, when their URLs are set.

``VIGIL_TEST_POSTGRES_URL`` and ``VIGIL_TEST_REDIS_URL`` (``.ci/run`` sets both) point the
tests at real servers; where a URL is set, failing to connect fails the test. Where none is
set, the tests that need the server skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of an empty PostgreSQL schema of its own, dropped afterwards."""
    url = os.environ.get("VIGIL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("VIGIL_TEST_POSTGRES_URL is not set (no PostgreSQL server to test against)")
    import sqlalchemy as sa

    schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL, its database flushed before and after the test."""
    url = os.environ.get("VIGIL_TEST_REDIS_URL")
    if not url:
        pytest.skip("VIGIL_TEST_REDIS_URL is not set (no Redis server to test against)")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
