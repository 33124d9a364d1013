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


@pytest.fixture(scope="session")
def small_world():
    """Three weeks of a small simulated world (300 cards)."""
    from vigil.simulate import HandbookWorld

    return HandbookWorld(n_cards=300, n_terminals=600).simulate(21, start="2024-01-01", seed=3)


@pytest.fixture(scope="session")
def small_bundle(small_world):
    """A small model on the default features, trained on the small world."""
    from vigil.features import payments_default
    from vigil.pipeline import default_train_window, prepare, train_bundle

    prepared = prepare(small_world, payments_default())
    window = default_train_window(prepared, delay_days=3)
    return train_bundle(prepared, window, params={"n_estimators": 40})


@pytest.fixture(scope="session")
def small_bundle_dir(small_bundle, tmp_path_factory):
    """The small bundle saved in a folder."""
    folder = tmp_path_factory.mktemp("bundle")
    small_bundle.save(folder)
    return folder
