"""Running a plan: the workflow-level retry loop around the scheduler, durable runs (claimed or
created in the store first; resumed from their stored records), and the RunResult. A run takes
a ``Plan`` and an ``Environment``, never the ``Workflow`` they came from."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from pydantic import BaseModel

from .._errors import FlowError, LeaseLost, RunCancelled, RunInProgress, RunNotFound, RunParked
from .._ids import new_id
from .._models import Event, RunResult
from .._store.protocol import Claim, RunStore
from .._store.records import RunRow, RunStatus, deadline_error
from .attempt import Context
from .backoff import wait_before_rerun
from .durable import DurableRun, input_json, stored_result
from .events import Emitter, emitter_for
from .invoke import still_running
from .native import loop_tools
from .plan import Plan
from .result import run_result
from .resume import Restart, restart
from .scheduler import Scheduler

Listener = Callable[[Event], None]


def _no_definition() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Environment:
    """What a run takes besides its plan: event listeners (called synchronously), the random
    source of retry jitter, the store (None: not durable), and the definition's data form as
    JSON text for a durable run's row (computed only when asked), and where the workflow's
    code lives (``_source``)."""

    listeners: Sequence[Listener] = ()
    rng: random.Random = field(default_factory=random.Random)
    store: RunStore | None = None
    definition: Callable[[], str | None] = _no_definition
    source: str | None = None


async def run(
    plan: Plan,
    env: Environment,
    input: Any,
    *,
    timeout: float | None,
    sink: Listener | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run ``plan`` with workflow-level retries; see ``Workflow.run``. With a store the run is
    durable, and an existing ``run_id`` is returned (ended), refused (owned) or resumed."""
    input = plain_input(input)
    store = env.store
    if store is None:
        return await _execute(plan, env, input, timeout, sink, run_id or new_id())
    row = new_row(plan, env, input, "running", run_id, timeout)
    if run_id is not None:
        await _check_workflow(store, row.run_id, plan.name, must_exist=False)
    return await _durable(plan, env, DurableRun(store, row), False, timeout, sink, input)


def plain_input(input: Any) -> Any:
    """The run input as selectors walk it: ``{}`` for None, a pydantic model's ``model_dump()``."""
    if input is None:
        return {}
    return input.model_dump() if isinstance(input, BaseModel) else input


def new_row(
    plan: Plan,
    env: Environment,
    input: Any,
    status: RunStatus,
    run_id: str | None,
    timeout: float | None,
) -> RunRow:
    """A new stored run of ``plan`` (its input already plain)."""
    return RunRow(
        run_id or new_id(),
        plan.name,
        input_json(input),
        status,
        datetime.now(UTC).isoformat(),
        env.definition(),
        timeout=timeout,
        source=env.source,
    )


async def submit(
    plan: Plan, env: Environment, input: Any, run_id: str | None, timeout: float | None = None
) -> str:
    """Enqueue a run of ``plan`` in ``env``'s store for a worker; return its id. A run id that
    exists already is returned as it is (an idempotency key), if it is of this workflow. The
    run's deadline (``timeout``, seconds) is stored with it.

    Raises:
        FlowError: no store, or the id belongs to a run of another workflow.
        InputError: the input is not strict JSON.
    """
    if env.store is None:
        raise FlowError(f"workflow {plan.name!r} has no store to submit a run to")
    row = new_row(plan, env, plain_input(input), "queued", run_id, timeout)
    if not await env.store.enqueue(row):
        await _check_workflow(env.store, row.run_id, plan.name, must_exist=True)
    return row.run_id


async def result_of(store: RunStore, run_id: str, timeout: float | None) -> RunResult:
    """Wait until stored run ``run_id`` has ended (``success`` or ``failure``); its result.

    Raises:
        RunNotFound: no such run.
        RunCancelled: it was cancelled.
        TimeoutError: it had not ended after ``timeout`` seconds.
    """
    pause = 0.005
    with anyio.fail_after(timeout):
        while True:
            run = await store.load_run(run_id)
            if run is None:
                raise RunNotFound(run_id, store)
            if run.status in ("success", "failure"):
                return stored_result(run)
            if run.status == "cancelled":
                error = run.error or {}
                reason = error.get("message", "cancelled")
                raise RunCancelled(run_id, reason, error.get("by"))
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.25)


async def execute_claimed(
    plan: Plan,
    env: Environment,
    claim: Claim,
    owner: str,
    store: RunStore,
    timeout: float | None = None,
) -> RunResult:
    """Execute a run a worker claimed (``store.claim_ready``) as ``owner``, under its stored
    deadline, else ``timeout``; cancelled, it is released as ``running`` (reported
    ``interrupted``) for another worker to continue.

    Raises:
        LeaseLost: another owner took the run over; it was stopped.
    """
    assert claim.run is not None
    durable = DurableRun(store, claim.run)
    durable.adopt(claim, owner)
    durable.handover = True  # a worker that stops leaves its runs to the others
    if claim.run.timeout is not None:
        timeout = claim.run.timeout
    return await _claimed(plan, env, durable, claim, timeout, None)


async def resume(plan: Plan, env: Environment, run_id: str, *, timeout: float | None) -> RunResult:
    """Finish a stored run: its successful nodes keep their stored outputs, every other node
    runs; see ``Workflow.resume``."""
    if env.store is None:
        raise FlowError(f"workflow {plan.name!r} has no store to resume run {run_id!r} from")
    row = await _check_workflow(env.store, run_id, plan.name, must_exist=True)
    assert row is not None
    return await _durable(plan, env, DurableRun(env.store, row), True, timeout, None)


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
    plan: Plan,
    env: Environment,
    durable: DurableRun,
    reopen: bool,
    timeout: float | None,
    sink: Listener | None,
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
    return await _claimed(plan, env, durable, claim, timeout, sink, input)


async def _claimed(
    plan: Plan,
    env: Environment,
    durable: DurableRun,
    claim: Claim,
    timeout: float | None,
    sink: Listener | None,
    input: Any = None,
) -> RunResult:
    """Execute a run this process has just created or claimed, under ``timeout``, else its
    stored deadline: each execution has the deadline's whole length."""
    run_id = durable.row.run_id
    if claim.outcome == "created" or claim.run is None:
        return await _execute(plan, env, input, timeout, sink, run_id, durable)
    stored = claim.run
    if timeout is None:
        timeout = stored.timeout
    input = json.loads(stored.input)
    if stored.status == "queued":  # submitted: a worker starts it
        return await _execute(plan, env, input, timeout, sink, run_id, durable)
    if stored.status == "retrying":  # a workflow-level retry: its next attempt, from scratch
        after = stored.attempts
        return await _execute(plan, env, input, timeout, sink, run_id, durable, None, after)
    where = restart(plan, stored)
    after = stored.attempts - 1
    return await _execute(plan, env, input, timeout, sink, run_id, durable, where, after)


async def _execute(
    plan: Plan,
    env: Environment,
    input: Any,
    timeout: float | None,
    sink: Listener | None,
    run_id: str,
    durable: DurableRun | None = None,
    where: Restart | None = None,
    after_attempts: int = 0,
) -> RunResult:
    """Execute the run (workflow-level attempts after ``after_attempts``), from ``where``
    when resumed; a durable run's writer runs beside it."""
    started_at = datetime.now(UTC)
    listeners = [*env.listeners, sink] if sink is not None else list(env.listeners)
    run_clock, checkpoint = loop_tools()
    emit = emitter_for(plan.name, run_id, listeners, run_clock)
    if durable is not None:
        durable.start(after_attempts + 1)
    if emit is not None:
        emit("run.started")
    ctx = Context(emit, env.rng, run_clock, checkpoint, run_id, plan.name, durable)
    body = functools.partial(_attempts, plan, input, ctx, timeout, where, after_attempts, durable)
    try:
        outcome = await (body() if durable is None else _beside_writer(durable, body))
    except BaseException as stopped:
        if emit is not None and not isinstance(stopped, RunParked):
            emit("run.finished", status="cancelled", abandoned=still_running(run_id) or None)
        if durable is not None:
            await durable.cancelled()  # parked: it stays "waiting", due, owned by nobody
        raise
    scheduler, attempts, error = outcome
    result = run_result(plan, scheduler, run_id, error, attempts, started_at)
    if durable is not None:
        await durable.finish(result)
    if emit is not None:
        _finished(emit, result)
    return result


def _finished(emit: Emitter, result: RunResult) -> None:
    info = result.error
    error = None if info is None else {"type": info.type, "message": info.message}
    emit(
        "run.finished", attempt=result.attempts, status=result.status, error=error, result=result,
        abandoned=still_running(result.run_id) or None,
    )  # fmt: skip


Outcome = tuple[Scheduler, int, dict[str, str] | None]


async def _beside_writer(
    durable: DurableRun, attempts: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """Await ``attempts()`` with the durable run's writer task beside it, in an anyio task
    group: its cancellation waits for a write in progress (a native cancel would abandon it).

    Raises:
        LeaseLost: another owner took the run over; the run was stopped.
        RunCancelled: a cancel request stopped it.
        RunParked: a worker's run parked in a long retry wait.
    """
    outcome: Outcome | None = None
    try:
        with durable.scope:
            async with anyio.create_task_group() as group:
                group.start_soon(durable.writer)
                try:
                    outcome = await attempts()
                finally:
                    durable.stop()
    except BaseExceptionGroup as group_error:  # one error: raise it as itself
        if len(group_error.exceptions) == 1:
            raise group_error.exceptions[0] from None
        raise
    if outcome is not None and not durable.lost:
        return outcome  # it ended: a cancel request that came too late changes nothing
    cancelled = durable.stopped()
    if cancelled is not None:
        raise cancelled
    if durable.parking:
        raise RunParked(durable.row.run_id)
    if durable.lost or outcome is None:
        raise LeaseLost(durable.row.run_id)
    return outcome


async def _attempts(
    plan: Plan,
    input: Any,
    ctx: Context,
    timeout: float | None,
    where: Restart | None,
    attempts: int,
    durable: DurableRun | None,
) -> Outcome:
    """Run the plan, again after a failure while workflow-level retries remain."""
    emit = ctx.emit
    while True:
        attempts += 1
        scheduler = Scheduler(plan, input, ctx, plan.max_concurrency, where)
        where = None  # a retry runs again from the first node
        in_time = await scheduler.execute(timeout)
        error = _run_error(plan, scheduler, in_time, timeout)
        if error is None or attempts > plan.retry.max_retries:
            return scheduler, attempts, error
        wait = wait_before_rerun(plan.retry, attempts - 1)
        if emit is not None:
            emit("run.retrying", attempt=attempts, error=error, wait=wait)
        if durable is not None:
            await durable.retrying(attempts, error, wait)
        await anyio.sleep(wait)
        if durable is not None:
            durable.start(attempts + 1)


def _run_error(
    plan: Plan, scheduler: Scheduler, in_time: bool, timeout: float | None
) -> dict[str, str] | None:
    """What failed the run: its deadline, or the first unhandled failure of a raise node."""
    if not in_time:
        return deadline_error(plan.name, timeout or 0.0)
    failure = scheduler.first_failure()
    return None if failure is None else failure.error


async def resume_due(
    store: RunStore,
    choose: Callable[[RunRow], tuple[Plan, Environment]],
    *,
    now: float | None = None,
) -> list[RunResult]:
    """Continue, concurrently, every run whose retry is due at ``now`` and that no live process
    owns; see ``flowrt.resume_due``. ``choose`` gives each due run's plan and environment (it
    may raise, before anything runs). A run another process claims first is left to it."""
    due = [(row, *choose(row)) for row in await store.due_runs(now)]
    results: list[RunResult] = []

    async def again(row: RunRow, plan: Plan, env: Environment) -> None:
        durable = DurableRun(store, row)
        claim = await durable.open(create=False, reopen=False, due=True)
        if claim.outcome == "claimed":  # else another took it, finished or cancelled it
            results.append(await _claimed(plan, env, durable, claim, None, None))

    async with anyio.create_task_group() as tg:
        for row, plan, env in due:
            tg.start_soon(again, row, plan, env)
    return results
