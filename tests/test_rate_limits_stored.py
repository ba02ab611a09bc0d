"""Rate limits on both stores (real clocks, tolerant): permits shared by concurrent runs stay
within ``limit + burst`` per window on the store's clock, and a wait of at least
``park_after_seconds`` parks a worker's run, frees its slot for another run, and resumes the
attempt in its turn without taking a second permit."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from conftest import until

from flowrt import RateLimit, Worker, Workflow
from flowrt._web.stored_runs import events_of

pytestmark = pytest.mark.anyio


async def test_concurrent_runs_share_the_stored_limit(any_store: Any) -> None:
    starts: list[float] = []
    grants: list[tuple[float, float]] = []
    wf = Workflow("shared", store=any_store)
    take = any_store.take_permit

    async def timed_take(limit: tuple[str, str], shape: Any) -> tuple[float, bool]:
        before = time.time()
        wait, granted = await take(limit, shape)
        # The store read its clock within the call: the turn lies in this span.
        grants.append((before + wait, time.time() + wait))
        return wait, granted

    any_store.take_permit = timed_take

    @wf.node(rate_limit=RateLimit("shared", limit=10, per_seconds=1.0))
    async def call() -> None:
        starts.append(time.time())

    async with anyio.create_task_group() as tg:
        for _ in range(25):
            tg.start_soon(wf.run)
    assert len(starts) == len(grants) == 25
    # On the store's clock, any 11 turns span at least 1 s (one per 0.1 s, no burst). A turn
    # is known to within the call that took it, however busy the machine: a limiter letting
    # 20/s through (11 turns in 0.5 s) fails this unless calls took half a second.
    grants.sort()
    for i in range(len(grants) - 10):
        latest = max(high for _, high in grants[i : i + 11])
        assert latest - grants[i][0] >= 1.0 - 1e-3
    # And each attempt waited for its turn: the k-th start is after the k-th turn.
    starts.sort()
    for start, (low, _) in zip(starts, grants, strict=True):
        assert start >= low - 1e-3


async def test_a_long_turn_parks_the_run_frees_its_slot_and_keeps_its_permit(
    any_store: Any,
) -> None:
    log: list[str] = []
    wf = Workflow("parks")

    @wf.node(rate_limit=RateLimit("slow-api", limit=1, per_seconds=1.5))
    async def call(tag: str) -> str:
        log.append(tag)
        return tag

    other = Workflow("free")

    @other.node
    async def quick() -> str:
        log.append("other")
        return "other"

    any_store.park_after_seconds = 0.5
    for tag in ("first", "second"):
        await wf.submit({"tag": tag}, store=any_store, run_id=tag)
    worker = Worker(any_store, [wf, other], concurrency=1, poll_seconds=0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.serve)
        await until(lambda: _status(any_store, "second", "waiting"))
        parked = await any_store.load_run("second")
        throttled = [e for e in events_of(parked) if e.kind == "node.throttled"]
        assert [(e.node, e.attempt) for e in throttled] == [("call", 1)]
        await other.submit(None, store=any_store, run_id="other")
        await until(lambda: _status(any_store, "second", "success"))
        tg.cancel_scope.cancel()
    assert log == ["first", "other", "second"]  # the parked run's slot served another run
    second = await any_store.load_run("second")
    assert second.nodes[0].attempts == 1
    wait, granted = await any_store.take_permit(("slow-api", ""), (1.5, 0, None))
    assert granted
    assert wait < 2.2  # two permits were taken before it (a third: ~3 s)


async def _status(store: Any, run_id: str, status: str) -> bool:
    run = await store.load_run(run_id)
    return run is not None and run.status == status
