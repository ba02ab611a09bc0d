"""Maps are first-class in every view: a map node is one attempt of its node, with
``node.started``, a trace record (its timeline bar, stored with a durable run), an
OpenTelemetry span with its status, the progress bar, and each failed item reported
(``node.item_failed``, logged and drawn as a span event)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from structlog.testing import capture_logs

from flowrt import ErrorHandling, Event, SQLiteStore, Workflow
from flowrt._cli.progress import Progress
from flowrt.otel import instrument

pytestmark = pytest.mark.anyio


async def odd_fails(item: int) -> int:
    if item % 2:
        raise ValueError(f"odd {item}")
    return item


def mapping(store: SQLiteStore | None = None) -> Workflow:
    wf = Workflow("maps", store=store)
    wf.node(lambda: 1, name="before")
    wf.map(
        odd_fails, items="$.input.xs", name="m", depends=["before"],
        error_handling=ErrorHandling(behavior="return"),
    )  # fmt: skip
    return wf


async def test_a_map_emits_started_item_failures_and_finished() -> None:
    events: list[Event] = []
    wf = mapping()
    wf.add_listener(events.append)
    await wf.run({"xs": [0, 1, 2, 3]})
    mine = [(e.kind, e.item) for e in events if e.node == "m"]
    assert mine == [
        ("node.started", None),
        ("node.item_failed", 1),
        ("node.item_failed", 3),
        ("node.finished", None),
    ]
    failed = [e for e in events if e.kind == "node.item_failed"]
    assert [e.error.message for e in failed if e.error] == ["odd 1", "odd 3"]


async def test_a_map_has_one_trace_record_stored_for_its_timeline(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "runs.db") as store:
        result = await mapping(store).run({"xs": [0, 2]}, run_id="r")
        stored = await mapping(store).run({"xs": [0, 2]}, run_id="r")  # read back
    for node in (result["m"], stored["m"]):
        (attempt,) = node.trace
        assert attempt.attempt == 1
        assert attempt.error is None
        assert attempt.started >= result["before"].trace[0].started
        assert attempt.duration == pytest.approx(node.duration, abs=0.01)


async def test_a_maps_span_and_its_failed_items() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    wf = mapping()
    instrument(wf, tracer_provider=provider)
    await wf.run({"xs": [0, 1]})
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "flowrt.node m"]
    assert span.status.status_code == StatusCode.OK
    assert [e.name for e in span.events] == ["flowrt.item.failed"]
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["flowrt.item"] == 1
    spans = [s.name for s in exporter.get_finished_spans()]
    assert "flowrt.node before" in spans


async def test_the_progress_lines_name_failed_items() -> None:
    out = io.StringIO()
    wf = mapping()
    wf.add_listener(Progress(2, out))
    await wf.run({"xs": [1]})
    assert out.getvalue() == "  m[0]: item failed (ValueError: odd 1)\n"


async def test_item_failures_are_logged() -> None:
    try:
        with capture_logs() as logs:
            await mapping().run({"xs": [0, 3]})
    finally:
        structlog.reset_defaults()  # capture_logs leaves structlog configured: printing
    failed = [log for log in logs if log["event"] == "node.item_failed"]
    assert len(failed) == 1
    assert (failed[0]["node"], failed[0]["item"]) == ("m", 1)
    assert failed[0]["log_level"] == "warning"


async def test_the_viewer_draws_a_maps_bar(tmp_path: Path) -> None:
    from flowrt._web.viewer import run_view

    wf = mapping(SQLiteStore(tmp_path / "runs.db"))
    assert wf.store is not None
    with wf.store as store:
        await wf.run({"xs": [0, 2]}, run_id="r")
        run = await store.load_run("r")
    assert run is not None
    view = run_view(run, wf.compiled(), now=0.0)
    (node,) = [n for n in view.nodes if n.name == "m"]
    assert [bar.kind for bar in node.bars] == ["ok"]


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_map_items_failure_has_one_form_with_or_without_retries(retries: int) -> None:
    wf = Workflow("one_form")

    def inverse(x: int) -> float:
        return 1 / x

    policy = ErrorHandling(behavior="return", max_retries=retries, retry_interval_seconds=0)
    wf.map(inverse, items="$.input.items", name="inv", tolerated_failures=1, error_handling=policy)
    result = await wf.run({"items": [1, 0]})
    assert result.status == "success"
    failed = result.output["inv"][1]
    assert (failed["status"], failed["output"]) == ("failure", None)
    assert failed["error"] == {"type": "ZeroDivisionError", "message": "division by zero"}
