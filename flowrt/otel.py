"""OpenTelemetry spans for flowrt runs (``pip install flowrt[otel]``).

``instrument(wf)`` adds a listener to the workflow that opens one span per run
(``flowrt.run <workflow>``) and, inside it, one span per node attempt (``flowrt.node <node>``),
each with the run id, node, attempt, status and error as attributes. A failed attempt's span has
status ERROR; a retry's wait is recorded on the failed attempt (``flowrt.retry.wait``); skipped
nodes and workflow-level retries are events on the run span. Map items are attempts of their
map node's single span. flowrt itself never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from . import __version__

if TYPE_CHECKING:
    from ._graph import Workflow
    from ._models import Event


class _Run:
    __slots__ = ("attempts", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.attempts: dict[str, Span] = {}


def _error(span: Span, event: Event) -> None:
    if event.error is not None:
        span.set_attribute("error.type", event.error.type)
        span.set_attribute("flowrt.error.message", event.error.message)
        span.set_status(Status(StatusCode.ERROR, f"{event.error.type}: {event.error.message}"))


def instrument(
    wf: Workflow, tracer_provider: trace.TracerProvider | None = None
) -> Callable[[Event], None]:
    """Emit spans for every run of ``wf``; returns the listener (``wf.remove_listener`` undoes).

    Args:
        wf: the workflow to trace.
        tracer_provider: where spans go; the global provider by default.
    """
    tracer = trace.get_tracer("flowrt", __version__, tracer_provider=tracer_provider)
    runs: dict[str, _Run] = {}

    def started(event: Event) -> None:
        span = tracer.start_span(
            f"flowrt.run {wf.name}",
            attributes={"flowrt.workflow": wf.name, "flowrt.run_id": event.run_id},
        )
        runs[event.run_id] = _Run(span)

    def attempt_started(run: _Run, event: Event) -> None:
        assert event.node is not None
        run.attempts[event.node] = tracer.start_span(
            f"flowrt.node {event.node}",
            context=trace.set_span_in_context(run.span),
            attributes={
                "flowrt.workflow": wf.name,
                "flowrt.run_id": event.run_id,
                "flowrt.node": event.node,
                "flowrt.attempt": event.attempt or 0,
            },
        )

    def attempt_ended(run: _Run, event: Event) -> None:
        span = run.attempts.pop(event.node or "", None)
        if span is None:  # a node skipped without any attempt
            run.span.add_event("node.skipped", {"flowrt.node": event.node or ""})
            return
        span.set_attribute("flowrt.status", event.status or "failure")
        if event.wait is not None:
            span.set_attribute("flowrt.retry.wait", event.wait)
        _error(span, event)
        if event.error is None:
            span.set_status(Status(StatusCode.OK))
        span.end()

    def finished(run: _Run, event: Event) -> None:
        for span in run.attempts.values():  # cancelled mid-attempt
            span.set_status(Status(StatusCode.ERROR, "cancelled"))
            span.end()
        run.span.set_attribute("flowrt.status", event.status or "")
        run.span.set_attribute("flowrt.attempts", event.attempt or 0)
        _error(run.span, event)
        if event.status == "cancelled":
            run.span.set_status(Status(StatusCode.ERROR, "cancelled"))
        elif event.error is None:
            run.span.set_status(Status(StatusCode.OK))
        run.span.end()

    def listener(event: Event) -> None:
        if event.kind == "run.started":
            started(event)
            return
        run = runs.get(event.run_id)
        if run is None:
            return
        if event.kind == "node.started":
            attempt_started(run, event)
        elif event.kind in ("node.retrying", "node.finished"):
            attempt_ended(run, event)
        elif event.kind == "run.retrying":
            run.span.add_event("run.retrying", {"flowrt.retry.wait": event.wait or 0.0})
        elif event.kind == "run.finished":
            finished(runs.pop(event.run_id), event)

    wf.add_listener(listener)
    return listener
