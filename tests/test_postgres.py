"""The RunStore contract, on SQLite and on a real PostgreSQL server the tests start themselves:
claims and their outcomes, claim numbers that refuse a stale owner's writes, leases that
expire, each node's last record, listing, due retries, pruning, migrations; then durable runs
end to end on PostgreSQL (every node of 100 concurrent runs recorded, resume, idempotent run
ids, one creator among concurrent claimers) and the CLI with a ``postgresql://`` store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from flowrt import LeaseLost, RunStore, SQLiteStore, Workflow
from flowrt._store.records import RunRow, node_text

pytestmark = pytest.mark.anyio
psycopg = pytest.importorskip("psycopg")

from flowrt.postgres import SCHEMA_VERSION, PostgresStore  # noqa: E402


def new_row(run_id: str, workflow: str = "wf", started: str = "2026-11-29T10:00:00") -> RunRow:
    return RunRow(run_id, workflow, '{"x": 1}', "running", started)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        opened: Any = SQLiteStore(tmp_path / "runs.db", lease_seconds=0.5)
    else:
        url = request.getfixturevalue("postgres_url")
        opened = PostgresStore(url, lease_seconds=0.5)
    async with opened:
        yield opened


async def test_claims_create_refuse_finish_and_take_over(store: Any) -> None:
    assert isinstance(store, RunStore)
    assert (await store.claim("r1", "A")).outcome == "missing"
    created = await store.claim("r1", "A", new=new_row("r1"))
    assert (created.outcome, created.token) == ("created", 1)
    busy = await store.claim("r1", "B", new=new_row("r1"))
    assert busy.outcome == "busy"
    assert busy.run is not None
    assert busy.run.owner == "A"
    await store.write("r1", 1, 1, [node_text("a", "success", "1", None, 1, 0.1, None, "null")])
    await anyio.sleep(0.7)  # A's lease (0.5 s) expires: the run was interrupted
    loaded = await store.load_run("r1")
    assert loaded.status == "interrupted"
    taken = await store.claim("r1", "B")
    assert (taken.outcome, taken.token) == ("claimed", 2)
    assert [node.name for node in taken.run.nodes] == ["a"]
    with pytest.raises(LeaseLost):  # A comes back: refused, and nothing of it is written
        await store.write("r1", 1, 1, [node_text("b", "success", "2", None, 1, 0.1, None, "null")])
    assert [node.name for node in (await store.load_run("r1")).nodes] == ["a"]
    done = new_row("r1")
    done.status, done.output, done.finished_at = "success", '{"a": 1}', "2026-11-29T10:00:01"
    await store.write("r1", 2, 1, [], done, release=True)
    finished = await store.claim("r1", "C")
    assert finished.outcome == "finished"
    assert (await store.load_run("r1")).output == '{"a": 1}'


async def test_a_live_lease_is_renewed_by_an_empty_write(store: Any) -> None:
    await store.claim("r2", "A", new=new_row("r2"))
    for _ in range(4):  # 0.8 s in all, beyond one 0.5 s lease
        await anyio.sleep(0.2)
        await store.write("r2", 1, 1, [])
    assert (await store.claim("r2", "B")).outcome == "busy"
    assert (await store.load_run("r2")).status == "running"


async def test_each_node_keeps_its_last_record_of_the_current_attempt(store: Any) -> None:
    await store.claim("r3", "A", new=new_row("r3"))
    waiting = node_text(
        "a", "waiting", None, {"type": "E", "message": "m"}, 1, 0.0, None, "null", 5.0
    )
    await store.write(
        "r3", 1, 1, [waiting, node_text("b", "success", '"b"', None, 1, 0.2, None, "null")]
    )
    run = await store.load_run("r3")
    assert [(n.name, n.status, n.next_attempt, n.due) for n in run.nodes] == [
        ("a", "waiting", 2, 5.0), ("b", "success", None, None),
    ]  # fmt: skip
    await store.write(
        "r3", 1, 1, [node_text("a", "success", '{"k": [1, 2]}', None, 2, 0.1, None, "null")]
    )
    run = await store.load_run("r3")
    assert [(n.name, n.status, n.output) for n in run.nodes] == [
        ("b", "success", '"b"'), ("a", "success", '{"k": [1, 2]}'),
    ]  # fmt: skip
    row = new_row("r3")
    row.attempts = 2  # a workflow-level retry: a new attempt starts with no nodes
    await store.write("r3", 1, 2, [], row)
    assert (await store.load_run("r3")).nodes == []


async def test_list_due_and_prune(store: Any) -> None:
    for i, status in enumerate(["success", "failure", "retrying"]):
        run_id = f"l{i}"
        await store.claim(run_id, "A", new=new_row(run_id, started=f"2026-11-29T10:00:0{i}"))
        row = new_row(run_id, started=f"2026-11-29T10:00:0{i}")
        row.status = status
        row.finished_at = "2000-01-01T00:00:00+00:00" if status != "retrying" else None
        row.retry_due = 1.0 if status == "retrying" else None
        await store.write(run_id, 1, 1, [], row, release=True)
    await store.claim("l3", "A", new=new_row("l3", started="2026-11-29T10:00:03"))
    assert [run.run_id for run in await store.list_runs()] == ["l3", "l2", "l1", "l0"]
    assert [run.run_id for run in await store.list_runs(limit=2)] == ["l3", "l2"]
    assert [run.run_id for run in await store.list_runs(status="failure")] == ["l1"]
    assert [run.run_id for run in await store.due_runs()] == ["l2"]
    assert await store.due_runs(now=0.5) == []
    assert await store.prune(older_than=3600) == 2
    assert [run.run_id for run in await store.list_runs()] == ["l3", "l2"]


async def test_listing_pages_and_filters_by_workflow_and_live_status(store: Any) -> None:
    """Pages of a filtered listing are exact: ``running`` and ``interrupted`` are told apart
    in the query (by the lease), not dropped after the limit; the same start time pages in a
    stable order (by run id)."""
    for i in range(7):
        run_id = f"p{i}"
        started = f"2026-11-29T10:00:0{min(i, 5)}"  # p5 and p6 start together
        await store.claim(run_id, "A", new=new_row(run_id, "odd" if i % 2 else "even", started))
    await anyio.sleep(0.7)  # every lease (0.5 s) expires: all interrupted
    for run_id in ("p1", "p4"):  # these two are claimed again: running
        await store.claim(run_id, "B")
    pages = [await store.list_runs(limit=3, offset=k) for k in (0, 3, 6)]
    assert [[run.run_id for run in page] for page in pages] == [
        ["p6", "p5", "p4"], ["p3", "p2", "p1"], ["p0"],
    ]  # fmt: skip
    odd = await store.list_runs(workflow="odd")
    assert [run.run_id for run in odd] == ["p5", "p3", "p1"]
    running = await store.list_runs(limit=1, status="running")
    assert [(run.run_id, run.status) for run in running] == [("p4", "running")]
    interrupted = await store.list_runs(limit=2, offset=1, status="interrupted", workflow="even")
    assert [(run.run_id, run.status) for run in interrupted] == [
        ("p2", "interrupted"), ("p0", "interrupted"),
    ]  # fmt: skip
    assert await store.list_runs(workflow="none") == []


async def test_upgrade_is_idempotent(store: Any) -> None:
    first, again = await store.upgrade(), await store.upgrade()
    assert first == again >= 1


async def test_concurrent_creators_of_one_run_id_make_one_owner(postgres_url: str) -> None:
    outcomes: list[str] = []
    stores = [PostgresStore(postgres_url) for _ in range(8)]

    async def claim(i: int) -> None:
        outcomes.append((await stores[i].claim("same", f"owner{i}", new=new_row("same"))).outcome)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(claim, i)
    for opened in stores:
        await opened.aclose()
    assert sorted(outcomes) == ["busy"] * 7 + ["created"]


async def test_concurrent_migrations_leave_one_schema(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(6)]
    versions: list[int] = []

    async def upgrade(opened: PostgresStore) -> None:
        versions.append(await opened.upgrade())

    async with anyio.create_task_group() as tg:
        for opened in stores:
            tg.start_soon(upgrade, opened)
    for opened in stores:
        await opened.aclose()
    assert versions == [SCHEMA_VERSION] * 6
    with psycopg.connect(postgres_url) as db:
        rows = db.execute("SELECT version FROM flowrt_schema ORDER BY version").fetchall()
    assert [version for (version,) in rows] == list(range(1, SCHEMA_VERSION + 1))


def chain(store: Any, calls: dict[str, int], broken: set[str] | None = None) -> Workflow:
    wf = Workflow("chain", store=store)
    previous = None
    for i in range(10):
        name = f"n{i}"

        async def step(x: int = 0, name: str = name) -> int:
            calls[name] = calls.get(name, 0) + 1
            if broken and name in broken:
                raise RuntimeError(f"{name} broke")
            await anyio.sleep(0)
            return x + 1

        inputs = {"x": "$.input.x"} if previous is None else {"x": f"$.{previous}.output"}
        wf.node(step, name=name, inputs=inputs)
        previous = name
    return wf


async def test_a_hundred_concurrent_durable_runs_keep_every_node(postgres_url: str) -> None:
    async with PostgresStore(postgres_url, max_connections=10) as store:
        wf = chain(store, {})
        results: list[Any] = []

        async def one(i: int) -> None:
            results.append(await wf.run({"x": i}, run_id=f"run{i}"))

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(one, i)
        assert all(result.status == "success" for result in results)
        for i in range(100):
            run = await store.load_run(f"run{i}")
            assert run.status == "success"
            assert [node.name for node in run.nodes] == [f"n{k}" for k in range(10)]
            assert json.loads(run.nodes[-1].output) == i + 10


async def test_resume_and_idempotent_run_ids_on_postgres(postgres_url: str) -> None:
    calls: dict[str, int] = {}
    async with PostgresStore(postgres_url) as store:
        failed = await chain(store, calls, broken={"n5"}).run({"x": 0}, run_id="r")
        assert failed.status == "failure"
        resumed = await chain(store, calls).resume("r")
        assert resumed.status == "success"
        assert resumed.output == {"n9": 10}
        assert calls == {f"n{i}": (2 if i == 5 else 1) for i in range(10)}
        again = await chain(store, calls).run({"x": 0}, run_id="r")  # finished: nothing runs
        assert again == (await chain(store, calls).run({"x": 99}, run_id="r"))
        assert calls == {f"n{i}": (2 if i == 5 else 1) for i in range(10)}


def test_the_cli_takes_a_postgresql_url(postgres_url: str, tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: cli-pg\nnodes:\n  - name: add\n    call: operator:add\n"
        "    inputs: {a: $.input.a, b: $.input.b}\n"
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flowrt", *args], capture_output=True, text=True, timeout=60
        )

    assert "schema version" in cli("db", "upgrade", "--store", postgres_url).stdout
    ran = cli("run", str(flow), "--input", '{"a": 2, "b": 3}', "--store", postgres_url)
    assert ran.returncode == 0, ran.stderr
    listed = cli("runs", "list", "--store", postgres_url)
    assert "cli-pg" in listed.stdout
    assert "success" in listed.stdout


async def test_a_due_time_is_kept_on_the_database_clock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as real_time
    from types import SimpleNamespace

    import flowrt._store.postgres_db

    skewed = SimpleNamespace(time=lambda: real_time.time() - 3600)  # this host is an hour slow
    monkeypatch.setattr(flowrt._store.postgres_db, "time", skewed)  # where the due time is moved
    async with PostgresStore(postgres_url) as store:
        await store.claim("d", "A", new=new_row("d"))
        row = new_row("d")
        row.status, row.retry_due = "retrying", skewed.time() + 60  # due in a minute, here
        await store.write("d", 1, 1, [], row, release=True)
        assert [run.run_id for run in await store.due_runs()] == []  # not due on any clock
    with psycopg.connect(postgres_url) as db:
        (delay,) = db.execute(
            "SELECT retry_due - extract(epoch from clock_timestamp()) FROM flowrt_runs"
        ).fetchone()
    assert 55 < delay <= 60  # a minute from the database's now, not an hour ago


@pytest.mark.usefixtures("vanishing")
async def test_resume_due_and_run_in_progress_on_postgres(postgres_url: str) -> None:
    from flowrt import RunInProgress, WorkflowRetry, resume_due

    async with PostgresStore(postgres_url) as store:
        calls: list[int] = []
        wf = Workflow("rerun", store=store, retry=WorkflowRetry(max_retries=1, delay_seconds=30))

        @wf.node
        async def flaky() -> int:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("down")
            return len(calls)

        with anyio.move_on_after(1.0):  # the process dies during the 30 s re-run wait
            await wf.run(run_id="w")
        with psycopg.connect(postgres_url) as db:  # its lease ends
            db.execute("UPDATE flowrt_runs SET lease_until = 1 WHERE run_id = 'w'")
        assert (await store.load_run("w")).status == "retrying"
        assert await resume_due(store, [wf]) == []  # not due yet
        results = await resume_due(store, [wf], now=anyio.current_time() + 10**10)
        assert [(r.status, r.output) for r in results] == [("success", {"flaky": 2})]

        gate = anyio.Event()
        slow = Workflow("slow", store=store)
        slow.node(gate.wait, name="wait")
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: slow.run(run_id="busy"))
            await anyio.sleep(0.3)
            with pytest.raises(RunInProgress):
                await slow.run(run_id="busy")
            gate.set()
