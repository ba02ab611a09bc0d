"""The store's run-limit claims against a small reference model (hypothesis): random programs
of submits (runs with one or two keys, ``max_runs`` 1 or 2), worker claims of a few runs, runs
ending and queued runs cancelled, on SQLite and (fewer examples) PostgreSQL. After every claim
the store took exactly the runs the model says, and no key ever has more holders than its
``max_runs``.

The model: runs queue in submit order; a queued run may start when, for each of its keys, the
key's holders and the runs queued for it earlier number fewer than ``max_runs``; a claim of
``n`` takes the first ``n`` that may start."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrt import SQLiteStore
from flowrt._store.records import RunKey, RunRow

KEYS = {"a": 1, "b": 2, "c": 1}
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

operation = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(["a", "b", "c", "ab", "bc", "ac"])),
    st.tuples(st.just("claim"), st.integers(1, 3)),
    st.tuples(st.just("end"), st.integers(0, 30)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
)


class Model:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}  # run id -> its keys ("ab")
        self.status: dict[str, str] = {}
        self.order: list[str] = []

    def may_start(self, run_id: str) -> bool:
        place = self.order.index(run_id)
        for key in self.keys[run_id]:
            holders = sum(
                1 for r, s in self.status.items() if s == "running" and key in self.keys[r]
            )
            earlier = sum(
                1 for r in self.order[:place] if self.status[r] == "queued" and key in self.keys[r]
            )
            if holders + earlier >= KEYS[key]:
                return False
        return True

    def claim(self, n: int) -> list[str]:
        ready = [r for r in self.order if self.status[r] == "queued" and self.may_start(r)][:n]
        for run_id in ready:
            self.status[run_id] = "running"
        return ready


async def play(store: Any, program: list[tuple[str, Any]]) -> None:
    model, tokens, rows = Model(), {}, {}
    await store.upgrade()
    for step, (kind, arg) in enumerate(program):
        if kind == "submit":
            run_id = f"r{step:03}"
            limits = tuple(RunKey(f"w:k={key}", KEYS[key], "queue") for key in arg)
            row = RunRow(run_id, "w", "{}", "queued", (EPOCH + timedelta(seconds=step)).isoformat())
            row.limits = limits
            assert await store.enqueue(row)
            model.keys[run_id], model.status[run_id] = arg, "queued"
            model.order.append(run_id)
            rows[run_id] = row
        elif kind == "claim":
            claims = await store.claim_ready("worker", ["w"], arg)
            assert sorted(c.run.run_id for c in claims) == sorted(model.claim(arg)), step
            tokens.update({c.run.run_id: c.token for c in claims})
        else:
            chosen = [
                r
                for r in model.order
                if model.status[r] == ("running" if kind == "end" else "queued")
            ]
            if not chosen:
                continue
            run_id = chosen[arg % len(chosen)]
            if kind == "end":
                done = replace(
                    rows[run_id], status="success", finished_at="2026-01-02T00:00:00+00:00"
                )
                await store.write(run_id, tokens[run_id], 1, [], done, release=True)
            else:
                assert await store.cancel(run_id) == "cancelled"
            model.status[run_id] = "success" if kind == "end" else "cancelled"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(program=st.lists(operation, min_size=1, max_size=40))
def test_sqlite_claims_match_the_model(tmp_path: Path, program: list[tuple[str, Any]]) -> None:
    path = tmp_path / "model.db"
    path.unlink(missing_ok=True)

    async def go() -> None:
        async with SQLiteStore(path) as store:
            await play(store, program)

    anyio.run(go)
    with closing(sqlite3.connect(path)) as db:  # the queued marks follow the runs exactly
        marked = {r for (r,) in db.execute("SELECT DISTINCT run_id FROM run_keys WHERE queued = 1")}
        queued = {r for (r,) in db.execute("SELECT run_id FROM runs WHERE status = 'queued'")}
    assert marked == queued


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(program=st.lists(operation, min_size=1, max_size=30))
def test_postgres_claims_match_the_model(postgres_dsn: str, program: list[tuple[str, Any]]) -> None:
    pytest.importorskip("psycopg")
    from pg_server import fresh_database

    from flowrt.postgres import PostgresStore

    url = fresh_database(postgres_dsn, "limit_model")

    async def go() -> None:
        async with PostgresStore(url) as store:
            await play(store, program)

    anyio.run(go)
