"""Durable runs that lose nothing: the run row first, every record kept, one owner per run,
run ids as idempotency keys, retry waits that survive, strict JSON, schema versions."""

from __future__ import annotations

import functools
import math
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import expire_leases, until

import flowrt
from flowrt import (
    Condition,
    ErrorHandling,
    FlowError,
    InputError,
    LeaseLost,
    RunInProgress,
    SQLiteStore,
    Workflow,
    resume_due,
)
from flowrt._store.sqlite import MIGRATIONS, SCHEMA_VERSION

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(path) as opened:
        yield opened


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, params).fetchall()


async def stored_status(store: SQLiteStore, run_id: str, status: str) -> bool:
    """Whether ``run_id`` is stored (and reported) with ``status``."""
    run = await store.load_run(run_id)
    return run is not None and run.status == status


def interrupt(path: Path, run_id: str) -> None:
    """Make a stored run look like its owner died mid-run (running, lease expired)."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "UPDATE runs SET status = 'running', owner = 'dead:1:x', lease_until = 1, "
            "finished_at = NULL WHERE run_id = ?",
            (run_id,),
        )


async def test_the_run_row_is_committed_before_the_first_node_starts(
    path: Path, store: SQLiteStore
) -> None:
    seen: list[Any] = []
    wf = Workflow("first", store=store)

    @wf.node
    def first() -> str:  # reads the file through its own connection, as another process would
        seen.extend(query(path, "SELECT status, owner IS NOT NULL, input FROM runs"))
        return "ok"

    await wf.run({"k": 1})
    assert seen == [("running", 1, '{"k": 1}')]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sequential_runs_sweeping_the_commit_delay_keep_every_node(
    path: Path, store: SQLiteStore
) -> None:
    wf = Workflow("sweep", store=store)
    delay = {"seconds": 0.0}

    @wf.node
    async def first() -> int:
        return 1

    @wf.node(depends=[first])
    async def second() -> int:
        await anyio.sleep(delay["seconds"])
        return 2

    run_ids = []
    for i in range(80):  # 0 to 20 ms: before, at and after the 10 ms commit delay
        delay["seconds"] = i * 0.00025
        run_ids.append((await wf.run()).run_id)
    counts = dict(query(path, "SELECT run_id, count(*) FROM nodes GROUP BY run_id"))
    assert [counts.get(run_id, 0) for run_id in run_ids] == [2] * 80
    assert query(path, "SELECT DISTINCT status FROM runs") == [("success",)]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_hundred_concurrent_runs_on_one_store_object_keep_every_node(
    path: Path, store: SQLiteStore
) -> None:
    wf = Workflow("many", store=store)

    @wf.node
    async def first() -> int:
        return 1

    @wf.node(depends=[first])
    async def second() -> int:
        await anyio.sleep(0.01)
        return 2

    results = []

    async def one() -> None:
        results.append(await wf.run())

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(one)
    assert [r.status for r in results] == ["success"] * 100
    assert query(path, "SELECT count(*) FROM nodes") == [(200,)]
    assert query(path, "SELECT count(*) FROM runs WHERE status = 'success'") == [(100,)]


def test_four_processes_share_one_file_and_keep_every_node(path: Path) -> None:
    script = HERE / "durable_many.py"
    children = [
        subprocess.Popen([sys.executable, str(script), str(path), str(p), "25"],
                         stderr=subprocess.PIPE, text=True)
        for p in range(4)
    ]  # fmt: skip
    errors = [child.communicate(timeout=120)[1] for child in children]
    assert [child.returncode for child in children] == [0] * 4, errors
    assert not any("locked" in text for text in errors)
    assert query(path, "SELECT count(*), min(status), max(status) FROM runs") == [
        (100, "success", "success")
    ]
    assert query(path, "SELECT count(*) FROM nodes WHERE status = 'success'") == [(300,)]


async def test_a_finished_run_id_returns_the_stored_result_and_runs_nothing(
    store: SQLiteStore,
) -> None:
    calls: list[int] = []
    wf = Workflow("once", store=store)

    @wf.node
    async def effect(n: int) -> int:
        calls.append(n)
        return n * 2

    first = await wf.run({"n": 3}, run_id="order-7")
    again = await wf.run({"n": 99}, run_id="order-7")  # the id names the run: input ignored
    assert calls == [3]
    assert (again.run_id, again.status, again["effect"].output) == ("order-7", "success", 6)
    assert again.output == first.output
    assert (await wf.resume("order-7"))["effect"].output == 6  # a success is not run again
    assert calls == [3]


async def test_a_run_id_in_progress_is_refused_even_in_the_same_process(
    store: SQLiteStore,
) -> None:
    started, release = anyio.Event(), anyio.Event()
    wf = Workflow("busy", store=store)

    @wf.node
    async def slow() -> str:
        started.set()
        await release.wait()
        return "done"

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: wf.run(run_id="r1"))
        await started.wait()
        with pytest.raises(RunInProgress, match="'r1' is being executed"):
            await wf.run(run_id="r1")
        with pytest.raises(RunInProgress):
            await wf.resume("r1")
        release.set()
    assert (await wf.run(run_id="r1")).status == "success"


async def test_a_run_id_of_another_workflow_is_refused(store: SQLiteStore) -> None:
    one = Workflow("one", store=store)
    one.node(lambda: 1, name="a")
    await one.run(run_id="shared")
    two = Workflow("two", store=store)
    two.node(lambda: 2, name="b")
    with pytest.raises(FlowError, match="belongs to workflow 'one'"):
        await two.run(run_id="shared")


def chain(store: SQLiteStore, calls: list[str], broken: set[str], slow: float = 0) -> Workflow:
    wf = Workflow("chain", store=store)

    def step(name: str) -> Any:
        async def fn() -> str:
            calls.append(name)
            await anyio.sleep(slow)
            if name in broken:
                raise RuntimeError(f"{name} broke")
            return name

        return fn

    previous: list[str] = []
    for name in ("a", "b", "c"):
        wf.node(step(name), name=name, depends=previous)
        previous = [name]
    return wf


async def test_an_interrupted_run_is_reported_and_resumed_once_by_two_resumers(
    path: Path, store: SQLiteStore
) -> None:
    calls: list[str] = []
    first = await chain(store, calls, {"b"}).run(run_id="r")
    assert first.status == "failure"
    interrupt(path, "r")
    assert (await store.load_run("r")).status == "interrupted"  # type: ignore[union-attr]
    assert [run.run_id for run in await store.list_runs(status="interrupted")] == ["r"]
    outcomes: list[str] = []
    calls.clear()

    async def resumer() -> None:
        with SQLiteStore(path) as own:  # separate connections, as separate processes have
            try:
                outcomes.append((await chain(own, calls, set(), 0.2).resume("r")).status)
            except RunInProgress:
                outcomes.append("refused")

    async with anyio.create_task_group() as tg:
        tg.start_soon(resumer)
        tg.start_soon(resumer)
    assert sorted(outcomes) == ["refused", "success"]
    assert calls == ["b", "c"]  # the unfinished nodes ran once; a did not run again


async def test_two_resume_due_callers_run_a_due_run_once(path: Path, store: SQLiteStore) -> None:
    calls: list[str] = []
    await chain(store, calls, {"c"}).run(run_id="due")
    with closing(sqlite3.connect(path)) as db, db:  # as if a workflow retry were pending
        db.execute("UPDATE runs SET status = 'retrying', retry_due = 1 WHERE run_id = 'due'")
    calls.clear()
    results: list[Any] = []

    async def caller() -> None:
        with SQLiteStore(path) as own:
            results.extend(await resume_due(own, [chain(own, calls, set())]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        tg.start_soon(caller)
    assert [r.status for r in results] == ["success"]
    assert calls == ["a", "b", "c"]  # a workflow-level retry runs from the first node, once
    assert results[0].attempts == 2


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_owner_whose_lease_was_taken_over_is_refused_and_drops_the_run(
    path: Path,
) -> None:
    calls: list[str] = []
    gate = anyio.Event()

    def build(store: SQLiteStore) -> Workflow:
        wf = Workflow("lease", store=store)

        @wf.node
        async def a() -> str:
            calls.append("a")
            return "a"

        @wf.node(depends=[a])
        async def b() -> str:
            calls.append("b")
            await gate.wait()
            return "b"

        return wf

    stale = SQLiteStore(path, lease_seconds=0.3, heartbeat_seconds=60)
    with stale, SQLiteStore(path) as other:
        async with anyio.create_task_group() as tg:
            outcome: list[BaseException] = []

            async def first_owner() -> None:
                try:
                    await build(stale).run(run_id="L")
                except LeaseLost as exc:
                    outcome.append(exc)

            tg.start_soon(first_owner)
            await anyio.sleep(0.6)  # the first owner's lease expired (it did not renew)
            assert (await other.load_run("L")).status == "interrupted"  # type: ignore[union-attr]
            taken: list[Any] = []

            async def second_owner() -> None:
                taken.append(await build(other).run(run_id="L"))  # resumes: b runs again

            tg.start_soon(second_owner)
            while calls.count("b") < 2:  # the second owner has claimed the run and runs b
                await anyio.sleep(0.01)
            gate.set()  # both b finish; the first owner's write is refused
        assert taken[0].status == "success"
        assert len(outcome) == 1
        assert isinstance(outcome[0], RunInProgress)
        stored = await other.load_run("L")
    assert stored is not None
    assert (stored.status, stored.owner) == ("success", None)
    assert sorted(calls) == ["a", "b", "b"]


@pytest.mark.usefixtures("vanishing")
async def test_a_node_parked_in_a_retry_wait_continues_at_its_next_attempt(
    path: Path,
) -> None:
    attempts: list[int] = []
    with SQLiteStore(path, park_after_seconds=0.2) as store:
        wf = Workflow("parked", store=store)
        policy = ErrorHandling(max_retries=2, retry_interval_seconds=0.3)

        @wf.node(error_handling=policy)
        async def flaky() -> str:
            attempts.append(flowrt.current().attempt)
            if len(attempts) == 1:
                raise ConnectionError("down")
            return "up"

        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(wf.run, run_id="p"))
            await until(lambda: stored_status(store, "p", "waiting"), what="the parked wait")
            tg.cancel_scope.cancel()  # the process dies in the retry wait
        expire_leases(path)
        parked = await store.load_run("p")
        assert parked is not None
        assert parked.status == "waiting"
        assert parked.retry_due is not None
        (node,) = parked.nodes
        assert (node.status, node.attempts, node.next_attempt) == ("waiting", 1, 2)
        assert query(path, "SELECT status, next_attempt FROM nodes") == [("waiting", 2)]
        assert node.due == pytest.approx(parked.retry_due, abs=1e-5)
        assert node.error == {"type": "ConnectionError", "message": "down"}
        assert await resume_due(store, [wf], now=time.time() - 10) == []  # not due yet
        (result,) = await resume_due(store, [wf], now=parked.retry_due)
    assert attempts == [1, 2]  # attempt 2, not attempt 1 again
    assert (result.status, result["flaky"].attempts) == ("success", 2)
    assert [a.error.type if a.error else None for a in result["flaky"].trace] == [
        "ConnectionError",
        None,
    ]


async def test_a_nan_output_fails_with_output_error_and_the_nodes_view_stays_readable(
    path: Path, store: SQLiteStore
) -> None:
    wf = Workflow("nan", store=store)
    wf.node(lambda: {"x": math.nan}, name="nan", error_handling=ErrorHandling.ignore())
    wf.node(lambda: [math.inf], name="inf", error_handling=ErrorHandling.ignore())
    result = await wf.run()
    for name in ("nan", "inf"):
        assert result[name].error is not None
        assert result[name].error.type == "OutputError"
    assert query(path, "SELECT json_extract(error, '$.type') FROM nodes") == [("OutputError",)] * 2


DEEP: Any = []
for _ in range(100_000):
    DEEP = [DEEP]


@pytest.mark.parametrize("bad", [{"x": math.nan}, {"x": object()}, {"deep": DEEP}])
async def test_a_durable_input_that_is_not_strict_json_is_an_input_error(
    store: SQLiteStore, bad: Any
) -> None:
    wf = Workflow("inputs", store=store)
    wf.node(lambda: 1, name="one")
    with pytest.raises(InputError, match="cannot be stored as JSON"):
        await wf.run(bad)
    assert await store.list_runs() == []


def test_an_old_database_is_migrated_and_upgrades_are_idempotent(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        for statement in MIGRATIONS[0]:  # the schema flowrt 0.1 made, with one run in it
            db.execute(statement)
        db.execute(
            "INSERT INTO runs VALUES ('old', 'wf', '{}', NULL, 'success', 1, NULL, 'null', "
            "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:01+00:00', NULL)"
        )
        db.execute(
            "INSERT INTO node_batches (run_id, records) VALUES "
            "('old', '[[\"a\", \"success\", 1, null, 1, 0.1, null, null]]')"
        )
    command = [sys.executable, "-m", "flowrt", "db", "upgrade", "--store", str(path)]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        assert f"schema version {SCHEMA_VERSION}" in done.stdout
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(path, "SELECT name, status, output FROM nodes") == [("a", "success", 1)]
    with SQLiteStore(path) as store:
        run = anyio.run(store.load_run, "old")
    assert run is not None
    assert (run.status, [n.name for n in run.nodes]) == ("success", ["a"])


async def test_prune_deletes_only_runs_that_ended_long_enough_ago(
    path: Path, store: SQLiteStore
) -> None:
    calls: list[str] = []
    await chain(store, calls, set()).run(run_id="old")
    await chain(store, calls, set()).run(run_id="new")
    interrupt(path, "new")  # running: never pruned
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE runs SET finished_at = '2020-01-01T00:00:00+00:00'")
    assert await store.prune(7 * 86400) == 1
    assert [run.run_id for run in await store.list_runs()] == ["new"]
    assert query(path, "SELECT DISTINCT run_id FROM node_batches") == [("new",)]


async def test_current_gives_the_idempotency_key_in_every_kind_of_node(
    store: SQLiteStore,
) -> None:
    seen: dict[str, Any] = {}
    wf = Workflow("keys", store=store)

    @wf.node
    async def on_loop() -> str:
        seen["loop"] = flowrt.current()
        return "ok"

    @wf.node
    def in_thread() -> str:
        seen["thread"] = flowrt.current()
        return "ok"

    @wf.map(items=[10, 20])
    async def items(item: int) -> int:
        seen[f"item{item}"] = flowrt.current().idempotency_key
        return item

    await wf.run(run_id="k1")
    assert seen["loop"] == flowrt.RunContext("k1", "keys", "on_loop", 1)
    assert seen["loop"].idempotency_key == "k1:on_loop"
    assert seen["thread"].idempotency_key == "k1:in_thread"
    assert (seen["item10"], seen["item20"]) == ("k1:items[0]", "k1:items[1]")
    with pytest.raises(FlowError, match="only available inside a node"):
        flowrt.current()


def test_current_reaches_a_process_node() -> None:
    from process_fns import context_key  # type: ignore[import-not-found]

    wf = Workflow("proc")
    wf.node(context_key, executor="process")
    result = anyio.run(lambda: wf.run(run_id="pr"))
    assert result["context_key"].output == "pr:context_key@1"


async def test_resume_after_a_choice_never_releases_the_stored_join_again(
    path: Path, store: SQLiteStore
) -> None:
    calls: list[str] = []
    broken = {"after"}
    wf = Workflow("choice", store=store)

    @wf.node
    async def check() -> str:
        calls.append("check")
        return "ok"

    route = wf.choice("route", {"ok": Condition("$.check.output", "==", "ok"), "no": None})

    @wf.node(depends=[route["ok"]])
    async def yes() -> str:
        calls.append("yes")
        return "yes"

    @wf.node(depends=[route["no"]])
    async def no() -> str:
        calls.append("no")
        return "no"

    @wf.node(depends=[yes, no], trigger="any")
    async def join() -> str:
        calls.append("join")
        return "joined"

    @wf.node(depends=[join])
    async def after() -> str:
        calls.append("after")
        if "after" in broken:
            raise RuntimeError("not yet")
        return "after"

    first = await wf.run(run_id="c")
    assert first.status == "failure"
    broken.clear()
    resumed = await wf.resume("c")
    assert resumed.status == "success"
    assert calls == ["check", "yes", "join", "after", "after"]
    assert resumed["no"].status == "skip"
    again = await wf.resume("c")  # a successful run: returned as stored, nothing runs
    assert again.status == "success"
    assert len(calls) == 5


def deep_key() -> str:
    return flowrt.current().idempotency_key  # called from a node, through a helper


async def test_current_follows_attempts_loops_helpers_and_map_items() -> None:
    seen: list[Any] = []
    wf = Workflow("where")

    @wf.node(error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=0))
    async def retried() -> str:
        seen.append(("retried", flowrt.current().attempt, deep_key()))
        if flowrt.current().attempt == 1:
            raise ConnectionError("once")
        return "ok"

    @wf.loop(max_loops=3, on_max_loops="return")
    async def agent(state: Any) -> Any:
        seen.append(("agent", flowrt.current().node))
        return state

    @wf.map(items=[5, 6], error_handling=ErrorHandling(max_retries=1))
    def sync_items(item: int) -> str:
        return flowrt.current().idempotency_key

    @wf.map(items=[7])
    async def plain_items(item: int) -> int | None:
        return flowrt.current().item

    result = await wf.run(run_id="w")
    retried_seen = [entry for entry in seen if entry[0] == "retried"]
    assert retried_seen == [("retried", 1, "w:retried"), ("retried", 2, "w:retried")]
    assert [entry for entry in seen if entry[0] == "agent"] == [("agent", "agent")] * 3
    assert [e["output"] for e in result["sync_items"].output] == [
        "w:sync_items[0]",
        "w:sync_items[1]",
    ]
    assert result["plain_items"].output[0]["output"] == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_current_answers_in_a_task_a_node_spawns_itself() -> None:
    import asyncio

    wf = Workflow("spawned")

    @wf.node
    async def spawner() -> str:
        task = asyncio.get_running_loop().create_task(_ask())  # inherits the node's context
        return str((await task).idempotency_key)

    assert (await wf.run(run_id="s"))["spawner"].output == "s:spawner"


async def _ask() -> Any:
    return flowrt.current()


async def test_a_new_attempt_forgets_the_waits_of_the_last_one(store: SQLiteStore) -> None:
    from flowrt._engine.durable import DurableRun
    from flowrt._engine.observe import Wait
    from flowrt._engine.states import NodeState
    from flowrt._store.records import RunRow

    durable = DurableRun(store, RunRow("w", "wf", "{}", "running", "2026-01-01T00:00:00"))
    waits = NodeState()
    wait = Wait("retry", 5, time.time() + 5)
    durable.node_waiting("a", waits, wait)  # parked: the run is waiting...
    assert durable.row.status == "waiting"
    durable.run_started(2)  # ...then the run deadline cut that wait and a workflow retry started
    durable.node_waiting("a", waits, wait)
    durable.node_started("a", 2)  # the wait is over
    assert (durable.row.status, durable.row.retry_due) == ("running", None)
