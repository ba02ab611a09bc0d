"""Run limits: definitions and bad input refused with nothing stored; within one process
without a store, and on both stores (plain ``wf.run(store=...)`` and workers): no two runs of a
key overlap, submit order within a key, other keys never held up, each strategy, a parked or
dead holder keeping its key, and the blockers a queued run reports."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import until

from flowrt import (
    DefinitionError,
    InputError,
    LimitReached,
    RunLimit,
    SQLiteStore,
    Superseded,
    Worker,
    Workflow,
)

pytestmark = pytest.mark.anyio


def logged(name: str, log: list[tuple[str, Any, str]], pause: float = 0.02, **kw: Any) -> Workflow:
    """A one-node workflow whose node logs ``start`` and ``end`` with the run's key value."""
    wf = Workflow(name, **kw)

    @wf.node
    async def work(c: Any, tag: str = "") -> str:
        log.append(("start", c, tag))
        try:
            await anyio.sleep(pause)
        finally:
            log.append(("end", c, tag))  # cancelled too (superseded)
        return tag

    return wf


def overlaps(log: list[tuple[str, Any, str]]) -> dict[Any, int]:
    """The most runs of each key that were between start and end at once."""
    inside: dict[Any, int] = {}
    most: dict[Any, int] = {}
    for event, key, _ in log:
        inside[key] = inside.get(key, 0) + (1 if event == "start" else -1)
        most[key] = max(most.get(key, 0), inside[key])
    return most


@pytest.mark.parametrize(
    ("limit", "field"),
    [
        ({"key": "$.customer"}, "run_limit.key"),
        ({"key": "customer"}, "run_limit.key"),
        ({"key": "$.inputs.x"}, "run_limit.key"),
        ({"max_runs": 0}, "run_limit.max_runs"),
        ({"max_runs": "1"}, "run_limit.max_runs"),
        ({"max_runs": True}, "run_limit.max_runs"),
        ({"strategy": "drop"}, "run_limit.strategy"),
    ],
)
def test_a_bad_run_limit_is_a_definition_error(limit: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        RunLimit(**limit)
    assert caught.value.field == field


def test_two_limits_on_one_key_and_a_limit_that_is_not_one_are_refused() -> None:
    wf = logged("two", [], run_limit=[RunLimit("$.input.c"), RunLimit("$.input.c", 2)])
    with pytest.raises(DefinitionError, match="two run limits"):
        wf.validate()
    wf.run_limit = {"key": "$.input.c"}  # type: ignore[assignment]
    with pytest.raises(DefinitionError, match="RunLimit"):
        wf.validate()
    wf.run_limit = RunLimit("$.input[")
    with pytest.raises(DefinitionError) as caught:
        wf.validate()
    assert caught.value.field == "run_limit.key"


@pytest.mark.parametrize("value", [None, {"a": 1}, [1], float("nan")])
async def test_a_key_that_is_no_json_scalar_is_an_input_error_with_nothing_stored(
    value: Any, tmp_path: Path
) -> None:
    wf = logged("bad-key", [], run_limit=RunLimit("$.input.c"))
    given = {} if value is None else {"c": value}
    async with SQLiteStore(tmp_path / "runs.db") as store:
        with pytest.raises(InputError, match=r"run_limit key|NaN"):
            await wf.submit(given, store=store)
        with pytest.raises(InputError, match=r"run_limit key|NaN"):
            await wf.run(given, store=store)
        assert await store.list_runs() == []
    with pytest.raises(InputError, match=r"run_limit key|NaN"):
        await wf.run(given)


async def test_in_memory_runs_of_one_key_never_overlap_and_others_run_past_them() -> None:
    log: list[tuple[str, Any, str]] = []
    wf = logged("mem-queue", log, run_limit=RunLimit("$.input.c", max_runs=2))
    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(wf.run, {"c": i % 3, "tag": str(i)})
    assert max(overlaps(log).values()) == 2
    assert len([e for e in log if e[0] == "end"]) == 12


async def test_in_memory_queue_keeps_submit_order_within_a_key() -> None:
    log: list[tuple[str, Any, str]] = []
    wf = logged("mem-order", log, run_limit=RunLimit("$.input.c"))
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(wf.run, {"c": 1, "tag": str(i)})
            await anyio.sleep(0)  # each submitted (queued) before the next
    assert [tag for event, _, tag in log if event == "start"] == [str(i) for i in range(6)]


async def test_in_memory_cancel_newest_raises_limit_reached_naming_the_holder() -> None:
    started, release = anyio.Event(), anyio.Event()
    wf = Workflow("mem-newest", run_limit=RunLimit(strategy="cancel_newest"))

    @wf.node
    async def hold() -> int:
        started.set()
        await release.wait()
        return 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(wf.run, run_id="holder"))
        await started.wait()
        with pytest.raises(LimitReached, match="'holder'"):
            await wf.run()
        release.set()
    assert (await wf.run()).status == "success"  # the key is free again


async def test_in_memory_cancel_in_progress_supersedes_the_old_run_first() -> None:
    log: list[str] = []
    started = anyio.Event()
    wf = Workflow("mem-supersede", run_limit=RunLimit("$.input.c", strategy="cancel_in_progress"))

    @wf.node
    async def deploy(n: int) -> int:
        log.append(f"start {n}")
        started.set()
        try:
            await anyio.sleep(0 if n == 2 else 60)
        finally:
            log.append(f"end {n}")
        return n

    async def old() -> None:
        with pytest.raises(Superseded, match="'new'"):
            await wf.run({"c": "x", "n": 1})

    async with anyio.create_task_group() as tg:
        tg.start_soon(old)
        await started.wait()
        result = await wf.run({"c": "x", "n": 2}, run_id="new")
    assert result.output == {"deploy": 2}
    assert log == ["start 1", "end 1", "start 2", "end 2"]


async def test_stored_plain_runs_of_a_key_wait_queued_and_never_overlap(any_store: Any) -> None:
    log: list[tuple[str, Any, str]] = []
    wf = logged("plain", log, run_limit=RunLimit("$.input.c"), store=any_store)
    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(wf.run, {"c": i % 2, "tag": str(i)})
    assert overlaps(log) == {0: 1, 1: 1}
    runs = await any_store.list_runs()
    assert [run.status for run in runs] == ["success"] * 8


async def test_workers_start_a_key_in_submit_order_and_other_keys_run_past_it(
    any_store: Any,
) -> None:
    log: list[tuple[str, Any, str]] = []
    wf = logged("order", log, run_limit=RunLimit("$.input.c"))
    for i in range(5):
        await wf.submit({"c": "a", "tag": f"a{i}"}, store=any_store, run_id=f"a{i}")
    await wf.submit({"c": "b", "tag": "b0"}, store=any_store, run_id="b0")
    blockers = await any_store.blockers("a3")
    assert [(b.key, b.holders, b.ahead) for b in blockers] == [
        ('order:$.input.c="a"', (), ("a0", "a1", "a2"))
    ]
    assert await any_store.blockers("a0") == []
    await Worker(any_store, [wf], concurrency=4, poll_seconds=0.05).drain()
    starts = [tag for event, _, tag in log if event == "start"]
    assert [tag for tag in starts if tag.startswith("a")] == ["a0", "a1", "a2", "a3", "a4"]
    assert starts.index("b0") < starts.index("a1")  # not held up behind key a
    assert overlaps(log)["a"] == 1


async def test_stored_cancel_newest_ends_the_extra_run_at_submit(any_store: Any) -> None:
    wf = logged("newest", [], run_limit=RunLimit("$.input.c", strategy="cancel_newest"))
    first = await wf.submit({"c": 1}, store=any_store, run_id="first")
    extra = await wf.submit({"c": 1}, store=any_store, run_id="extra")
    other = await wf.submit({"c": 2}, store=any_store, run_id="other")
    row = await any_store.load_run(extra)
    assert row.status == "cancelled"
    assert row.error["type"] == "LimitReached"
    assert "'first'" in row.error["message"]
    with pytest.raises(LimitReached):
        await wf.result(extra, store=any_store)
    await Worker(any_store, [wf], poll_seconds=0.05).drain()
    assert (await any_store.load_run(first)).status == "success"
    assert (await any_store.load_run(other)).status == "success"
    await wf.submit({"c": 3}, store=any_store, run_id="held")  # queued: it counts
    with pytest.raises(LimitReached, match="'held'"):
        await wf.run({"c": 3}, store=any_store)


async def test_stored_cancel_in_progress_starts_the_new_run_after_the_old_ends(
    any_store: Any,
) -> None:
    log: list[str] = []
    wf = Workflow("deploy", run_limit=RunLimit("$.input.c", strategy="cancel_in_progress"))

    @wf.node
    async def deploy(n: int) -> int:
        log.append(f"start {n}")
        try:
            await anyio.sleep(0 if n == 3 else 60)
        finally:
            log.append(f"end {n}")
        return n

    any_store.heartbeat_seconds = 0.05
    await wf.submit({"c": "x", "n": 1}, store=any_store, run_id="old")
    worker = Worker(any_store, [wf], concurrency=3, poll_seconds=0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.serve)
        await until(lambda: "start 1" in log)
        await wf.submit({"c": "x", "n": 2}, store=any_store, run_id="queued")
        await wf.submit({"c": "x", "n": 3}, store=any_store, run_id="new")
        await until(lambda: _status(any_store, "new", "success"))  # its final write, not its node
        tg.cancel_scope.cancel()
    assert log == ["start 1", "end 1", "start 3", "end 3"]
    old, queued = await any_store.load_run("old"), await any_store.load_run("queued")
    assert (old.status, old.error["type"]) == ("cancelled", "Superseded")
    assert "'new'" in old.error["message"]
    assert (queued.status, queued.error["type"]) == ("cancelled", "Superseded")
    assert (await any_store.load_run("new")).status == "success"
    with pytest.raises(Superseded):
        await wf.result("old", store=any_store)


async def test_a_parked_holder_keeps_its_key(any_store: Any) -> None:
    log: list[tuple[str, Any, str]] = []
    wf = logged("parked", log, run_limit=RunLimit("$.input.c"))
    nap = wf.sleep("nap", seconds=0.6, depends=["work"])
    assert nap is not None
    any_store.park_after_seconds = 0.1
    await wf.submit({"c": 1, "tag": "holder"}, store=any_store, run_id="holder")
    worker = Worker(any_store, [wf], concurrency=2, poll_seconds=0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.serve)
        await until(lambda: _status(any_store, "holder", "waiting"))
        await wf.submit({"c": 1, "tag": "next"}, store=any_store, run_id="next")
        probe = await any_store.claim("next", "probe", queued=True)
        assert probe.outcome == "queued"  # the key is held by a parked run
        assert [b.holders for b in await any_store.blockers("next")] == [("holder",)]
        await until(lambda: _status(any_store, "next", "success"))
        tg.cancel_scope.cancel()
    holder = await any_store.load_run("holder")
    assert holder.status == "success"
    assert holder.finished_at <= (await any_store.load_run("next")).finished_at


async def _status(store: Any, run_id: str, status: str) -> bool:
    run = await store.load_run(run_id)
    return run is not None and run.status == status


async def test_a_dead_holder_keeps_its_key_until_it_is_resumed_and_ends(
    tmp_path: Path, vanishing: None
) -> None:
    log: list[tuple[str, Any, str]] = []
    wf = logged("dead", log, pause=60, run_limit=RunLimit("$.input.c"))
    async with SQLiteStore(tmp_path / "runs.db", lease_seconds=0.2) as store:
        wf.store = store
        with anyio.move_on_after(0.3):  # its process "dies" mid-node: nothing more written
            await wf.run({"c": 1, "tag": "dead"}, run_id="dead")
        await until(lambda: _status(store, "dead", "interrupted"))
        await wf.submit({"c": 1, "tag": "next"}, run_id="next")
        assert [b.holders for b in await store.blockers("next")] == [("dead",)]
        claims = await store.claim_ready("someone", ["dead"], 5)
        assert [claim.run.run_id for claim in claims] == ["dead"]  # resumed, not passed
        assert (await store.load_run("next")).status == "queued"


YAML = """
name: sync-customer
run_limit: {key: $.input.customer_id, max_runs: 1, strategy: queue}
nodes:
  - name: fetch
    call: test_run_limits:fetch
    rate_limit: {name: crm, limit: 50, per_seconds: 1, burst: 5}
  - name: summarize
    call: test_run_limits:fetch
    depends: [fetch]
    rate_limit:
      - {name: llm, limit: 500, per_seconds: 60, key: "{{ input.customer_id }}"}
      - {name: crm, limit: 50, per_seconds: 1, burst: 5, max_wait_seconds: 30}
"""


def fetch(customer_id: int) -> int:
    return customer_id


async def test_yaml_run_and_rate_limits_load_round_trip_and_hold(tmp_path: Path) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(YAML)
    wf = Workflow.from_yaml(path)
    assert wf.run_limit == RunLimit("$.input.customer_id")
    again = Workflow.from_dict(wf.to_dict())
    assert again.to_dict() == wf.to_dict()
    assert [r.name for r in again.nodes["summarize"].rate_limit] == ["llm", "crm"]
    async with SQLiteStore(tmp_path / "runs.db") as store:
        wf.store = store
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(wf.run, {"customer_id": 7})
        assert [run.status for run in await store.list_runs()] == ["success"] * 3
    path.write_text(YAML.replace("strategy: queue", "strategy: later"))
    with pytest.raises(DefinitionError, match="run_limit"):
        Workflow.from_yaml(path)


def test_runs_list_and_show_say_what_keeps_a_queued_run_waiting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowrt.cli import main as cli

    wf = logged("listed", [], run_limit=RunLimit("$.input.c"))

    async def submit() -> None:
        async with SQLiteStore(tmp_path / "runs.db") as store:
            for name in ("one", "two", "three"):
                await wf.submit({"c": 1}, store=store, run_id=name)
            await store.claim_ready("holder", ["listed"], 5)  # "one" holds the key

    anyio.run(submit)
    assert cli(["runs", "list", "--store", str(tmp_path / "runs.db")]) == 0
    out = capsys.readouterr().out
    assert (
        "waits for key 'listed:$.input.c=1' (max_runs=1): held by 'one'; queued before "
        "it: 'two'" in out
    )
    assert cli(["runs", "show", "two", "--store", str(tmp_path / "runs.db")]) == 0
    assert "held by 'one'" in capsys.readouterr().out


async def test_the_viewer_and_the_http_status_show_what_a_queued_run_waits_for(
    tmp_path: Path,
) -> None:
    import httpx
    from fastapi import FastAPI

    from flowrt._web.pages import viewer_router
    from flowrt.fastapi import workflow_router

    wf = logged("viewed", [], run_limit=RunLimit("$.input.c"))
    async with SQLiteStore(tmp_path / "runs.db") as store:
        for name in ("one", "two"):
            await wf.submit({"c": 1}, store=store, run_id=name)
        await store.claim_ready("holder", ["viewed"], 1)
        app = FastAPI()
        app.include_router(viewer_router(store))
        app.include_router(workflow_router(wf, store=store), prefix="/api")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = (await client.get("/ui/runs/two")).text
            listing = (await client.get("/ui", params={"status": "queued"})).text
            status = (await client.get("/api/runs/two")).json()
    assert 'id="blocked-by"' in page
    assert 'href="../../ui/runs/one"' in page
    assert "held by &#39;one&#39;" in listing
    assert status["status"] == "queued"
    assert status["blocked_by"] == [
        "waits for key 'viewed:$.input.c=1' (max_runs=1): held by 'one'"
    ]


async def test_a_hundred_in_memory_runs_keep_max_runs_of_each_key() -> None:
    log: list[tuple[str, Any, str]] = []
    wf = logged("hundred", log, pause=0.005, run_limit=RunLimit("$.input.c", max_runs=3))
    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(wf.run, {"c": i % 4, "tag": str(i)})
    assert overlaps(log) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert len(log) == 200


@pytest.mark.parametrize("pause", [0.0, 0.005, 0.01, 0.02, 0.04])
async def test_cancel_in_progress_against_a_holder_that_is_just_ending(
    tmp_path: Path, pause: float
) -> None:
    """The new run arrives as the old one ends (swept across its end): either way the new run
    succeeds after the old one's end, and the old one either succeeded or was superseded."""
    log: list[tuple[str, Any, str]] = []
    wf = logged(
        "race", log, pause=pause, run_limit=RunLimit("$.input.c", strategy="cancel_in_progress")
    )
    for store in (None, SQLiteStore(tmp_path / f"runs-{pause}.db", heartbeat_seconds=0.01)):
        log.clear()
        outcomes: list[str] = []

        async def old(store: Any = store, outcomes: list[str] = outcomes) -> None:
            try:
                await wf.run({"c": 1, "tag": "old"}, store=store)
                outcomes.append("success")
            except Superseded:
                outcomes.append("superseded")

        async with anyio.create_task_group() as tg:
            tg.start_soon(old)
            await until(lambda: ("start", 1, "old") in log)
            await anyio.sleep(0.01)
            new = await wf.run({"c": 1, "tag": "new"}, store=store)
        assert new.status == "success"
        assert outcomes in (["success"], ["superseded"])
        assert overlaps(log) == {1: 1}
        assert log[-2:] == [("start", 1, "new"), ("end", 1, "new")]
        if store is not None:
            store.close()


@pytest.mark.parametrize(("seed", "stored"), [(0, False), (1, False), (2, False), (3, True)])
async def test_two_limits_hold_together(tmp_path: Path, seed: int, stored: bool) -> None:
    import random

    rng = random.Random(seed)
    store = SQLiteStore(tmp_path / "two.db") if stored else None
    spans: list[tuple[str, int, int]] = []
    wf = Workflow(
        "two-limits", run_limit=[RunLimit("$.input.a"), RunLimit("$.input.b", max_runs=2)]
    )

    @wf.node
    async def work(a: int, b: int) -> None:
        spans.append(("start", a, b))
        await anyio.sleep(rng.uniform(0, 0.01))
        spans.append(("end", a, b))

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(
                functools.partial(wf.run, store=store),
                {"a": rng.randrange(3), "b": rng.randrange(2)},
            )
    by_a = overlaps([(event, a, "") for event, a, _ in spans])
    by_b = overlaps([(event, b, "") for event, _, b in spans])
    assert max(by_a.values()) == 1
    assert max(by_b.values()) <= 2
    assert len(spans) == 60
    if store is not None:
        store.close()


async def test_http_a_bad_key_is_422_and_a_full_key_409_or_a_cancelled_background_run(
    tmp_path: Path,
) -> None:
    import httpx
    from fastapi import FastAPI

    from flowrt.fastapi import workflow_router

    started, release = anyio.Event(), anyio.Event()
    wf = Workflow("served", run_limit=RunLimit("$.input.c", strategy="cancel_newest"))

    @wf.node
    async def hold(c: Any) -> Any:
        started.set()
        await release.wait()
        return c

    app = FastAPI()
    app.include_router(workflow_router(wf))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            bad = await client.post("/run", json={"c": {"not": "a scalar"}})
            assert bad.status_code == 422
            assert "run_limit key" in bad.json()["detail"]
            assert (await client.post("/runs", json={})).status_code == 422
            first = (await client.post("/runs", json={"c": 1})).json()["run_id"]
            await started.wait()
            full = await client.post("/run", json={"c": 1})
            assert full.status_code == 409
            assert first in full.json()["detail"]
            extra = (await client.post("/runs", json={"c": 1})).json()["run_id"]

            async def refused() -> bool:
                state = (await client.get(f"/runs/{extra}")).json()
                return state["status"] == "cancelled"

            await until(refused)
            state = (await client.get(f"/runs/{extra}")).json()
            assert state["error"]["type"] == "LimitReached"
            release.set()

            async def done() -> bool:
                return (await client.get(f"/runs/{first}")).json()["status"] == "success"

            await until(done)


async def test_http_with_a_store_refuses_a_bad_key_with_nothing_stored(tmp_path: Path) -> None:
    import httpx
    from fastapi import FastAPI

    from flowrt.fastapi import workflow_router

    wf = Workflow("served-stored", run_limit=RunLimit("$.input.c", strategy="cancel_newest"))
    wf.node(lambda c: c, name="echo")
    async with SQLiteStore(tmp_path / "runs.db") as store:
        app = FastAPI()
        app.include_router(workflow_router(wf, store=store, worker=False))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                bad = await client.post("/runs", json={"c": [1, 2]})
                first = await client.post("/runs", json={"c": 1})
                extra = await client.post("/runs", json={"c": 1})
                state = (await client.get(f"/runs/{extra.json()['run_id']}")).json()
        assert bad.status_code == 422
        assert "run_limit key" in bad.json()["detail"]
        assert first.status_code == extra.status_code == 202
        assert state["status"] == "cancelled"
        assert state["error"]["type"] == "LimitReached"
        assert len(await store.list_runs()) == 2
