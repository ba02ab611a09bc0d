"""Sub-workflows in workers, on both stores: children are queued for any worker, a parent
whose running nodes all wait for children parks (``waiting``, no slot held) and is woken by
its children's end, so ``Worker(concurrency=1)`` completes a parent with children; cancelling
the parent reaches its children and theirs, wherever they run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import open_store, until

from flowrt import ErrorHandling, Worker, Workflow

pytestmark = pytest.mark.anyio
CALLS: list[str] = []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    settings = {"heartbeat_seconds": 0.1, "poll_seconds": 0.05}
    async with open_store(request.param, request, tmp_path / "runs.db", **settings) as opened:
        yield opened


def kyc_flow() -> Workflow:
    kyc = Workflow("w_kyc")

    @kyc.node
    async def check(customer: str) -> str:
        CALLS.append(f"check:{customer}")
        if customer == "bad":
            raise ConnectionError(f"kyc down for {customer}")
        return f"checked {customer}"

    return kyc


KYC = kyc_flow()
ONBOARD = Workflow("w_onboard")
ONBOARD.subworkflow(KYC, name="kyc", input={"customer": "$.input.customer"})
ONBOARD.map(KYC, name="all", items="$.input.customers", concurrency=2)


async def status(store: Any, run_id: str) -> str | None:
    run = await store.load_run(run_id)
    return None if run is None else str(run.status)


async def test_one_worker_slot_completes_a_parent_with_children(store: Any) -> None:
    customers = [{"customer": f"c{i}"} for i in range(5)]
    run_id = await ONBOARD.submit({"customer": "ana", "customers": customers}, store=store)
    async with anyio.create_task_group() as group:
        worker = Worker(store, [ONBOARD, KYC], concurrency=1, poll_seconds=0.05)
        group.start_soon(worker.serve)
        with anyio.fail_after(60):
            result = await ONBOARD.result(run_id, store=store)
        group.cancel_scope.cancel()
    assert result.status == "success"
    assert result.nodes["kyc"].output == {"check": "checked ana"}
    assert [item["output"] for item in result.nodes["all"].output] == [
        {"check": f"checked c{i}"} for i in range(5)
    ]
    children = await store.list_runs(parent=run_id, limit=100)
    assert sorted(run.run_id for run in children) == sorted(
        [f"{run_id}:kyc", *(f"{run_id}:all[{i}]" for i in range(5))]
    )
    assert {run.status for run in children} == {"success"}


async def test_a_parent_parks_while_its_child_waits_and_its_end_wakes_it(store: Any) -> None:
    approval = Workflow("w_approval")
    approval.wait("approve")
    parent = Workflow("w_parent")
    parent.subworkflow(approval, name="ask")
    run_id = await parent.submit({}, store=store)
    async with anyio.create_task_group() as group:
        worker = Worker(store, [parent, approval], concurrency=1, poll_seconds=0.05)
        group.start_soon(worker.serve)

        async def both_parked() -> bool:
            runs = [await store.load_run(rid) for rid in (run_id, f"{run_id}:ask")]
            return all(r is not None and r.status == "waiting" and r.owner is None for r in runs)

        await until(both_parked, what="parent and child parked")
        await approval.signal(f"{run_id}:ask", "approve", {"ok": True}, store=store)
        with anyio.fail_after(30):
            result = await parent.result(run_id, store=store)
        group.cancel_scope.cancel()
    assert result.nodes["ask"].output == {"approve": {"ok": True}}


async def test_a_failed_child_fails_the_node_with_its_type_in_a_worker(store: Any) -> None:
    wf = Workflow("w_failing")
    wf.subworkflow(KYC, name="kyc", error_handling=ErrorHandling(behavior="return"))
    run_id = await wf.submit({"customer": "bad"}, store=store)
    async with anyio.create_task_group() as group:
        group.start_soon(Worker(store, [wf, KYC], concurrency=1, poll_seconds=0.05).serve)
        with anyio.fail_after(30):
            result = await wf.result(run_id, store=store)
        group.cancel_scope.cancel()
    error = result.nodes["kyc"].error
    assert error is not None
    assert error.type == "ConnectionError"
    assert error.message == f"child run '{run_id}:kyc' failed: kyc down for bad"


async def test_cancelling_a_parked_parent_cancels_its_children_and_grandchildren(
    store: Any,
) -> None:
    leaf = Workflow("w_leaf")
    leaf.wait("never")
    middle = Workflow("w_middle")
    middle.subworkflow(leaf, name="leaf")
    top = Workflow("w_top")
    top.subworkflow(middle, name="middle")
    run_id = await top.submit({}, store=store)
    grandchild = f"{run_id}:middle:leaf"
    async with anyio.create_task_group() as group:
        for served in (top, middle, leaf):  # each level on a worker of its own
            group.start_soon(Worker(store, [served], concurrency=1, poll_seconds=0.05).serve)
        await until(lambda: _is(store, grandchild, "waiting"), what="the grandchild waits")
        outcome = await top.cancel(run_id, store=store, reason="customer left")
        await until(lambda: _is(store, grandchild, "cancelled"), what="the grandchild cancelled")
        group.cancel_scope.cancel()
    assert outcome == "cancelled"
    for rid in (run_id, f"{run_id}:middle", grandchild):
        assert await status(store, rid) == "cancelled", rid
    middle_row = await store.load_run(f"{run_id}:middle")
    assert "its parent run" in middle_row.error["message"]


async def test_cancelling_a_running_parent_cancels_its_running_child_on_another_worker(
    store: Any,
) -> None:
    started = anyio.Event()
    slow = Workflow("w_slow")

    @slow.node
    async def hold() -> None:
        started.set()
        await anyio.sleep(60)

    parent = Workflow("w_holder")
    parent.subworkflow(slow, name="slow")

    @parent.node
    async def busy() -> None:
        await anyio.sleep(60)  # keeps the parent running, not parked

    run_id = await parent.submit({}, store=store)
    async with anyio.create_task_group() as group:
        group.start_soon(Worker(store, [parent], concurrency=2, poll_seconds=0.05).serve)
        group.start_soon(Worker(store, [slow], concurrency=2, poll_seconds=0.05).serve)
        with anyio.fail_after(30):
            await started.wait()
        before = anyio.current_time()
        await parent.cancel(run_id, store=store)
        await until(lambda: _is(store, f"{run_id}:slow", "cancelled"), what="the child stops")
        took = anyio.current_time() - before
        group.cancel_scope.cancel()
    assert took <= store.heartbeat_seconds + 1 + 2  # + 2 s of slack for a loaded machine
    assert await status(store, run_id) == "cancelled"


async def _is(store: Any, run_id: str, wanted: str) -> bool:
    return await status(store, run_id) == wanted


ACTIVE: list[int] = [0, 0]  # now, most
SLOW_CHILD = Workflow("w_slow_item")


@SLOW_CHILD.node
async def slow_item() -> int:
    ACTIVE[0] += 1
    ACTIVE[1] = max(ACTIVE)
    try:
        await anyio.sleep(0.1)
    finally:
        ACTIVE[0] -= 1
    return 1


CAPPED = Workflow("w_capped")
CAPPED.map(SLOW_CHILD, name="each", items="$.input.items", concurrency=2)


@pytest.mark.timeout(120)  # three workers in one process; it waits up to 60 s for the run
async def test_a_map_of_children_keeps_its_cap_across_workers(store: Any) -> None:
    ACTIVE[:] = [0, 0]
    run_id = await CAPPED.submit({"items": [{} for _ in range(6)]}, store=store)
    async with anyio.create_task_group() as group:
        group.start_soon(Worker(store, [CAPPED], concurrency=1, poll_seconds=0.05).serve)
        for _ in range(2):  # two workers for the children, 4 slots: the cap is the map's
            group.start_soon(Worker(store, [SLOW_CHILD], concurrency=2, poll_seconds=0.05).serve)
        with anyio.fail_after(60):
            result = await CAPPED.result(run_id, store=store)
        group.cancel_scope.cancel()
    assert result.status == "success"
    assert ACTIVE[1] == 2
