"""Waiting for people and for time, without a store: wait nodes take signals from their run's
mailbox (sent before or after the wait started, oldest first, keyed sends idempotent), time out
with ``SignalTimeout`` exactly at their due time (trio's MockClock), and decide signal versus
timeout once; sleep nodes wake at their time; definitions are checked. Stored runs: see
tests/test_stored_signals.py."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from trio.testing import MockClock

import flowrt
from flowrt import DefinitionError, ErrorHandling, Event, InputError, Workflow

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class Approval(BaseModel):
    approved: bool
    by: str


def approval_flow(**wait: Any) -> Workflow:
    wf = Workflow("approval")

    @wf.node()
    async def draft() -> str:
        return "refund 10"

    wf.wait("approve", signal="approval", depends=[draft], **wait)

    @wf.node(depends=["approve"], inputs={"decision": "$.approve.output"})
    async def act(decision: dict[str, Any]) -> str:
        return "refunded" if decision["approved"] else "kept"

    return wf


async def run_until_waiting(wf: Workflow, run_id: str, *, node: str = "approve") -> Any:
    """Start a run in a task; return once ``node`` waits (its node.waiting event)."""
    waiting = anyio.Event()
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        if event.kind == "node.waiting" and event.node == node:
            waiting.set()

    results: list[flowrt.RunResult] = []

    async def go() -> None:
        results.append(await wf.run(run_id=run_id, listener=listen))

    return go, waiting, results, events


async def test_a_signal_sent_while_the_run_waits_is_its_output() -> None:
    wf = approval_flow(schema=Approval)
    go, waiting, results, events = await run_until_waiting(wf, "r1")
    async with anyio.create_task_group() as group:
        group.start_soon(go)
        await waiting.wait()
        sent = await wf.signal("r1", "approval", {"approved": True, "by": "ana"}, key="t-1")
    assert (sent.run_id, sent.signal, sent.seq, sent.duplicate) == ("r1", "approval", 1, False)
    result = results[0]
    assert result.status == "success"
    assert result["approve"].output == {"approved": True, "by": "ana"}
    assert result["act"].output == "refunded"
    kinds = [(e.kind, e.node, e.signal, e.wait) for e in events if e.kind == "node.waiting"]
    assert kinds == [("node.waiting", "approve", "approval", None)]


async def test_a_signal_sent_before_the_wait_started_is_kept_for_it() -> None:
    wf = Workflow("early")
    gate = anyio.Event()

    @wf.node()
    async def slow() -> None:
        await gate.wait()

    wf.wait("approve", depends=[slow])
    results: list[flowrt.RunResult] = []
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: _run_into(wf, "r2", results))
        await anyio.sleep(1)  # the run is in "slow": its wait has not started
        await wf.signal("r2", "approve", {"ok": 1})
        gate.set()
    assert results[0]["approve"].output == {"ok": 1}


async def _run_into(wf: Workflow, run_id: str, results: list[Any]) -> None:
    results.append(await wf.run(run_id=run_id))


async def test_two_waits_on_one_signal_take_successive_signals_oldest_first() -> None:
    wf = Workflow("two")
    gate = anyio.Event()

    @wf.node()
    async def hold() -> None:
        await gate.wait()

    wf.wait("first", signal="go", depends=[hold])
    wf.wait("second", signal="go", depends=["first"])
    results: list[flowrt.RunResult] = []
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: _run_into(wf, "r3", results))
        await anyio.sleep(1)
        for n in (1, 2, 3):
            await wf.signal("r3", "go", n)
        gate.set()
    assert (results[0]["first"].output, results[0]["second"].output) == (1, 2)


async def test_a_keyed_send_is_idempotent_and_a_different_payload_conflicts() -> None:
    wf = approval_flow()
    go, waiting, results, _ = await run_until_waiting(wf, "r4")
    async with anyio.create_task_group() as group:
        group.start_soon(go)
        await waiting.wait()
        first = await wf.signal("r4", "approval", {"approved": False}, key="k")
        again = await wf.signal("r4", "approval", {"approved": False}, key="k")
        with pytest.raises(flowrt.SignalConflict, match="key 'k'"):
            await wf.signal("r4", "approval", {"approved": True}, key="k")
    assert (first.seq, first.duplicate, again.seq, again.duplicate) == (1, False, 1, True)
    assert results[0]["act"].output == "kept"


@pytest.mark.parametrize("limit", [0.5, 30, 3 * 86400])
async def test_a_wait_fails_with_signal_timeout_exactly_at_its_due_time(limit: float) -> None:
    wf = approval_flow(timeout_seconds=limit, error_handling=ErrorHandling(behavior="return"))
    start = anyio.current_time()
    result = await wf.run()
    took = anyio.current_time() - start
    assert took == pytest.approx(limit)
    error = result["approve"].error
    assert error is not None
    assert error.type == "SignalTimeout"
    assert error.message == f"node 'approve' waited {limit:g}s for signal 'approval'"
    assert result["act"].status == "failure"  # it ran with the failed envelope and raised


@pytest.mark.parametrize("offset", [-0.002, -0.001, 0.001, 0.002])
async def test_signal_against_timeout_is_decided_once(offset: float) -> None:
    """A signal sent just before or just after the due time: either the wait succeeds with it,
    or it times out and the signal stays unconsumed for a later wait: never both, never none."""
    wf = Workflow("race")
    returns = ErrorHandling(behavior="return")
    wf.wait("w1", signal="s", timeout_seconds=1, error_handling=returns)
    wf.wait("w2", signal="s", depends=["w1"], timeout_seconds=10, error_handling=returns)
    results: list[flowrt.RunResult] = []
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: _run_into(wf, "race", results))
        await anyio.sleep(1 + offset)
        await wf.signal("race", "s", "x")
    result = results[0]
    if offset < 0:
        assert result["w1"].output == "x"
        assert result["w2"].error is not None  # the one signal was taken: none left for it
        assert result["w2"].error.type == "SignalTimeout"
    else:
        assert result["w1"].error is not None
        assert result["w1"].error.type == "SignalTimeout"
        assert result["w2"].output == "x"  # the unconsumed signal went to the next wait


async def test_signals_to_no_run_here_an_undeclared_signal_or_a_bad_payload_are_refused() -> None:
    wf = approval_flow(schema=Approval)
    with pytest.raises(flowrt.RunNotFound):
        await wf.signal("nowhere", "approval", {"approved": True, "by": "x"})
    go, waiting, results, _ = await run_until_waiting(wf, "r5")
    async with anyio.create_task_group() as group:
        group.start_soon(go)
        await waiting.wait()
        with pytest.raises(InputError, match="no wait takes signal 'nope'"):
            await wf.signal("r5", "nope", {})
        with pytest.raises(InputError, match="approved"):
            await wf.signal("r5", "approval", {"by": "ana"})
        with pytest.raises(InputError, match="not JSON"):
            await wf.signal("r5", "approval", {"approved": True, "by": math.nan})
        sent = await wf.signal("r5", "approval", Approval(approved=True, by="ana"))
    assert sent.seq == 1  # nothing refused was kept
    assert results[0]["approve"].output == {"approved": True, "by": "ana"}


async def test_a_sleep_wakes_after_its_seconds_or_at_its_time() -> None:
    wf = Workflow("naps")
    wf.sleep("nap", seconds=3600)
    wf.sleep("until", until="$.input.at", depends=["nap"])
    at = (datetime.now(UTC) + timedelta(hours=5)).isoformat()
    start = anyio.current_time()
    result = await wf.run({"at": at})
    assert result.status == "success"
    assert anyio.current_time() - start >= 3600
    assert set(result["nap"].output) == {"woke_at"}
    assert datetime.fromisoformat(result["until"].output["woke_at"]).tzinfo is not None


@pytest.mark.parametrize("until", ["tomorrow", "2026-01-01T00:00:00", True, None, [1]])
async def test_a_sleep_until_something_not_a_time_fails_with_input_error(until: Any) -> None:
    wf = Workflow("bad_until")
    wf.sleep("nap", until="$.input.at")
    result = await wf.run({"at": until})
    error = result["nap"].error
    assert error is not None
    assert error.type == "InputError"
    assert "until" in error.message


async def test_a_sleep_until_a_past_time_completes_at_once() -> None:
    wf = Workflow("past")
    wf.sleep("nap", until="$.input.at")
    start = anyio.current_time()
    result = await wf.run({"at": 0})
    assert result.status == "success"
    assert anyio.current_time() == start


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda wf: wf.wait("w", error_handling=ErrorHandling(max_retries=1)), "error_handling"),
        (lambda wf: wf.wait("w", error_handling={"timeout_seconds": 5}), "error_handling"),
        (lambda wf: wf.wait("w", timeout_seconds=0), "timeout_seconds"),
        (lambda wf: wf.wait("w", timeout_seconds=-1), "timeout_seconds"),
        (lambda wf: wf.wait("w", schema={"type": "objekt"}), "schema"),
        (lambda wf: wf.wait("w", schema={"minimum": float("nan")}), "schema"),
        (lambda wf: wf.wait("w", schema=int), "schema"),
        (lambda wf: wf.sleep("s"), "seconds"),
        (lambda wf: wf.sleep("s", seconds=1, until="$.input.at"), "seconds"),
        (lambda wf: wf.sleep("s", seconds=-1), "seconds"),
    ],
)
def test_bad_wait_and_sleep_definitions_name_the_node_and_field(build: Any, field: str) -> None:
    wf = Workflow("bad")
    build(wf)
    with pytest.raises(DefinitionError) as info:
        wf.validate()
    assert info.value.node in ("w", "s")
    assert info.value.field == field


async def test_the_run_deadline_and_cancellation_reach_a_wait() -> None:
    wf = approval_flow()
    result = await wf.run(timeout=10)
    error = result["approve"].error
    assert error is not None
    assert error.type == "TimeoutError"
    with anyio.move_on_after(5):
        await wf.run(run_id="cancelled")
    with pytest.raises(flowrt.RunNotFound):  # its mailbox went with it
        await wf.signal("cancelled", "approval", {})


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_on_asyncio_a_signal_reaches_its_wait(anyio_backend: str) -> None:
    wf = approval_flow(timeout_seconds=30)
    go, waiting, results, _ = await run_until_waiting(wf, "on-asyncio")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(go)
            await waiting.wait()
            await wf.signal("on-asyncio", "approval", {"approved": True})
    assert results[0]["act"].output == "refunded"


def test_waits_and_sleeps_are_drawn_and_round_trip_as_data() -> None:
    wf = approval_flow()
    wf.sleep("nap", seconds=5, depends=["act"])
    drawing = wf.mermaid()
    assert '[/"approve (wait)"/]' in drawing
    assert '"nap (sleep)"' in drawing
    data = {
        "name": "from_file",
        "nodes": [
            {
                "name": "approve",
                "wait": {
                    "signal": "approval",
                    "timeout_seconds": 259200,
                    "schema": f"{__name__}:Approval",
                },
                "error_handling": {"behavior": "return"},
            },
            {"name": "nap", "sleep": {"until": "$.input.at"}, "depends": ["approve"]},
            {"name": "rest", "sleep": {"seconds": 1.5}, "depends": ["nap"]},
        ],
    }
    loaded = Workflow.from_dict(data)
    loaded.validate()
    assert loaded.nodes["approve"].wait is not None
    assert loaded.nodes["approve"].wait.schema is Approval
    again = Workflow.from_dict(loaded.to_dict())
    assert again.to_dict() == loaded.to_dict()
    assert loaded.to_dict()["nodes"][0]["wait"] == data["nodes"][0]["wait"]  # type: ignore[index]


@pytest.mark.parametrize(
    "node",
    [
        {"name": "w", "wait": {}, "call": "math:floor"},
        {"name": "w", "wait": {}, "inputs": {"a": 1}},
        {"name": "s", "sleep": {"seconds": 1}, "error_handling": {"max_retries": 1}},
        {"name": "w", "wait": {"schema": "no_such_module:Model"}},
        {"name": "w", "wait": {"timeout": 5}},
    ],
)
def test_bad_wait_and_sleep_data_are_definition_errors(node: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        Workflow.from_dict({"name": "bad", "nodes": [node]}).validate()


async def test_a_hundred_waiting_runs_each_get_their_own_signals() -> None:
    import random

    wf = Workflow("many")
    wf.wait("first", signal="s", timeout_seconds=100)
    wf.wait("second", signal="s", depends=["first"], timeout_seconds=100)
    results: list[flowrt.RunResult] = []
    order = [(i, n) for i in range(100) for n in (0, 1)]
    random.Random(7).shuffle(order)
    async with anyio.create_task_group() as group:
        for i in range(100):
            group.start_soon(_run_into, wf, f"run-{i}", results)
        await anyio.sleep(1)  # every run waits in "first"
        sent: dict[int, int] = {}
        for i, _ in order:  # each run's two signals, in a shuffled order across runs
            sent[i] = sent.get(i, 0) + 1
            await wf.signal(f"run-{i}", "s", {"run": i, "n": sent[i]})
    assert len(results) == 100
    for result in results:
        i = int(result.run_id.removeprefix("run-"))
        assert result["first"].output == {"run": i, "n": 1}
        assert result["second"].output == {"run": i, "n": 2}
