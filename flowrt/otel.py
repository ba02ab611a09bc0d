"""OpenTelemetry spans for flowrt runs (``pip install flowrt[otel]``).

``instrument(wf)`` adds an instrument to the workflow that opens one span per run
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

import math
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from . import __version__
from ._engine.observe import Instrument, Observer, Wait
from ._models import RunResult
from ._workflow import Workflow


def _waiting(wait: Wait) -> dict[str, str | float]:
    """A wait or a sleep node's attributes: what it waits for (``flowrt.wait.kind``:
    ``signal`` or ``sleep``; ``flowrt.signal``) and the seconds until its due time
    (``flowrt.wait.seconds``, absent without a timeout)."""
    found: dict[str, str | float] = {"flowrt.wait.kind": wait.kind}
    if wait.signal is not None:
        found["flowrt.signal"] = wait.signal
    if math.isfinite(wait.seconds):
        found["flowrt.wait.seconds"] = wait.seconds
    return found


def _error(span: Span, error: Mapping[str, Any] | None) -> None:
    """Mark ``span`` failed with ``error`` (``{type, message, traceback?}``), recorded as the
    semantic conventions' ``exception`` event."""
    if error is not None:
        kind, message = error["type"], error["message"]
        span.set_attribute("error.type", kind)
        span.set_attribute("flowrt.error.message", message)
        span.set_status(Status(StatusCode.ERROR, f"{kind}: {message}"))
        attributes = {"exception.type": kind, "exception.message": message}
        if error.get("traceback"):
            attributes["exception.stacktrace"] = error["traceback"]
        span.add_event("exception", attributes)


class _Tracing(Instrument):
    """What ``instrument`` adds: each run's observer makes a span for the run and one for each
    node attempt inside it."""

    __slots__ = ("tracer", "workflow")

    def __init__(self, workflow: str, tracer: trace.Tracer) -> None:
        self.workflow = workflow
        self.tracer = tracer

    def observe(self, run_id: str, workflow: str) -> Observer:
        return _RunSpans(self.tracer, workflow, run_id)


class _RunSpans(Observer):
    """One run's spans: the run's (opened when it starts), and each running attempt's."""

    __slots__ = ("attempts", "run_id", "span", "tokens", "tracer", "workflow")

    def __init__(self, tracer: trace.Tracer, workflow: str, run_id: str) -> None:
        self.tracer, self.workflow, self.run_id = tracer, workflow, run_id
        self.span: Span | None = None
        self.attempts: dict[str, Span] = {}
        self.tokens: dict[str, object] = {}  # the context tokens of the current attempt spans

    def run_started(self, attempt: int) -> None:
        if self.span is None:
            attributes = {"flowrt.workflow": self.workflow, "flowrt.run_id": self.run_id}
            name = f"flowrt.run {self.workflow}"
            self.span = self.tracer.start_span(name, attributes=attributes)

    def node_started(self, node: str, attempt: int) -> None:
        assert self.span is not None
        span = self.attempts[node] = self.tracer.start_span(
            f"flowrt.node {node}",
            context=trace.set_span_in_context(self.span),
            attributes={
                "flowrt.workflow": self.workflow,
                "flowrt.run_id": self.run_id,
                "flowrt.node": node,
                "flowrt.attempt": attempt,
            },
        )
        # node_started is called in the node's own task, just before its function runs: the
        # attempt's span is current for that code (and its worker thread, which copies the
        # context), so spans the node's code starts are its children.
        self.tokens[node] = otel_context.attach(trace.set_span_in_context(span))

    def node_waiting(self, node: str, state: Any, wait: Wait) -> None:
        if wait.kind == "throttled":  # before its attempt starts: an event on the run's span
            if self.span is not None:
                limit = {"flowrt.rate_limit": wait.rate_limit or "", "flowrt.node": node}
                self.span.add_event(
                    "flowrt.throttled", {**limit, "flowrt.wait.seconds": wait.seconds}
                )
            return
        if wait.kind != "retry":  # a wait or sleep node: an event on its (open) span
            span = self.attempts.get(node)
            if span is not None:
                for key, value in _waiting(wait).items():
                    span.set_attribute(key, value)
                span.add_event("flowrt.waiting", _waiting(wait))
            return
        span = self._ended(node)
        if span is not None:
            span.set_attribute("flowrt.status", "failure")
            span.set_attribute("flowrt.retry.wait", wait.seconds)
            _error(span, wait.error)
            span.end()

    def node_finished(self, node: str, state: Any) -> None:
        span = self._ended(node)
        if span is None:  # a node skipped without any attempt
            assert self.span is not None
            self.span.add_event("node.skipped", {"flowrt.node": node})
            return
        span.set_attribute("flowrt.status", state.status or "failure")
        _error(span, state.error)
        if state.error is None:
            span.set_status(Status(StatusCode.OK))
        span.end()

    def _ended(self, node: str) -> Span | None:
        """The span of ``node``'s attempt, no longer current in the node's task."""
        span = self.attempts.pop(node, None)
        token = self.tokens.pop(node, None)
        if token is not None and trace.get_current_span() is span:  # in the node's own task
            otel_context.detach(token)  # type: ignore[arg-type]
        return span

    def item_failed(self, node: str, item: int, error: Mapping[str, str]) -> None:
        """A map item failed: an event on its map node's span."""
        span = self.attempts.get(node)
        if span is not None:
            span.add_event(
                "flowrt.item.failed",
                {
                    "flowrt.item": item,
                    "exception.type": error["type"],
                    "exception.message": error["message"],
                },
            )

    async def run_retrying(self, attempt: int, error: Mapping[str, str], wait: float) -> None:
        if self.span is not None:
            self.span.add_event("run.retrying", {"flowrt.retry.wait": wait})

    async def run_finished(self, result: RunResult) -> None:
        error = None if result.error is None else result.error.model_dump()
        self._end(result.status, result.attempts, error)

    async def run_cancelled(self, parked: bool) -> None:
        self._end("waiting" if parked else "cancelled", None, None)

    def _end(self, status: str, attempts: int | None, error: Mapping[str, Any] | None) -> None:
        """End the run's span (and any attempt's still open: it was cancelled)."""
        for span in self.attempts.values():
            span.set_status(Status(StatusCode.ERROR, "cancelled"))
            span.end()
        self.attempts.clear()
        run = self.span
        if run is None:
            return
        run.set_attribute("flowrt.status", status)
        if attempts is not None:
            run.set_attribute("flowrt.attempts", attempts)
        _error(run, error)
        if status == "cancelled":
            run.set_status(Status(StatusCode.ERROR, "cancelled"))
        elif error is None:
            run.set_status(Status(StatusCode.OK))
        run.end()


def instrument(wf: Workflow, tracer_provider: trace.TracerProvider | None = None) -> Instrument:
    """Emit spans for every run of ``wf``; returns the instrument (``wf.remove_listener``
    undoes).

    Args:
        wf: the workflow to trace.
        tracer_provider: where spans go; the global provider by default.
    """
    tracer = trace.get_tracer("flowrt", __version__, tracer_provider=tracer_provider)
    return wf.add_listener(_Tracing(wf.name, tracer))
