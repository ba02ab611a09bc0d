"""OpenTelemetry spans for flowrt runs (``pip install flowrt[otel]``).

``instrument(wf)`` adds a listener to the workflow that opens one span per run
(``flowrt.run <workflow>``) and, inside it, one span per node attempt (``flowrt.node <node>``),
each with the run id, node, attempt, status and error as attributes. A failed attempt's span has
status ERROR; a retry's wait is recorded on the failed attempt (``flowrt.retry.wait``); skipped
nodes and workflow-level retries are events on the run span. Map items are attempts of their
map node's single span. While a node's function runs, its attempt span is the current span (on
the loop and in a worker thread), so spans its code starts are children of it. A failure is
recorded on the span as an ``exception`` event with its stacktrace. Only ``opentelemetry-api``
is needed (the application brings the SDK). flowrt itself never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from . import __version__
from ._models import Event
from ._workflow import Workflow


class _Run:
    __slots__ = ("attempts", "span", "tokens")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.attempts: dict[str, Span] = {}
        self.tokens: dict[str, object] = {}  # the context tokens of the current attempt spans


def _error(span: Span, event: Event) -> None:
    error = event.error
    if error is not None:
        span.set_attribute("error.type", error.type)
        span.set_attribute("flowrt.error.message", error.message)
        span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
        attributes = {"exception.type": error.type, "exception.message": error.message}
        if error.traceback:  # the semantic conventions' recorded exception
            attributes["exception.stacktrace"] = error.traceback
        span.add_event("exception", attributes)


class _Tracing:
    """The listener ``instrument`` adds: a span per run, a span per node attempt inside it."""

    def __init__(self, workflow: str, tracer: trace.Tracer) -> None:
        self.workflow = workflow
        self.tracer = tracer
        self.runs: dict[str, _Run] = {}

    def __call__(self, event: Event) -> None:
        if event.kind == "run.started":
            self.started(event)
            return
        run = self.runs.get(event.run_id)
        if run is None:
            return
        if event.kind == "node.started":
            self.attempt_started(run, event)
        elif event.kind in ("node.retrying", "node.finished"):
            self.attempt_ended(run, event)
        elif event.kind == "node.item_failed":
            self.item_failed(run, event)
        elif event.kind == "run.retrying":
            run.span.add_event("run.retrying", {"flowrt.retry.wait": event.wait or 0.0})
        elif event.kind == "run.finished":
            self.finished(self.runs.pop(event.run_id), event)

    def started(self, event: Event) -> None:
        span = self.tracer.start_span(
            f"flowrt.run {self.workflow}",
            attributes={"flowrt.workflow": self.workflow, "flowrt.run_id": event.run_id},
        )
        self.runs[event.run_id] = _Run(span)

    def attempt_started(self, run: _Run, event: Event) -> None:
        assert event.node is not None
        span = run.attempts[event.node] = self.tracer.start_span(
            f"flowrt.node {event.node}",
            context=trace.set_span_in_context(run.span),
            attributes={
                "flowrt.workflow": self.workflow,
                "flowrt.run_id": event.run_id,
                "flowrt.node": event.node,
                "flowrt.attempt": event.attempt or 0,
            },
        )
        # node.started is emitted in the node's own task, just before its function runs: the
        # attempt's span is current for that code (and its worker thread, which copies the
        # context), so spans the node's code starts are its children.
        run.tokens[event.node] = otel_context.attach(trace.set_span_in_context(span))

    def item_failed(self, run: _Run, event: Event) -> None:
        """A map item failed: an event on its map node's span."""
        span = run.attempts.get(event.node or "")
        if span is not None:
            error = event.error
            span.add_event(
                "flowrt.item.failed",
                {
                    "flowrt.item": event.item if event.item is not None else -1,
                    "exception.type": error.type if error else "",
                    "exception.message": error.message if error else "",
                },
            )

    def attempt_ended(self, run: _Run, event: Event) -> None:
        span = run.attempts.pop(event.node or "", None)
        token = run.tokens.pop(event.node or "", None)
        if token is not None and trace.get_current_span() is span:  # in the node's own task
            otel_context.detach(token)  # type: ignore[arg-type]
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

    def finished(self, run: _Run, event: Event) -> None:
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


def instrument(
    wf: Workflow, tracer_provider: trace.TracerProvider | None = None
) -> Callable[[Event], None]:
    """Emit spans for every run of ``wf``; returns the listener (``wf.remove_listener`` undoes).

    Args:
        wf: the workflow to trace.
        tracer_provider: where spans go; the global provider by default.
    """
    tracer = trace.get_tracer("flowrt", __version__, tracer_provider=tracer_provider)
    listener = _Tracing(wf.name, tracer)
    wf.add_listener(listener)
    return listener
