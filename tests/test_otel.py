from __future__ import annotations

from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from flowrt import ErrorHandling, Workflow
from flowrt.otel import instrument

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def test_one_span_per_run_and_per_attempt(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    wf = Workflow("traced")
    calls: list[int] = []

    @wf.node(error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=0.001))
    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("reset")
        return "ok"

    @wf.node(depends=[flaky])
    async def boom() -> None:
        raise ValueError("bad")

    @wf.node(depends=[boom])
    async def skipped() -> None:
        return None

    instrument(wf, provider)
    result = await wf.run()
    spans = {(s.name, s.attributes.get("flowrt.attempt")): s for s in exporter.get_finished_spans()}  # type: ignore[union-attr]
    assert set(spans) == {
        ("flowrt.run traced", None),
        ("flowrt.node flaky", 1),
        ("flowrt.node flaky", 2),
        ("flowrt.node boom", 1),
    }
    run_span = spans[("flowrt.run traced", None)]
    first, second = spans[("flowrt.node flaky", 1)], spans[("flowrt.node flaky", 2)]
    attrs: Any = first.attributes
    assert first.status.status_code == StatusCode.ERROR
    assert attrs["error.type"] == "ConnectionError"
    assert attrs["flowrt.retry.wait"] == 0.001
    assert attrs["flowrt.run_id"] == result.run_id
    assert second.status.status_code == StatusCode.OK
    assert second.attributes["flowrt.status"] == "success"  # type: ignore[index]
    for span in (first, second, spans[("flowrt.node boom", 1)]):
        assert span.parent is not None
        assert span.parent.span_id == run_span.context.span_id  # type: ignore[union-attr]
    assert run_span.status.status_code == StatusCode.ERROR
    assert run_span.attributes["error.type"] == "ValueError"  # type: ignore[index]
    assert [e.name for e in run_span.events] == ["node.skipped", "exception"]  # the run failed


async def test_a_failure_is_recorded_on_its_span_as_an_exception_with_its_stacktrace(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    wf = Workflow("traced-failure")

    @wf.node
    async def explode() -> None:
        raise KeyError("missing")

    instrument(wf, provider)
    await wf.run()
    span = next(s for s in exporter.get_finished_spans() if s.name == "flowrt.node explode")
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "KeyError"
    assert 'raise KeyError("missing")' in str(event.attributes["exception.stacktrace"])


async def test_spans_a_node_starts_are_children_of_its_attempt_span(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    from opentelemetry import trace

    tracer = provider.get_tracer("app")
    wf = Workflow("nested")

    @wf.node
    async def on_loop() -> None:
        with tracer.start_as_current_span("http.get"):
            pass

    @wf.node
    def in_thread() -> None:
        with tracer.start_as_current_span("db.query"):
            pass

    instrument(wf, provider)
    with tracer.start_as_current_span("caller"):
        await wf.run()
        assert trace.get_current_span().name == "caller"  # type: ignore[attr-defined]
    spans = {span.name: span for span in exporter.get_finished_spans()}
    for inner, node in (("http.get", "on_loop"), ("db.query", "in_thread")):
        parent = spans[inner].parent
        assert parent is not None
        assert parent.span_id == spans[f"flowrt.node {node}"].context.span_id  # type: ignore[union-attr]


async def test_removing_the_instrument_stops_the_spans(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    wf = Workflow("removed")
    wf.node(lambda: 1, name="one")
    tracing = instrument(wf, provider)
    await wf.run()
    assert len(exporter.get_finished_spans()) == 2  # the run's and its node's
    wf.remove_listener(tracing)
    await wf.run()
    assert len(exporter.get_finished_spans()) == 2


async def test_concurrent_runs_get_spans_of_their_own(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    import anyio

    wf = Workflow("many")
    wf.node(anyio.sleep, name="nap", inputs={"delay": 0.01})
    instrument(wf, provider)
    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(wf.run)
    spans = exporter.get_finished_spans()
    runs = [span for span in spans if span.name == "flowrt.run many"]
    naps = [span for span in spans if span.name == "flowrt.node nap"]
    assert len(runs) == len(naps) == 20
    parent_of = {span.parent.span_id for span in naps if span.parent is not None}
    assert parent_of == {span.context.span_id for span in runs}  # one node span under each run


@pytest.mark.parametrize("signalled", [True, False])
async def test_a_wait_is_one_node_span_with_what_it_waits_for(
    exporter: InMemorySpanExporter, provider: TracerProvider, signalled: bool
) -> None:
    import anyio

    from flowrt._engine.signals import mailbox_of

    wf = Workflow("traced_wait")
    wf.wait("approve", signal="approval", timeout_seconds=0.5)
    wf.sleep("nap", seconds=0.01)
    instrument(wf, provider)
    results: list[Any] = []

    async def go() -> None:
        results.append(await wf.run(run_id=f"w{signalled}"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        if signalled:
            with anyio.fail_after(10):
                while mailbox_of(f"w{signalled}") is None:
                    await anyio.sleep(0.001)
            await wf.signal(f"w{signalled}", "approval", {"ok": True})
    spans = {span.name: span for span in exporter.get_finished_spans()}
    approve = spans["flowrt.node approve"]
    assert approve.attributes is not None
    assert approve.attributes["flowrt.wait.kind"] == "signal"
    assert approve.attributes["flowrt.signal"] == "approval"
    assert 0 < float(approve.attributes["flowrt.wait.seconds"]) <= 0.5  # type: ignore[arg-type]
    assert approve.events[0].name == "flowrt.waiting"
    nap = spans["flowrt.node nap"]
    assert nap.attributes is not None
    assert nap.attributes["flowrt.wait.kind"] == "sleep"
    if signalled:
        assert approve.status.status_code == StatusCode.OK
        assert results[0].status == "success"
    else:
        assert approve.status.status_code == StatusCode.ERROR
        assert approve.attributes["error.type"] == "SignalTimeout"


async def test_a_wait_for_a_rate_limits_turn_is_an_event_on_the_run_span(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    from flowrt import RateLimit

    wf = Workflow("throttled-traced")
    wf.node(lambda: 1, name="call", rate_limit=RateLimit("otel-api", limit=1, per_seconds=30))
    instrument(wf, provider)
    await wf.run()
    with anyio.move_on_after(0.2):  # its turn is 30 s away: it waits, then is cancelled
        await wf.run()
    runs = [s for s in exporter.get_finished_spans() if s.name == "flowrt.run throttled-traced"]
    events = [e for span in runs for e in span.events if e.name == "flowrt.throttled"]
    assert len(events) == 1
    assert events[0].attributes["flowrt.rate_limit"] == "otel-api"  # type: ignore[index]
    assert events[0].attributes["flowrt.node"] == "call"  # type: ignore[index]
    assert 25 < events[0].attributes["flowrt.wait.seconds"] <= 30  # type: ignore[index,operator]
