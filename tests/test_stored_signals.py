"""Signals and sleeps of stored runs, on both stores: the mailbox in the store (signals kept in
send order whatever the run does, consumed oldest first, keyed sends idempotent), due times
fixed when a wait starts, signal against timeout decided once, parking that frees a worker's
slot, and a signal that wakes a parked run (API.md, "signals, human-in-the-loop, durable
sleep"). The in-process rules are in tests/test_signals.py."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import open_store, until
from pydantic import BaseModel

import flowrt
from flowrt import (
    ErrorHandling,
    InputError,
    RunEnded,
    RunNotFound,
    SignalConflict,
    Worker,
    Workflow,
)

pytestmark = pytest.mark.anyio


class Approval(BaseModel):
    approved: bool
    by: str


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A store whose owners heartbeat every 0.1 s, park waits of 0.2 s or more and look for
    signals every 0.05 s."""
    settings = {"heartbeat_seconds": 0.1, "park_after_seconds": 0.2, "poll_seconds": 0.05}
    async with open_store(request.param, request, tmp_path / "runs.db", **settings) as opened:
        yield opened


def approval_flow(
    name: str = "approval", timeout: float | None = None, behavior: str = "raise"
) -> Workflow:
    wf = Workflow(name)

    @wf.node()
    async def draft() -> str:
        return "refund 30 EUR"

    approve = wf.wait(
        "approve",
        signal="approval",
        schema=Approval,
        timeout_seconds=timeout,
        depends=[draft],
        error_handling=ErrorHandling(behavior=behavior),  # type: ignore[arg-type]
    )

    @wf.node(depends=[approve], inputs={"answer": "$.approve.output"})
    async def act(answer: dict[str, Any] | None) -> str:
        return "refunded" if answer and answer["approved"] else "kept"

    return wf


APPROVAL = approval_flow()  # at module level: found by name from the run's stored source
APPROVAL_LATER = approval_flow("approval-later", timeout=3600)


async def status_of(store: Any, run_id: str) -> str | None:
    run = await store.load_run(run_id)
    return None if run is None else str(run.status)


async def test_a_signal_sent_before_the_wait_starts_is_taken(store: Any) -> None:
    wf = APPROVAL
    await wf.submit({}, store=store, run_id="early")
    sent = await flowrt.send_signal(store, "early", "approval", {"approved": True, "by": "ana"})
    assert (sent.seq, sent.duplicate) == (1, False)
    assert await Worker(store, [wf]).drain() == 1
    result = await wf.result("early", store=store)
    assert result.status == "success"
    assert result.output == {"act": "refunded"}
    [kept] = await store.signals("early")
    assert kept.consumed_by == "approve"
    assert kept.payload == {"approved": True, "by": "ana"}


async def test_two_waits_on_one_name_take_successive_signals(store: Any) -> None:
    wf = Workflow("twice")
    first = wf.wait("first", signal="go")
    second = wf.wait("second", signal="go", depends=[first])

    @wf.node(depends=[second], inputs={"a": "$.first.output", "b": "$.second.output"})
    async def both(a: int, b: int) -> list[int]:
        return [a, b]

    await wf.submit({}, store=store, run_id="two")
    for n in (1, 2, 3):
        await wf.signal("two", "go", n, store=store)
    await Worker(store, [wf]).drain()
    result = await wf.result("two", store=store)
    assert result.output == {"both": [1, 2]}
    kept = await store.signals("two")
    assert [(s.seq, s.consumed_by) for s in kept] == [(1, "first"), (2, "second"), (3, None)]


async def test_bad_sends_raise_and_store_nothing(store: Any) -> None:
    wf = APPROVAL
    await wf.submit({}, store=store, run_id="bad")
    good = {"approved": True, "by": "ana"}
    with pytest.raises(RunNotFound):
        await flowrt.send_signal(store, "nobody", "approval", good)
    with pytest.raises(InputError, match="no wait takes signal 'aproval'"):
        await flowrt.send_signal(store, "bad", "aproval", good)
    with pytest.raises(InputError, match="by") as failed:
        await flowrt.send_signal(store, "bad", "approval", {"approved": True})
    assert failed.value.field == "payload.by"
    with pytest.raises(InputError, match="not JSON"):
        await wf.signal("bad", "approval", {"approved": True, "by": math.nan}, store=store)
    assert await store.signals("bad") == []
    await flowrt.send_signal(store, "bad", "approval", good, key="k")
    with pytest.raises(SignalConflict):
        await flowrt.send_signal(store, "bad", "approval", {**good, "approved": False}, key="k")
    again = await flowrt.send_signal(store, "bad", "approval", good, key="k")
    assert again.duplicate
    assert again.seq == 1
    assert len(await store.signals("bad")) == 1
    await Worker(store, [wf]).drain()
    with pytest.raises(RunEnded):
        await flowrt.send_signal(store, "bad", "approval", good)
    assert len(await store.signals("bad")) == 1


@pytest.mark.parametrize("behavior", ["raise", "return"])
async def test_a_timeout_fails_the_wait_like_any_node(store: Any, behavior: str) -> None:
    wf = approval_flow(timeout=0.1, behavior=behavior)
    result = await wf.run({}, store=store, run_id="late")
    wait = result.nodes["approve"]
    assert wait.status == "failure"
    assert wait.error is not None
    assert wait.error.type == "SignalTimeout"
    assert "waited 0.1s for signal 'approval'" in wait.error.message
    if behavior == "raise":
        assert result.status == "failure"
        assert result.nodes["act"].status == "skip"
    else:
        assert result.status == "success"
        assert result.output == {"act": "kept"}
    stored = await store.load_run("late")
    assert {n.name: n.status for n in stored.nodes}["approve"] == "failure"


async def test_a_parked_run_frees_the_worker_slot_and_a_signal_wakes_it(store: Any) -> None:
    wf = approval_flow()
    other = Workflow("other")

    @other.node()
    async def work() -> int:
        return 1

    await wf.submit({}, store=store, run_id="parked")
    worker = Worker(store, [wf, other], concurrency=1)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve)
        await until(lambda: _parked(store, "parked"), what="the run parked")
        waits = await store.waits("parked")
        assert [(w.node, w.signal, w.due) for w in waits] == [("approve", "approval", None)]
        for i in range(3):  # the one slot is free: other runs go through
            await other.submit({}, store=store, run_id=f"other-{i}")
        for i in range(3):
            await until(lambda i=i: _ended(store, f"other-{i}"), what="the other runs")
        assert await status_of(store, "parked") == "waiting"
        await wf.signal("parked", "approval", {"approved": False, "by": "bo"}, store=store)
        await until(lambda: _ended(store, "parked"), what="the signalled run to end")
        group.cancel_scope.cancel()
    result = await wf.result("parked", store=store)
    assert result.output == {"act": "kept"}
    assert await store.waits("parked") == []


async def _parked(store: Any, run_id: str) -> bool:
    run = await store.load_run(run_id)
    return run is not None and run.status == "waiting" and run.owner is None


async def _ended(store: Any, run_id: str) -> bool:
    return await status_of(store, run_id) in ("success", "failure", "cancelled")


async def test_every_process_gone_then_a_signal_then_a_worker(store: Any) -> None:
    wf = APPROVAL_LATER
    await wf.submit({}, store=store, run_id="alone")
    worker = Worker(store, [wf])
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve)
        await until(lambda: _parked(store, "alone"), what="the run parked")
        group.cancel_scope.cancel()
    [before] = await store.waits("alone")
    await flowrt.send_signal(store, "alone", "approval", {"approved": True, "by": "cy"})
    assert await Worker(store, [wf]).drain() == 1
    assert (await wf.result("alone", store=store)).output == {"act": "refunded"}
    assert before.due is not None


async def test_a_cancelled_wait_resumes_with_its_due_time(store: Any) -> None:
    wf = approval_flow(timeout=3600)
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: wf.run({}, store=store, run_id="again"))
        await until(lambda: _waits(store, "again"), what="the wait to start")
        [first] = await store.waits("again")
        group.cancel_scope.cancel()
    assert await status_of(store, "again") == "cancelled"
    async with anyio.create_task_group() as group:

        async def resume() -> None:
            result = await wf.resume("again", store=store)
            assert result.output == {"act": "refunded"}

        group.start_soon(resume)
        await until(lambda: _waits(store, "again"), what="the wait to start again")
        [second] = await store.waits("again")
        assert second.due == first.due  # the first due time holds
        await wf.signal("again", "approval", {"approved": True, "by": "di"}, store=store)


async def _waits(store: Any, run_id: str) -> bool:
    return bool(await store.waits(run_id))


async def _began(store: Any, run_id: str) -> bool:
    """The run's wait is open now, or was and is decided (the run ended): a loaded machine can
    miss the 0.15 s window in which the wait is open and its record written."""
    if await store.waits(run_id):
        return True
    run = await store.load_run(run_id)
    return run is not None and run.status in ("success", "failure")


TRIALS = 200


@pytest.mark.timeout(120)  # 200 real-clock trials: about 4 s alone, far more on a busy machine
async def test_a_signal_racing_its_timeout_is_decided_once(store: Any) -> None:
    """200 trials, 10 at a time, each sending the signal around the wait's due time: the wait
    either succeeds with the signal consumed, or times out with it left unconsumed; never
    both, never neither."""
    wf = approval_flow("race", timeout=0.15, behavior="return")
    rng = random.Random(26)
    delays = [rng.uniform(0.05, 0.25) for _ in range(TRIALS)]
    outcomes = {"signal": 0, "timeout": 0}
    limiter = anyio.CapacityLimiter(10)  # a loaded machine still starts each wait in time

    async def trial(number: int) -> None:
        run_id = f"race-{number}"
        async with limiter, anyio.create_task_group() as group:
            group.start_soon(lambda: wf.run({}, store=store, run_id=run_id))
            await until(lambda: _began(store, run_id), what="the wait", timeout=60)
            await anyio.sleep(delays[number])
            with contextlib.suppress(RunEnded):  # timed out, and the run ended first
                await wf.signal(run_id, "approval", {"approved": True, "by": "x"}, store=store)
        outcomes[await _decided(wf, store, run_id)] += 1

    async with anyio.create_task_group() as group:
        for number in range(TRIALS):
            group.start_soon(trial, number)
    assert sum(outcomes.values()) == TRIALS, outcomes
    assert min(outcomes.values()) > 0, outcomes  # the race went both ways


async def _decided(wf: Workflow, store: Any, run_id: str) -> str:
    """How the run's wait was decided, checked against its signal and its end."""
    result = await wf.result(run_id, store=store)
    kept = (await store.signals(run_id) or [None])[0]
    if result.nodes["approve"].status == "success":
        assert kept is not None
        assert kept.consumed_by == "approve"
        assert result.output == {"act": "refunded"}
        return "signal"
    assert result.nodes["approve"].error.type == "SignalTimeout"  # type: ignore[union-attr]
    assert kept is None or kept.consumed_by is None
    assert result.output == {"act": "kept"}
    return "timeout"


async def test_a_stored_sleep_keeps_its_due_time(store: Any) -> None:
    wf = Workflow("nap")
    wf.sleep("cool_off", seconds=0.3)
    result = await wf.run({}, store=store, run_id="nap")
    assert result.status == "success"
    assert "woke_at" in result.nodes["cool_off"].output


YAML = """
name: yaml-approval
nodes:
  - name: approve
    wait:
      signal: approval
      timeout_seconds: 3600
      schema:
        type: object
        properties: {by: {type: string}}
        required: [by]
  - name: nap
    sleep: {seconds: 0.1}
    depends: [approve]
  - name: shout
    call: "builtins:str"
    inputs: {object: "$.approve.output.by"}
    depends: [nap]
"""


async def test_a_yaml_workflow_waits_in_the_store_and_takes_a_signal_sent_without_it(
    store: Any, tmp_path: Path
) -> None:
    path = tmp_path / "approval.yaml"
    path.write_text(YAML, encoding="utf-8")
    wf = Workflow.from_yaml(path)
    assert Workflow.from_dict(wf.to_dict()).to_dict() == wf.to_dict()
    run_id = await wf.submit({}, store=store)
    async with anyio.create_task_group() as group:
        group.start_soon(Worker(store, [wf], concurrency=1, poll_seconds=0.05).serve)
        await until(lambda: status_of(store, run_id), what="the run started")
        with pytest.raises(InputError, match="'by' is a required property"):
            await flowrt.send_signal(store, run_id, "approval", {"who": "ana"})
        sent = await flowrt.send_signal(store, run_id, "approval", {"by": "ana"})  # no Workflow
        result = await wf.result(run_id, store=store, timeout=30)
        group.cancel_scope.cancel()
    assert sent.seq == 1
    assert result.status == "success"
    assert result.nodes["shout"].output == "ana"
    assert set(result.nodes["nap"].output) == {"woke_at"}
