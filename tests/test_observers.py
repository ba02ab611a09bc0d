"""One observer interface: the engine tells every observer of a run the same hooks in the same
order (the event emitter, the durable writer, OpenTelemetry's tracer, an instrument of one's
own); ``listener=`` gives one run's events to a caller; a deadline that is not a number of
seconds is a ValueError that names it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

import flowrt
from flowrt import ErrorHandling, Event, Workflow, WorkflowRetry
from flowrt._engine.observe import Instrument, Observer, Wait

pytestmark = pytest.mark.anyio


class Recorder(Instrument):
    """Notes every hook of every run, as (run id, hook, details)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def observe(self, run_id: str, workflow: str) -> Observer:
        return _Hooks(self.calls, run_id)


class _Hooks(Observer):
    def __init__(self, calls: list[tuple[Any, ...]], run_id: str) -> None:
        self.calls, self.run_id = calls, run_id

    def note(self, *what: Any) -> None:
        self.calls.append((self.run_id, *what))

    def run_started(self, attempt: int) -> None:
        self.note("run_started", attempt)

    def node_started(self, node: str, attempt: int) -> None:
        self.note("node_started", node, attempt)

    def node_waiting(self, node: str, state: Any, wait: Wait) -> None:
        self.note("node_waiting", node, state.attempts, wait.kind, wait.seconds)

    def node_finished(self, node: str, state: Any) -> None:
        self.note("node_finished", node, state.status)

    def item_failed(self, node: str, item: int, error: Mapping[str, str]) -> None:
        self.note("item_failed", node, item, error["type"])

    async def run_retrying(self, attempt: int, error: Mapping[str, str], wait: float) -> None:
        self.note("run_retrying", attempt, error["type"])

    async def run_finished(self, result: flowrt.RunResult) -> None:
        self.note("run_finished", result.status, result.attempts)

    async def run_cancelled(self, parked: bool) -> None:
        self.note("run_cancelled", parked)


async def test_an_instrument_hears_every_hook_in_order() -> None:
    wf = Workflow("hooks")
    calls: list[int] = []

    @wf.node(error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=0.01))
    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("reset")
        return "ok"

    @wf.node(depends=[flaky], error_handling=ErrorHandling(behavior="return"))
    async def each() -> None:
        raise ValueError("no")

    recorder = wf.add_listener(Recorder())
    result = await wf.run(run_id="r1")
    assert result.status == "success"
    assert [call[1:] for call in recorder.calls] == [
        ("run_started", 1),
        ("node_started", "flaky", 1),
        ("node_waiting", "flaky", 1, "retry", 0.01),
        ("node_started", "flaky", 2),
        ("node_finished", "flaky", "success"),
        ("node_started", "each", 1),
        ("node_finished", "each", "failure"),
        ("run_finished", "success", 1),
    ]
    assert {call[0] for call in recorder.calls} == {"r1"}


async def test_map_items_and_workflow_retries_reach_the_observers() -> None:
    wf = Workflow("retried", retry=WorkflowRetry(max_retries=1, delay_seconds=0.01))

    def inverse(x: int) -> float:
        return 1 / x

    wf.map(inverse, items="$.input.items", name="inverses")
    recorder = wf.add_listener(Recorder())
    result = await wf.run({"items": [1, 0, 2]})
    assert result.status == "failure"
    hooks = [call[1:] for call in recorder.calls]
    assert hooks == [
        ("run_started", 1),
        ("node_started", "inverses", 1),
        ("item_failed", "inverses", 1, "ZeroDivisionError"),
        ("node_finished", "inverses", "failure"),
        ("run_retrying", 1, "ZeroDivisionError"),
        ("run_started", 2),
        ("node_started", "inverses", 1),
        ("item_failed", "inverses", 1, "ZeroDivisionError"),
        ("node_finished", "inverses", "failure"),
        ("run_finished", "failure", 2),
    ]


async def test_a_cancelled_run_tells_its_observers_once() -> None:
    wf = Workflow("cancelled")
    started = anyio.Event()

    @wf.node()
    async def slow() -> None:
        started.set()
        await anyio.sleep(60)

    recorder = wf.add_listener(Recorder())
    async with anyio.create_task_group() as group:
        group.start_soon(wf.run)
        await started.wait()
        group.cancel_scope.cancel()
    assert [call[1:] for call in recorder.calls][-1] == ("run_cancelled", False)
    assert sum(call[1] == "run_cancelled" for call in recorder.calls) == 1


async def test_removing_an_instrument_stops_it() -> None:
    wf = Workflow("removed")
    wf.node(name="a")(lambda: 1)
    recorder = wf.add_listener(Recorder())
    await wf.run()
    seen = len(recorder.calls)
    wf.remove_listener(recorder)
    await wf.run()
    assert len(recorder.calls) == seen > 0


async def test_listener_gets_one_runs_events_after_the_workflows() -> None:
    wf = Workflow("listened")
    wf.node(name="a")(lambda: 1)
    order: list[tuple[str, str]] = []
    wf.add_listener(lambda event: order.append(("workflow", event.kind)))
    mine: list[Event] = []

    def listener(event: Event) -> None:
        order.append(("mine", event.kind))
        mine.append(event)

    result = await wf.run(listener=listener)
    assert [event.kind for event in mine] == [
        "run.started",
        "node.started",
        "node.finished",
        "run.finished",
    ]
    assert {event.run_id for event in mine} == {result.run_id}
    assert order[:2] == [("workflow", "run.started"), ("mine", "run.started")]
    await wf.run()  # the listener was this run's only
    assert len(mine) == 4


async def test_listener_on_resume_and_stream(tmp_path: Any) -> None:
    store = flowrt.SQLiteStore(tmp_path / "runs.db")
    wf = Workflow("resumed", store=store)
    wf.node(name="a")(lambda: 1)
    await wf.run(run_id="x")
    heard: list[str] = []
    await wf.resume("x", listener=lambda event: heard.append(event.kind))
    assert heard == []  # an ended run is returned as stored: nothing ran
    streamed: list[str] = []
    wf2 = Workflow("streamed")
    wf2.node(name="a")(lambda: 1)
    async with wf2.stream(listener=lambda event: heard.append(event.kind)) as events:
        streamed = [event.kind async for event in events]
    assert heard == streamed == ["run.started", "node.started", "node.finished", "run.finished"]


BAD_TIMEOUTS = ["1", -1, -0.5, math.nan, True, [1], object()]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
async def test_a_timeout_that_is_not_seconds_is_a_value_error_naming_it(
    timeout: Any, tmp_path: Any
) -> None:
    wf = Workflow("timed", store=flowrt.SQLiteStore(tmp_path / "runs.db"))
    wf.node(name="a")(lambda: 1)
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        await wf.run(timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        await wf.submit(timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        await wf.resume("nothing", timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        wf.stream(timeout=timeout)
    assert await wf.store.list_runs() == []  # type: ignore[union-attr]


@pytest.mark.parametrize("timeout", [0, 0.0, 5, 2.5, math.inf, None])
async def test_a_timeout_in_seconds_is_taken(timeout: Any) -> None:
    wf = Workflow("timed")
    wf.node(name="a")(lambda: 1)
    result = await wf.run(timeout=timeout)
    assert result.status == ("failure" if timeout == 0 else "success")


async def test_the_cached_environment_follows_every_change(tmp_path: Any) -> None:
    wf = Workflow("changing")
    wf.node(name="a")(lambda: 1)
    await wf.run()
    heard: list[str] = []
    wf.add_listener(lambda event: heard.append(event.kind))  # added after a run
    await wf.run()
    assert heard[-1] == "run.finished"
    wf.listeners.append(lambda event: heard.append("direct"))  # the list itself
    await wf.run()
    assert "direct" in heard
    wf.store = flowrt.SQLiteStore(tmp_path / "runs.db")  # a store set afterwards
    result = await wf.run()
    assert await wf.store.load_run(result.run_id) is not None
    wf.store = None
    assert wf.environment().store is None
