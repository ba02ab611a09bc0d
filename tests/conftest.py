"""Shared fixtures: every async test runs on asyncio and trio; timing tests opt into trio's
MockClock (``mock_clock`` marker-free: they override ``anyio_backend``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL server for the whole session (see tests/pg_server.py)."""
    from pg_server import postgres_server

    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def postgres_url(postgres_dsn: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on that server, for one test."""
    from pg_server import fresh_database

    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    return fresh_database(postgres_dsn, name)
