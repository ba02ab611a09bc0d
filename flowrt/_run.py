"""Running a workflow: the workflow-level retry loop around the scheduler, durable runs (claimed
or created in the store first; resumed from their stored records), and the RunResult."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel

from ._attempt import Context, Done
from ._durable import DurableRun, input_json, stored_result
from ._errors import DefinitionError, FlowError, LeaseLost, RunInProgress
from ._events import Emitter
from ._models import Event, NodeResult, RunResult, as_error_info, construct
from ._native import checkpoint, clock
from ._records import RunRow
from ._resume import Restart, restart
from ._scheduler import Scheduler
from ._store import Claim, RunStore

if TYPE_CHECKING:
    from ._graph import Workflow
    from ._plan import Plan

Sink = Callable[[Event], None]


async def run(
    wf: Workflow,
    input: Any,
    *,
    timeout: float | None,
    sink: Sink | None = None,
    run_id: str | None = None,
    store: RunStore | None = None,
) -> RunResult:
    """Run ``wf`` with workflow-level retries; see ``Workflow.run``. With a store the run is
    durable, and an existing ``run_id`` is returned (ended), refused (owned) or resumed."""
    plan = wf.compiled()
    if input is None:
        input = {}
    elif isinstance(input, BaseModel):  # selectors walk plain data
        input = input.model_dump()
    store = store if store is not None else wf.store
    if store is None:
        return await _execute(wf, plan, input, timeout, sink, run_id or uuid.uuid4().hex)
    new = run_id is None
    row = RunRow(
        run_id or uuid.uuid4().hex, wf.name, input_json(input), "running",
        datetime.now(UTC).isoformat(), definition_json(wf),
    )  # fmt: skip
    if not new:
        await _check_workflow(store, row.run_id, wf.name, must_exist=False)
    return await _durable(wf, plan, DurableRun(store, row), False, timeout, sink, input)


async def resume(
    wf: Workflow, run_id: str, *, store: RunStore | None, timeout: float | None
) -> RunResult:
    """Finish a stored run: its successful nodes keep their stored outputs, every other node
    runs; see ``Workflow.resume``."""
    store = store if store is not None else wf.store
    if store is None:
        raise FlowError(f"workflow {wf.name!r} has no store to resume run {run_id!r} from")
    row = await _check_workflow(store, run_id, wf.name, must_exist=True)
    assert row is not None
    return await _durable(wf, wf.compiled(), DurableRun(store, row), True, timeout, None)


async def _check_workflow(
    store: RunStore, run_id: str, workflow: str, *, must_exist: bool
) -> RunRow | None:
    """The stored run ``run_id``, checked to be one of ``workflow``.

    Raises:
        FlowError: it belongs to another workflow; or it is missing and ``must_exist``.
    """
    run = await store.load_run(run_id)
    if run is None and must_exist:
        raise FlowError(f"no run {run_id!r} in {store!r}")
    if run is not None and run.workflow != workflow:
        raise FlowError(f"run {run_id!r} belongs to workflow {run.workflow!r}, not {workflow!r}")
    return run


async def _durable(
    wf: Workflow,
    plan: Plan,
    durable: DurableRun,
    reopen: bool,
    timeout: float | None,
    sink: Sink | None,
    input: Any = None,
) -> RunResult:
    """Claim (or create) the run, then execute it: from scratch (with ``input``, as given, for
    a new run), or from its stored records."""
    claim = await durable.open(create=not reopen, reopen=reopen)
    run_id = durable.row.run_id
    if claim.outcome == "missing":
        raise FlowError(f"no run {run_id!r} in {durable.store!r}")
    if claim.outcome == "busy":
        raise RunInProgress(run_id, claim.run.owner if claim.run else None)
    if claim.outcome == "finished":
        assert claim.run is not None
        return stored_result(claim.run)
    return await _claimed(wf, plan, durable, claim, timeout, sink, input)


async def _claimed(
    wf: Workflow,
    plan: Plan,
    durable: DurableRun,
    claim: Claim,
    timeout: float | None,
    sink: Sink | None,
    input: Any = None,
) -> RunResult:
    """Execute a run this process has just created or claimed."""
    run_id = durable.row.run_id
    if claim.outcome == "created" or claim.run is None:
        return await _execute(wf, plan, input, timeout, sink, run_id, durable)
    stored = claim.run
    input = json.loads(stored.input)
    if stored.status == "retrying":  # a workflow-level retry: its next attempt, from scratch
        return await _execute(
            wf, plan, input, timeout, sink, run_id, durable, None, stored.attempts
        )
    where = restart(plan, stored)
    after = stored.attempts - 1
    return await _execute(wf, plan, input, timeout, sink, run_id, durable, where, after)


async def _execute(
    wf: Workflow,
    plan: Plan,
    input: Any,
    timeout: float | None,
    sink: Sink | None,
    run_id: str,
    durable: DurableRun | None = None,
    where: Restart | None = None,
    after_attempts: int = 0,
) -> RunResult:
    """Execute the run (workflow-level attempts after ``after_attempts``), from ``where``
    when resumed; a durable run's writer runs beside it."""
    started_at = datetime.now(UTC)
    sinks = [*wf.listeners, sink] if sink is not None else list(wf.listeners)
    run_clock = clock()
    emitter = Emitter(wf.name, run_id, sinks, run_clock)
    emit = emitter if emitter.active else None
    if durable is not None:
        durable.start(after_attempts + 1)
    if emit is not None:
        emit("run.started")
    ctx = Context(emit, wf.rng, run_clock, checkpoint(), run_id, wf.name, durable)
    body = functools.partial(_attempts, wf, plan, input, ctx, timeout, where, after_attempts)
    try:
        outcome = await (body() if durable is None else _beside_writer(durable, body))
    except BaseException:
        if emit is not None:
            emit("run.finished", status="cancelled")
        if durable is not None:
            await durable.cancelled()
        raise
    scheduler, attempts, error = outcome
    result = _result(wf, plan, scheduler, run_id, error, attempts, started_at)
    if durable is not None:
        await durable.finish(result)
    if emit is not None:
        emit("run.finished", attempt=attempts, status=result.status, error=error, result=result)
    return result


Outcome = tuple[Scheduler, int, dict[str, str] | None]


async def _beside_writer(
    durable: DurableRun, attempts: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """Await ``attempts()`` with the durable run's writer task beside it, in an anyio task
    group: its cancellation waits for a write in progress (a native cancel would abandon it).

    Raises:
        LeaseLost: another owner took the run over; the run was stopped.
    """
    outcome: Outcome | None = None
    try:
        with durable.scope:
            async with anyio.create_task_group() as group:
                group.start_soon(durable.writer)
                outcome = await attempts()
                group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:  # one error: raise it as itself
        if len(group_error.exceptions) == 1:
            raise group_error.exceptions[0] from None
        raise
    if durable.lost or outcome is None:
        raise LeaseLost(durable.row.run_id)
    return outcome


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
    where: Restart | None,
    attempts: int,
) -> Outcome:
    """Run the plan, again after a failure while workflow-level retries remain."""
    emit = ctx.emit
    durable = ctx.durable
    while True:
        attempts += 1
        scheduler = Scheduler(plan, input, ctx, wf.max_concurrency, where)
        where = None  # a retry runs again from the first node
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


def definition_json(wf: Workflow) -> str | None:
    """The workflow as JSON data, when it has a data form (for ``resume`` from the CLI);
    computed once per plan."""
    cache = wf.compiled().cache
    if "definition" not in cache:
        try:
            cache["definition"] = json.dumps(wf.to_dict())
        except (DefinitionError, TypeError, ValueError):
            cache["definition"] = None
    return cache["definition"]  # type: ignore[no-any-return]


async def resume_due(
    store: RunStore, workflows: Iterable[Workflow] = (), *, now: float | None = None
) -> list[RunResult]:
    """Continue, concurrently, every run whose retry is due at ``now`` (wall clock; default
    the store's clock) and that no live process owns: a workflow-level retry runs again from
    its first node with its stored input and the retries it has left; a parked node wait
    continues at the node's next attempt. Return their results; a run claimed meanwhile by
    another process is left to it. A workflow is taken from ``workflows`` by name, else
    rebuilt from its stored definition.

    Raises:
        FlowError: a due run's workflow is neither given nor stored as data.
    """
    from ._graph import Workflow

    by_name = {wf.name: wf for wf in workflows}
    plans: list[tuple[Workflow, RunRow]] = []
    for row in await store.due_runs(now):
        wf = by_name.get(row.workflow)
        if wf is None and row.definition is None:
            raise FlowError(f"run {row.run_id!r}: workflow {row.workflow!r} was not given")
        plans.append((wf or Workflow.from_dict(json.loads(row.definition or "{}")), row))
    results: list[RunResult] = []

    async def again(wf: Workflow, row: RunRow) -> None:
        durable = DurableRun(store, row)
        claim = await durable.open(create=False, reopen=False)
        if claim.outcome == "claimed":  # else another process took it first (or finished it)
            results.append(await _claimed(wf, wf.compiled(), durable, claim, None, None))

    async with anyio.create_task_group() as tg:
        for wf, row in plans:
            tg.start_soon(again, wf, row)
    return results
