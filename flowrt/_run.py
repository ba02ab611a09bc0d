"""Running a workflow: the workflow-level retry loop around the scheduler, the RunResult, and the
event stream."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from ._attempt import Done
from ._events import Emitter
from ._models import AttemptRecord, Event, NodeResult, RunResult, error_info
from ._scheduler import Scheduler

if TYPE_CHECKING:
    from ._graph import Workflow
    from ._plan import Plan


async def run(
    wf: Workflow, input: Any, *, timeout: float | None, sink: Callable[[Event], None] | None = None
) -> RunResult:
    """Run ``wf`` with workflow-level retries; see ``Workflow.run``."""
    plan = wf.compiled()
    if input is None:
        input = {}
    run_id = uuid.uuid4().hex
    started_at = datetime.now(UTC)
    emitter = Emitter(wf.name, run_id, sink)
    emit = emitter if emitter.active else None
    if emit is not None:
        emit("run.started")
    attempts = 0
    while True:
        attempts += 1
        scheduler = Scheduler(plan, input, emit, wf.rng, wf.max_concurrency)
        in_time = await scheduler.execute(plan.roots, timeout)
        error = _run_error(wf, scheduler, in_time, timeout)
        if error is None or attempts > wf.retry.max_retries:
            break
        wait = wf.retry.delay_seconds * wf.retry.backoff_rate ** (attempts - 1)
        if emit is not None:
            emit("run.retrying", attempt=attempts, error=error, wait=wait)
        await anyio.sleep(wait)
    status = "failure" if error else "success"
    if emit is not None:
        emit("run.finished", attempt=attempts, status=status, error=error)
    finished_at = datetime.now(UTC)
    return RunResult.model_construct(
        workflow=wf.name,
        run_id=run_id,
        status=status,
        output=_output(plan, scheduler.store),
        error=error_info(error),
        nodes={
            pn.name: _node_result(done)
            for pn, done in zip(plan.nodes, scheduler.done, strict=True)
            if done is not None
        },
        attempts=attempts,
        started_at=started_at,
        finished_at=finished_at,
        duration=(finished_at - started_at).total_seconds(),
    )


def _run_error(
    wf: Workflow, scheduler: Scheduler, in_time: bool, timeout: float | None
) -> dict[str, str] | None:
    """What failed the run: its deadline, or the first unhandled failure of a raise node."""
    if not in_time:
        return {
            "type": "TimeoutError",
            "message": f"workflow {wf.name!r} timed out after {timeout:g}s",
        }
    failure = scheduler.first_failure()
    return None if failure is None else failure.error


def _output(plan: Plan, store: dict[str, Any]) -> Any:
    if plan.output is not None:
        return {key: value(store) for key, value in plan.output.items()}
    return {plan.nodes[i].name: store[plan.nodes[i].name]["output"] for i in plan.sinks}


def _node_result(done: Done) -> NodeResult:
    return NodeResult.model_construct(
        status=done.status,
        output=done.output,
        error=error_info(done.error),
        attempts=done.attempts,
        duration=done.duration,
        reason=done.reason,
        trace=[
            AttemptRecord.model_construct(
                attempt=number,
                started=started,
                duration=duration,
                error=error_info(error),
                wait=wait,
            )
            for number, started, duration, error, wait in done.trace
        ],
    )


async def stream(wf: Workflow, input: Any, *, timeout: float | None) -> AsyncIterator[Event]:
    """Run ``wf`` in a task group, yielding its events as they happen; closing the iterator
    (leaving ``async for`` under ``aclosing``) cancels the run."""
    wf.validate()
    send, receive = anyio.create_memory_object_stream[Event](math.inf)

    async def produce() -> None:
        with send:
            await run(wf, input, timeout=timeout, sink=send.send_nowait)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        try:
            with receive:
                async for event in receive:
                    yield event
        finally:
            tg.cancel_scope.cancel()
