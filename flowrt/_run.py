"""Running a workflow: the workflow-level retry loop around the scheduler, durable runs and
resume, and the RunResult."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel

from ._attempt import Context, Done
from ._durable import Durable, load, seeded
from ._errors import FlowError
from ._events import Emitter
from ._models import Event, NodeResult, RunResult, as_error_info, construct
from ._native import alongside, checkpoint, clock
from ._scheduler import Scheduler
from ._store import RunRow, RunStore

if TYPE_CHECKING:
    from ._graph import Workflow
    from ._plan import Plan


async def run(
    wf: Workflow,
    input: Any,
    *,
    timeout: float | None,
    sink: Callable[[Event], None] | None = None,
    run_id: str | None = None,
    store: RunStore | None = None,
    resume: RunRow | None = None,
    after_attempts: int = 0,
) -> RunResult:
    """Run ``wf`` with workflow-level retries; see ``Workflow.run``. With a store the run is
    durable; ``resume`` (a stored run) keeps its successful nodes; ``after_attempts`` counts
    workflow-level attempts already made."""
    plan = wf.compiled()
    if input is None:
        input = {}
    elif isinstance(input, BaseModel):  # selectors walk plain data
        input = input.model_dump()
    started_at = datetime.now(UTC)
    sinks = [*wf.listeners, sink] if sink is not None else list(wf.listeners)
    run_clock = clock()
    emitter = Emitter(wf.name, run_id or uuid.uuid4().hex, sinks, run_clock)
    emit = emitter if emitter.active else None
    store = store if store is not None else wf.store
    durable = None
    if store is not None:
        durable = Durable(store, wf, emitter.run_id, input, started_at)
        durable.start(after_attempts + 1)
    if emit is not None:
        emit("run.started")
    seeds = seeded(plan, resume) if resume is not None else None
    try:
        async with nullcontext() if durable is None else alongside(durable.recorder.writer):
            ctx = Context(emit, wf.rng, run_clock, checkpoint())
            scheduler, attempts, error = await _attempts(
                wf, plan, input, ctx, timeout, durable, seeds, after_attempts
            )
    except BaseException:
        if emit is not None:
            emit("run.finished", status="cancelled")
        if durable is not None:
            await durable.cancelled()
        raise
    result = _result(wf, plan, scheduler, emitter.run_id, error, attempts, started_at)
    if durable is not None:
        await durable.finish(result)
    if emit is not None:
        emit("run.finished", attempt=attempts, status=result.status, error=error, result=result)
    return result


def _result(
    wf: Workflow,
    plan: Plan,
    scheduler: Scheduler,
    run_id: str,
    error: dict[str, str] | None,
    attempts: int,
    started_at: datetime,
) -> RunResult:
    finished_at = datetime.now(UTC)
    nodes = {
        pn.name: _node_result(done)
        for pn, done in zip(plan.nodes, scheduler.done, strict=True)
        if done is not None
    }
    return construct(
        RunResult,
        {
            "workflow": wf.name,
            "run_id": run_id,
            "status": "failure" if error else "success",
            "output": _output(plan, scheduler.store),
            "error": as_error_info(error),
            "nodes": nodes,
            "attempts": attempts,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration": (finished_at - started_at).total_seconds(),
        },
    )


async def _attempts(
    wf: Workflow,
    plan: Plan,
    input: Any,
    ctx: Context,
    timeout: float | None,
    durable: Durable | None,
    seeds: dict[int, Done] | None,
    attempts: int,
) -> tuple[Scheduler, int, dict[str, str] | None]:
    """Run the plan, again after a failure while workflow-level retries remain."""
    emit = ctx.emit
    recorder = durable.recorder if durable is not None else None
    while True:
        attempts += 1
        scheduler = Scheduler(plan, input, ctx, wf.max_concurrency, recorder, seeds)
        seeds = None  # a retry runs again from the first node
        in_time = await scheduler.execute(timeout)
        error = _run_error(wf, scheduler, in_time, timeout)
        if error is None or attempts > wf.retry.max_retries:
            return scheduler, attempts, error
        wait = wf.retry.delay_seconds * wf.retry.backoff_rate ** (attempts - 1)
        if emit is not None:
            emit("run.retrying", attempt=attempts, error=error, wait=wait)
        if durable is not None:
            await durable.retrying(attempts, error, wait)
        await anyio.sleep(wait)
        if durable is not None:
            durable.start(attempts + 1)


async def resume(
    wf: Workflow, run_id: str, *, store: RunStore | None, timeout: float | None
) -> RunResult:
    """Finish a stored run: its successful nodes keep their stored outputs, every other node
    runs; see ``Workflow.resume``."""
    store = store if store is not None else wf.store
    if store is None:
        raise FlowError(f"workflow {wf.name!r} has no store to resume run {run_id!r} from")
    row = await load(store, run_id, wf.name)
    input = json.loads(row.input)
    return await run(
        wf, input, timeout=timeout, run_id=run_id, store=store, resume=row,
        after_attempts=row.attempts - 1,
    )  # fmt: skip


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
    error = done["error"]  # the record's keys and slots, read directly: this runs once per node
    return construct(
        NodeResult,
        {
            "status": done["status"],
            "output": done["output"],
            "error": None if error is None else as_error_info(error),
            "attempts": done.attempts,
            "duration": done.duration,
            "reason": done.reason,
            "trace": done.trace,  # the record's own list: runs are not copied
        },
    )
