"""Workers: ``wf.submit`` enqueues, a ``Worker`` claims and executes, ``wf.result`` waits; on
SQLite and on PostgreSQL. Each run executed once by one of several workers; a dead owner's run
taken over; an idle PostgreSQL worker woken by the enqueue."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from flowrt import ErrorHandling, FlowError, SQLiteStore, Worker, Workflow, current
from flowrt._store.records import RunRow

pytestmark = pytest.mark.anyio


def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> Any:
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "runs.db", **options)
    pytest.importorskip("psycopg")
    from flowrt.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_url"), **options)


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with open_store(kind, request, tmp_path) as opened:
        yield opened


def counting(calls: dict[str, int], name: str = "work") -> Workflow:
    wf = Workflow(name)

    @wf.node
    async def double(x: int) -> int:
        key = current().run_id
        calls[key] = calls.get(key, 0) + 1
        return x * 2

    return wf


async def test_submitted_runs_are_executed_once_and_their_results_awaited(store: Any) -> None:
    calls: dict[str, int] = {}
    wf = counting(calls)
    ids = [await wf.submit({"x": i}, store=store) for i in range(20)]
    assert (await store.load_run(ids[0])).status == "queued"
    assert await Worker(store, [wf], concurrency=5).drain() == 20
    results = [await wf.result(run_id, store=store, timeout=5) for run_id in ids]
    assert [result.output for result in results] == [{"double": i * 2} for i in range(20)]
    assert calls == dict.fromkeys(ids, 1)
    assert await Worker(store, [wf]).drain() == 0  # nothing left


async def test_a_run_id_is_an_idempotency_key_for_submit(store: Any) -> None:
    calls: dict[str, int] = {}
    wf = counting(calls)
    assert await wf.submit({"x": 1}, store=store, run_id="order-7") == "order-7"
    assert await wf.submit({"x": 99}, store=store, run_id="order-7") == "order-7"
    assert await Worker(store, [wf]).drain() == 1
    assert (await wf.result("order-7", store=store)).output == {"double": 2}
    with pytest.raises(FlowError, match="belongs to workflow 'work'"):
        await counting(calls, "other").submit({"x": 1}, store=store, run_id="order-7")


async def test_submit_and_result_need_a_store_and_a_run(store: Any) -> None:
    wf = counting({})
    with pytest.raises(FlowError, match="no store"):
        await wf.submit({"x": 1})
    with pytest.raises(FlowError, match="no run 'nope'"):
        await wf.result("nope", store=store)
    run_id = await wf.submit({"x": 1}, store=store)
    with pytest.raises(TimeoutError):  # nobody executes it
        await wf.result(run_id, store=store, timeout=0.2)


async def test_a_worker_only_takes_runs_of_its_workflows(store: Any) -> None:
    mine, theirs = counting({}, "mine"), counting({}, "theirs")
    await mine.submit({"x": 1}, store=store)
    other = await theirs.submit({"x": 1}, store=store)
    assert await Worker(store, [mine]).drain() == 1
    assert (await store.load_run(other)).status == "queued"


async def test_a_run_whose_owner_died_is_taken_over(store: Any) -> None:
    calls: dict[str, int] = {}
    wf = counting(calls)
    row = RunRow("orphan", wf.name, '{"x": 4}', "running", "2026-11-29T10:00:00+00:00")
    store.lease_seconds = 0.3
    await store.claim("orphan", "a-process-that-dies", new=row)  # and never writes again
    worker = Worker(store, [wf], lease_seconds=0.3)
    assert await worker.drain() == 0  # its lease is live
    await anyio.sleep(0.4)
    assert (await store.load_run("orphan")).status == "interrupted"
    assert await worker.drain() == 1
    assert (await wf.result("orphan", store=store)).output == {"double": 8}
    assert calls == {"orphan": 1}


async def test_workers_sharing_a_store_execute_each_run_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    calls: dict[str, int] = {}
    wf = counting(calls)
    stores = [open_store(kind, request, tmp_path) for _ in range(4)]
    ids = [await wf.submit({"x": i}, store=stores[0]) for i in range(200)]
    executed = []

    async def work(opened: Any) -> None:
        executed.append(await Worker(opened, [wf], concurrency=25).drain())

    async with anyio.create_task_group() as tg:
        for opened in stores:
            tg.start_soon(work, opened)
    for opened in stores:
        await opened.aclose()
    assert sum(executed) == 200
    assert calls == dict.fromkeys(ids, 1)


async def test_an_idle_worker_starts_a_submitted_run_soon(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    started: list[float] = []
    wf = Workflow("prompt")

    @wf.node
    async def note() -> None:
        started.append(time.monotonic())

    poll = 5.0 if kind == "postgres" else 0.05  # PostgreSQL notifies; SQLite is polled
    async with open_store(kind, request, tmp_path) as store, anyio.create_task_group() as tg:
        tg.start_soon(Worker(store, [wf], poll_seconds=poll).serve)
        await anyio.sleep(0.3)  # the worker is idle, waiting
        submitted = time.monotonic()
        run_id = await wf.submit(store=store)
        result = await wf.result(run_id, store=store, timeout=5)
        tg.cancel_scope.cancel()
    assert result.status == "success"
    assert started[0] - submitted < 1.0  # well before the next poll on PostgreSQL


async def test_a_stopped_worker_hands_its_runs_to_the_next_one(store: Any) -> None:
    calls: list[str] = []
    first_done = anyio.Event()
    wf = Workflow("handover")

    @wf.node
    async def first() -> str:
        calls.append("first")
        return "kept"

    @wf.node(depends=[first])
    async def second() -> str:
        calls.append("second")
        if len(calls) == 2:  # the first worker: stopped while this node runs
            first_done.set()
            await anyio.sleep_forever()
        return "done"

    run_id = await wf.submit(store=store)
    async with anyio.create_task_group() as tg:
        tg.start_soon(Worker(store, [wf], poll_seconds=0.05).serve)
        await first_done.wait()
        await anyio.sleep(0.05)  # the first node's record is committed
        tg.cancel_scope.cancel()
    assert (await store.load_run(run_id)).status == "interrupted"
    assert await Worker(store, [wf]).drain() == 1  # at once: no lease to wait for
    result = await wf.result(run_id, store=store)
    assert result.output == {"second": "done"}
    assert calls == ["first", "second", "second"]  # the stored success was kept


def test_a_worker_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Worker(SQLiteStore(":memory:"), [], concurrency=0)


async def test_a_parked_retry_frees_the_workers_slot_and_continues_at_attempt_2(
    store: Any,
) -> None:
    times: dict[str, list[float]] = {"flaky": [], "quick": []}
    wf = Workflow("parks")

    @wf.node(error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=1.5))
    async def flaky(kind: str) -> str:
        if kind == "quick":
            times["quick"].append(time.monotonic())
            return "quick"
        times["flaky"].append(time.monotonic())
        if current().attempt == 1:
            raise ConnectionError("down for a moment")
        return "recovered"

    slow_run = await wf.submit({"kind": "flaky"}, store=store)
    quick_run = await wf.submit({"kind": "quick"}, store=store)
    async with anyio.create_task_group() as tg:  # one slot: the parked run must give it up
        tg.start_soon(Worker(store, [wf], concurrency=1, poll_seconds=0.05).serve)
        quick = await wf.result(quick_run, store=store, timeout=10)
        parked = await store.load_run(slow_run)
        slow = await wf.result(slow_run, store=store, timeout=10)
        tg.cancel_scope.cancel()
    assert quick.output == {"flaky": "quick"}
    assert parked.status == "waiting"  # while the quick run ran in its slot
    assert parked.owner is None
    assert times["flaky"][0] < times["quick"][0] < times["flaky"][1]
    assert times["flaky"][1] - times["flaky"][0] >= 1.5 - 0.02  # a real clock: 20 ms slack
    assert slow.output == {"flaky": "recovered"}
    assert slow["flaky"].attempts == 2
