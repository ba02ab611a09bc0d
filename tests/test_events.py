"""Events: the stream, listeners, structlog output."""

from __future__ import annotations

import json
import logging
from contextlib import aclosing
from typing import Any

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

import flowrt
from flowrt import ErrorHandling, Event, Workflow

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def unconfigured_structlog() -> Any:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def retried_once() -> Workflow:
    wf = Workflow("events")
    calls = []

    @wf.node(error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0.001))
    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("reset")
        return "ok"

    @wf.node(depends=[flaky])
    async def after() -> str:
        return "done"

    return wf


def summary(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(e.kind, e.node, e.attempt, e.status) for e in events]


async def test_event_order_for_a_retried_node() -> None:
    events = [event async for event in retried_once().stream()]
    assert summary(events) == [
        ("run.started", None, None, None),
        ("node.started", "flaky", 1, None),
        ("node.retrying", "flaky", 1, None),
        ("node.started", "flaky", 2, None),
        ("node.finished", "flaky", 2, "success"),
        ("node.started", "after", 1, None),
        ("node.finished", "after", 1, "success"),
        ("run.finished", None, 1, "success"),
    ]
    retrying = events[2]
    assert retrying.error is not None
    assert (retrying.error.type, retrying.error.message, retrying.wait) == (
        "ConnectionError",
        "reset",
        0.001,
    )
    assert len({e.run_id for e in events}) == 1
    assert [e.time for e in events] == sorted(e.time for e in events)
    finished = events[-1].result
    assert finished is not None
    assert finished.run_id == events[0].run_id
    assert finished["flaky"].attempts == 2


async def test_events_arrive_while_the_run_is_going() -> None:
    gate = anyio.Event()
    wf = Workflow("live")

    @wf.node
    async def waits() -> str:
        await gate.wait()  # only the consumer, on seeing this node start, opens it
        return "released"

    kinds = []
    with anyio.fail_after(3):
        async with aclosing(wf.stream()) as events:
            async for event in events:
                kinds.append(event.kind)
                if event.kind == "node.started":
                    gate.set()
    assert kinds[-1] == "run.finished"


def forever_workflow(stopped: list[str]) -> Workflow:
    wf = Workflow("early")

    @wf.node
    async def forever() -> None:
        try:
            await anyio.sleep(100)
        finally:
            stopped.append("forever")

    @wf.node(depends=[forever])
    async def never() -> None:
        stopped.append("never ran, yet here")

    return wf


async def test_breaking_out_of_the_loop_cancels_the_run() -> None:
    stopped: list[str] = []
    with anyio.fail_after(3):
        async for event in forever_workflow(stopped).stream():
            if event.kind == "node.started":
                break
        await anyio.sleep(0.05)  # the cancelled node stops at its next checkpoint
    assert stopped == ["forever"]


async def test_closing_the_stream_waits_until_every_node_stopped() -> None:
    stopped: list[str] = []
    with anyio.fail_after(3):
        async with forever_workflow(stopped).stream() as events:
            async for event in events:
                if event.kind == "node.started":
                    break
        assert stopped == ["forever"]
    stopped.clear()
    with anyio.fail_after(3):
        async with aclosing(forever_workflow(stopped).stream()) as events:
            async for event in events:
                if event.kind == "node.started":
                    break
        assert stopped == ["forever"]


async def test_cancelling_the_consumer_cancels_the_run() -> None:
    stopped: list[str] = []
    with anyio.move_on_after(0.05):
        async for _ in forever_workflow(stopped).stream():
            pass
    await anyio.sleep(0.05)
    assert stopped == ["forever"]


def test_a_bad_definition_raises_when_the_stream_is_made() -> None:
    wf = Workflow("bad")
    wf.node(lambda: 1, name="a", depends=["ghost"])
    with pytest.raises(flowrt.DefinitionError):
        wf.stream()


async def test_listeners_see_every_run_and_cannot_break_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wf = retried_once()
    seen: list[str] = []

    @wf.add_listener
    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    wf.add_listener(lambda event: seen.append(event.kind))
    with caplog.at_level(logging.ERROR, logger="flowrt"):
        result = await wf.run()
    assert result.status == "success"
    assert seen[0] == "run.started"
    assert seen[-1] == "run.finished"
    assert "observer bug" in caplog.text
    wf.remove_listener(broken)


async def test_a_cancelled_run_ends_with_a_cancelled_event() -> None:
    wf = Workflow("cancelled")
    seen: list[tuple[str, Any]] = []
    wf.add_listener(lambda event: seen.append((event.kind, event.status)))
    started = anyio.Event()

    @wf.node
    async def hang() -> None:
        started.set()
        await anyio.sleep(100)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wf.run)
        await started.wait()
        tg.cancel_scope.cancel()
    assert seen[-1] == ("run.finished", "cancelled")


async def test_structlog_receives_every_event_with_its_context() -> None:
    with capture_logs() as logs:
        result = await retried_once().run()
    kinds = [entry["event"] for entry in logs]
    assert kinds[0] == "run.started"
    assert kinds[-1] == "run.finished"
    retry = next(entry for entry in logs if entry["event"] == "node.retrying")
    assert retry["log_level"] == "warning"
    assert retry["run_id"] == result.run_id
    assert retry["workflow"] == "events"
    assert (retry["node"], retry["attempt"], retry["wait"]) == ("flaky", 1, 0.001)
    assert retry["error"] == "ConnectionError: reset"
    finished = next(
        entry for entry in logs if entry["event"] == "node.finished" and entry["node"] == "flaky"
    )
    assert finished["duration"] >= 0


async def test_json_log_lines_parse_and_carry_the_run_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flowrt.configure_logging(json=True)
    result = await retried_once().run()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert {line["run_id"] for line in lines} == {result.run_id}
    assert next(line["event"] for line in lines) == "run.started"
    assert all("timestamp" in line and "level" in line for line in lines)


async def test_an_unconfigured_structlog_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    await retried_once().run()
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_an_async_listener_is_refused() -> None:
    async def listener(event: Event) -> None:
        return None

    with pytest.raises(TypeError, match="listeners are called synchronously"):
        retried_once().add_listener(listener)


async def test_a_failure_is_logged_with_its_traceback() -> None:
    wf = Workflow("logged-failure")

    @wf.node
    async def explode() -> None:
        raise KeyError("missing")

    with capture_logs() as logs:
        await wf.run()
    failed = next(entry for entry in logs if entry["event"] == "node.finished")
    assert failed["log_level"] == "warning"
    assert failed["error"] == "KeyError: 'missing'"
    assert 'raise KeyError("missing")' in failed["traceback"]


async def test_an_app_on_stdlib_logging_gets_retries_and_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    wf = Workflow("stdlib")

    @wf.node(error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=0))
    async def down() -> None:
        raise ConnectionError("reset")

    with caplog.at_level(logging.INFO, logger="flowrt"):
        result = await wf.run()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "flowrt"]
    retry = next(text for level, text in lines if text.startswith("node.retrying"))
    assert f"run_id={result.run_id}" in retry
    assert "error=ConnectionError: reset" in retry
    failed = next(
        (level, text)
        for level, text in lines
        if text.startswith("node.finished") and "failure" in text
    )
    assert failed[0] == "WARNING"
    assert "raise ConnectionError" in failed[1]  # the traceback follows the line
    assert not any("=None" in text for _, text in lines)  # empty fields are left out


def test_an_app_without_logging_sees_nothing_from_flowrt() -> None:
    import subprocess
    import sys

    code = (
        "import flowrt\n"
        "wf = flowrt.Workflow('quiet')\n"
        "def boom():\n    raise RuntimeError('x')\n"
        "wf.node(boom)\n"
        "print(wf.run_sync().status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("failure\n", "")


@pytest.mark.parametrize(
    ("setup", "observed"),
    [
        ("", False),  # nothing configured: no emitter at all
        ("logging.getLogger('flowrt').addHandler(logging.NullHandler())", False),
        ("logging.getLogger('flowrt').addHandler(logging.StreamHandler())", True),
        ("logging.basicConfig()", True),
        ("logging.basicConfig(); logging.getLogger('flowrt').setLevel(logging.ERROR)", False),
        ("logging.basicConfig(); logging.disable(logging.CRITICAL)", False),
    ],
)
def test_each_run_asks_whether_logging_is_configured_now(setup: str, observed: bool) -> None:
    """The per-run check (a cheap first test, then the general one) answers as configured
    at the moment the run starts: set up after import, it is seen by the next run."""
    import subprocess
    import sys

    code = (
        "import logging, flowrt\n"
        "from flowrt._engine.events import emitter_for\n"
        "assert emitter_for('w', 'r', [], lambda: 0.0) is None\n"  # before: nothing set up
        f"{setup}\n"
        "print(emitter_for('w', 'r', [], lambda: 0.0) is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(observed)
