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


@pytest.fixture
def vanishing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A durable run cancelled in this test writes nothing more, as if its process had died at
    that moment (a caller's cancellation would store it ``cancelled``); expire its lease to
    let others take it (``expire_leases``)."""
    from flowrt._engine.durable import DurableRun

    async def vanish(self: DurableRun) -> None:
        return None

    monkeypatch.setattr(DurableRun, "cancelled", vanish)


def expire_leases(path: object) -> None:
    """Expire every lease in SQLite file ``path``: the owners are presumed dead."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(str(path))) as db, db:
        db.execute("UPDATE runs SET lease_until = 1 WHERE owner IS NOT NULL")


async def until(check: object, *, timeout: float = 20.0, what: str = "the condition") -> None:
    """Wait (polling every 10 ms) until ``check()`` (sync or async) is true, at most
    ``timeout`` seconds: a test waits for a condition, never for a fixed time."""
    import inspect

    import anyio

    assert callable(check)
    with anyio.fail_after(timeout):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return
            await anyio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")  # pragma: no cover


def open_store(
    kind: str, request: pytest.FixtureRequest, path: object, **settings: object
) -> object:
    """A new store of ``kind`` (``sqlite``: the file ``path``; ``postgres``: a fresh database on
    the session's server), with ``settings`` (lease, heartbeat...)."""
    from flowrt import SQLiteStore

    if kind == "sqlite":
        return SQLiteStore(path, **settings)  # type: ignore[arg-type]
    from flowrt.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_url"), **settings)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: object) -> object:
    """Each test once on SQLite and once on PostgreSQL."""
    from pathlib import Path

    async with open_store(request.param, request, Path(str(tmp_path)) / "runs.db") as opened:  # type: ignore[attr-defined]
        yield opened
