"""Durable runs: the SQLite store, resume, OutputError, retries that survive a restart, a crash."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import expire_leases

from flowrt import (
    ErrorHandling,
    FlowError,
    InputError,
    RunStore,
    SQLiteStore,
    Workflow,
    WorkflowRetry,
    resume_due,
)

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "runs.db") as opened:
        yield opened


def diamond(store: SQLiteStore, calls: dict[str, int], broken: set[str]) -> Workflow:
    wf = Workflow("diamond", store=store)

    def node(name: str) -> Any:
        async def fn(x: int = 0) -> dict[str, Any]:
            calls[name] = calls.get(name, 0) + 1
            if name in broken:
                raise RuntimeError(f"{name} broke")
            return {"node": name, "x": x}

        return fn

    a = wf.node(node("a"), name="a")
    b = wf.node(node("b"), name="b", depends=[a])
    c = wf.node(node("c"), name="c", depends=[a])
    wf.node(node("d"), name="d", depends=[b, c], inputs={"x": "$.input.x"})
    return wf


async def test_a_durable_run_stores_input_envelopes_and_status(store: SQLiteStore) -> None:
    assert isinstance(store, RunStore)
    result = await diamond(store, {}, {"c"}).run({"x": 5})
    run = await store.load_run(result.run_id)
    assert run is not None
    assert (run.workflow, run.status, run.input) == ("diamond", "failure", '{"x": 5}')
    assert run.error is not None
    assert (run.error["type"], run.error["message"]) == ("RuntimeError", "c broke")
    assert 'raise RuntimeError(f"{name} broke")' in run.error["traceback"]  # stored, whole
    rows = {row.name: row for row in run.nodes}
    assert {name: row.status for name, row in rows.items()} == {
        "a": "success",
        "b": "success",
        "c": "failure",
        "d": "skip",
    }
    assert rows["a"].output == '{"node": "a", "x": 5}'
    assert rows["d"].reason == "'c' failed"
    for name, row in rows.items():  # durations are stored to the microsecond
        assert row.duration == pytest.approx(result[name].duration, abs=1e-6)
    assert [r.run_id for r in await store.list_runs()] == [result.run_id]


async def test_resume_reruns_only_the_nodes_that_did_not_succeed(store: SQLiteStore) -> None:
    calls: dict[str, int] = {}
    broken = {"c"}
    wf = diamond(store, calls, broken)
    first = await wf.run({"x": 5})
    assert first.status == "failure"
    broken.clear()
    resumed = await wf.resume(first.run_id)
    assert resumed.status == "success"
    assert resumed.run_id == first.run_id
    assert calls == {"a": 1, "b": 1, "c": 2, "d": 1}
    assert resumed["a"].output == {"node": "a", "x": 5}  # read back from the store
    assert resumed["d"].output == {"node": "d", "x": 5}  # same input as the first run
    stored = await store.load_run(first.run_id)
    assert stored is not None
    assert stored.status == "success"


async def test_resume_refuses_unknown_or_foreign_runs(store: SQLiteStore) -> None:
    wf = diamond(store, {}, set())
    with pytest.raises(FlowError, match="no run 'nope'"):
        await wf.resume("nope")
    other = Workflow("other", store=store)
    other.node(lambda: 1, name="one")
    run_id = (await other.run()).run_id
    with pytest.raises(FlowError, match="belongs to workflow 'other'"):
        await wf.resume(run_id)
    with pytest.raises(FlowError, match="no store"):
        await Workflow("storeless").resume(run_id)


async def test_an_output_that_is_not_json_fails_with_output_error(store: SQLiteStore) -> None:
    wf = Workflow("objects", store=store)
    wf.node(lambda: object(), name="opaque", error_handling=ErrorHandling.ignore())
    result = await wf.run()
    assert result["opaque"].status == "failure"
    assert result["opaque"].error is not None
    assert result["opaque"].error.type == "OutputError"
    assert "node 'opaque'" in result["opaque"].error.message


async def test_a_durable_run_needs_json_input(store: SQLiteStore) -> None:
    wf = Workflow("inputs", store=store)
    wf.node(lambda: 1, name="one")
    with pytest.raises(InputError, match="cannot be stored as JSON"):
        await wf.run({"when": object()})


@pytest.mark.usefixtures("vanishing")
async def test_a_pending_workflow_retry_survives_and_resume_due_runs_it(
    store: SQLiteStore,
) -> None:
    attempts: list[int] = []
    wf = Workflow("later", store=store, retry=WorkflowRetry(max_retries=1, delay_seconds=3600))

    @wf.node
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first attempt fails")
        return "ok"

    with anyio.move_on_after(0.5):  # the process dies while waiting for the retry
        await wf.run()
    expire_leases(store.path)
    (run,) = await store.list_runs()
    assert (run.status, run.attempts) == ("retrying", 1)
    assert run.retry_due is not None
    assert run.retry_due > time.time() + 3500
    assert await resume_due(store, [wf]) == []  # not due yet
    (result,) = await resume_due(store, [wf], now=run.retry_due + 1)
    assert (result.status, result.attempts, result.run_id) == ("success", 2, run.run_id)
    assert len(attempts) == 2
    assert await resume_due(store, [wf], now=run.retry_due + 1) == []  # done: no longer due


async def test_resume_due_rebuilds_a_stored_workflow(
    tmp_path: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HERE.parent / "examples"))
    wf = Workflow.from_yaml(HERE.parent / "examples" / "error_to_output.yaml")
    wf.store = store
    result = await wf.run({"email": "ada@example.com"})
    with closing(sqlite3.connect(tmp_path / "runs.db")) as db, db:  # as if a retry were pending
        db.execute(
            "UPDATE runs SET status = 'retrying', retry_due = 1 WHERE run_id = ?", (result.run_id,)
        )
    (again,) = await resume_due(store)  # no workflow given: taken from the stored definition
    assert again.output["ok"] == "success"


async def test_a_hundred_concurrent_runs_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    results: list[Any] = []

    async def one(i: int) -> None:
        with SQLiteStore(path) as own:  # its own connection, like separate processes
            results.append(await diamond(own, {}, set()).run({"x": i}))

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(one, i)
    assert [r.status for r in results] == ["success"] * 100
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM runs WHERE status = 'success'").fetchone() == (100,)
        assert db.execute("SELECT count(*) FROM nodes").fetchone() == (400,)


async def test_resume_restores_a_map_output_and_a_choice_branch(store: SQLiteStore) -> None:
    from flowrt import Condition

    calls: dict[str, int] = {}
    broken = {"finish"}
    wf = Workflow("mixed", store=store)

    @wf.map(items="$.input.xs", error_handling=ErrorHandling.ignore())
    async def square(item: int) -> int:
        calls["square"] = calls.get("square", 0) + 1
        return item * item

    route = wf.choice(
        "route", {"big": Condition("$.square.output[2].output", ">", 5), "small": None}
    )

    @wf.node(depends=[route["big"]], inputs={"values": "$.square.output[*].output"})
    async def finish(values: list[int]) -> int:
        calls["finish"] = calls.get("finish", 0) + 1
        if "finish" in broken:
            raise RuntimeError("not yet")
        return sum(values)

    first = await wf.run({"xs": [1, 2, 3]})
    assert (first.status, first["route"].output) == ("failure", "big")
    broken.clear()
    resumed = await wf.resume(first.run_id)
    assert resumed.status == "success"
    assert resumed["finish"].output == 14
    assert resumed["square"].output[2] == {"status": "success", "output": 9, "error": None}
    assert calls == {"square": 3, "finish": 2}  # the map's items did not run again


async def test_a_stream_over_a_durable_run_stores_it(store: SQLiteStore) -> None:
    wf = diamond(store, {}, set())
    kinds = [event.kind async for event in wf.stream({"x": 1})]
    assert kinds[-1] == "run.finished"
    (run,) = await store.list_runs()
    assert run.status == "success"


async def test_resume_keeps_a_success_whose_output_was_none(store: SQLiteStore) -> None:
    calls: list[str] = []
    broken = {"after"}
    wf = Workflow("quiet", store=store)

    @wf.node
    async def quiet() -> None:
        calls.append("quiet")

    @wf.node(depends=[quiet])
    async def after() -> str:
        calls.append("after")
        if "after" in broken:
            raise RuntimeError("not yet")
        return "ok"

    first = await wf.run()
    broken.clear()
    resumed = await wf.resume(first.run_id)
    assert resumed.status == "success"
    assert resumed["quiet"].output is None
    assert calls == ["quiet", "after", "after"]  # quiet succeeded: it does not run again


async def test_a_clean_success_is_recorded_as_the_general_record_would_be(
    store: SQLiteStore,
) -> None:
    from flowrt._engine.durable import DurableRun
    from flowrt._engine.states import NodeState
    from flowrt._store.records import RunRow, node_text, trace_json, trace_of

    done = NodeState()
    done.attempts = 1
    done.attempted(0.25, 0.2501234567, {"ok": [1, "é"]})
    done.duration = 0.0001234567
    durable = DurableRun(store, RunRow("run", "wf", "{}", "running", "2026-01-01T00:00:00"))
    durable.add("n-1", done)
    expected = node_text(
        "n-1", "success", '{"ok": [1, "\\u00e9"]}', None, 1, 0.0001234567, None,
        trace_json(done.trace),
    )  # fmt: skip
    assert trace_of(trace_json(done.trace), done.duration)[0].started == 0.25
    assert durable.pending == [expected]


def writer_holding(path: Path, seconds: float) -> Any:
    """Another process's connection writing to a new (not yet WAL) file for ``seconds``: a
    store switching it to WAL meanwhile gets "database is locked" at once from SQLite."""
    import threading

    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO other VALUES (1)")

    def release() -> None:
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


async def test_opening_a_file_another_process_is_writing_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    thread = writer_holding(path, 0.3)
    started = time.monotonic()
    async with SQLiteStore(path) as store:
        assert await store.upgrade() >= 1  # it waited for the other writer, then set up
    waited = time.monotonic() - started
    thread.join()
    assert waited >= 0.25


async def test_opening_gives_up_after_its_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    thread = writer_holding(path, 1.0)
    started = time.monotonic()
    store = SQLiteStore(path, busy_timeout=0.2)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await store.upgrade()
    assert 0.15 <= time.monotonic() - started < 0.9
    thread.join()
    store.close()
