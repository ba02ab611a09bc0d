"""Opening a run: a run created, claimed or resumed in its store (or none), decided in one step
that returns either the ``Execution`` to carry out or the stored result of a run that ended;
then ``execute``. A run takes a ``Plan`` and an ``Environment``, never the ``Workflow`` they
came from."""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from pydantic import BaseModel

from .._errors import FlowError, RunInProgress, cancelled_from
from .._ids import new_id
from .._models import RunResult
from .._store.protocol import Claim, RunStore
from .._store.records import RunRow, RunStatus
from .children import take_link
from .durable import DurableRun, input_json
from .ended import result_of as result_of
from .execute import Execution, Listener, execute
from .limits import held_here, run_keys
from .observe import Instrument
from .planned import Plan
from .result import stored_result
from .resume import restart


def _no_definition() -> str | None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """What a run takes besides its plan: event listeners (called synchronously), the random
    source of retry jitter, instruments that observe each run (``_engine.observe``), the
    store (None: not durable), the definition's data form as JSON text for a durable run's
    row (computed only when asked), and where the workflow's code lives (``_source``)."""

    listeners: Sequence[Listener] = ()
    rng: random.Random = field(default_factory=random.Random)
    instruments: Sequence[Instrument] = ()
    store: RunStore | None = None
    definition: Callable[[], str | None] = _no_definition
    source: str | None = None


def run(
    plan: Plan,
    env: Environment,
    input: Any,
    *,
    timeout: float | None = None,
    listener: Listener | None = None,
    run_id: str | None = None,
) -> Coroutine[Any, Any, RunResult]:
    """Run ``plan`` with workflow-level retries; see ``Workflow.run``. With a store the run is
    durable, and an existing ``run_id`` is returned (ended), refused (owned) or resumed. (A
    plain function returning the run's coroutine: no frame of its own under the nodes.)

    Raises:
        ValueError: ``timeout`` is not a number of seconds.
    """
    link = take_link()  # a sub-workflow node's child: linked to its parent (when stored)
    if timeout is not None:
        timeout = seconds(timeout, "timeout")
    input = plain_input(input)
    if env.store is None:
        ex = Execution(plan, input, run_id or new_id(), timeout)  # positional: the hot path
        if plan.limits:
            return _held_here(ex, env, listener)
        return _execute(ex, env, listener)
    return _stored(plan, env, input, timeout, listener, run_id, link)


async def _stored(
    plan: Plan,
    env: Environment,
    input: Any,
    timeout: float | None,
    listener: Listener | None,
    run_id: str | None,
    link: tuple[str, str] | None,
) -> RunResult:
    """``run`` with a store: a durable run."""
    store = env.store
    assert store is not None
    row = new_row(plan, env, input, status="running", run_id=run_id, timeout=timeout, link=link)
    if run_id is not None:
        await _check_workflow(store, row.run_id, plan.name, must_exist=False)
    durable = DurableRun(store, row)
    opened = await _open(plan, durable, create=True, timeout=timeout, input=input)
    return opened if isinstance(opened, RunResult) else await _execute(opened, env, listener)


def seconds(value: Any, name: str) -> float | None:
    """``value`` as a duration in seconds (None stays None).

    Raises:
        ValueError: it is not a number of seconds at least 0 (naming ``name``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number of seconds (at least 0) or None, not {value!r}")
    if math.isinf(value):
        return None
    return float(value)


async def _held_here(ex: Execution, env: Environment, listener: Listener | None) -> RunResult:
    """Execute in-memory run ``ex`` holding its run limits' keys in this process.

    Raises:
        InputError: a key's value is missing or not a JSON scalar.
        LimitReached, Superseded: see ``RunLimit``.
    """
    result = None
    async with held_here(ex.run_id, run_keys(ex.plan.limits, ex.input)):
        result = await _execute(ex, env, listener)
    assert result is not None  # a run superseded while it ran raised Superseded instead
    return result


def _execute(
    ex: Execution, env: Environment, listener: Listener | None
) -> Coroutine[Any, Any, RunResult]:
    """``execute(ex)`` in ``env``, ``listener`` hearing its events too (a plain function: no
    coroutine of its own per run)."""
    listeners = env.listeners if listener is None else (*env.listeners, listener)
    return execute(ex, listeners=listeners, instruments=env.instruments, rng=env.rng)


def plain_input(input: Any) -> Any:
    """The run input as selectors walk it: ``{}`` for None, a pydantic model's ``model_dump()``."""
    if input is None:
        return {}
    if type(input) is dict:  # the common case, without asking pydantic's metaclass
        return input
    return input.model_dump() if isinstance(input, BaseModel) else input


def new_row(
    plan: Plan,
    env: Environment,
    input: Any,
    *,
    status: RunStatus,
    run_id: str | None,
    timeout: float | None,
    link: tuple[str, str] | None = None,
) -> RunRow:
    """A new stored run of ``plan`` (its input already plain), linked to its parent run and
    node (``link``) when a sub-workflow node creates it, with its run limits' keys.

    Raises:
        InputError: a key's value is missing or not a JSON scalar (nothing is stored).
    """
    row = RunRow(
        run_id or new_id(),
        plan.name,
        input_json(input),
        status,
        datetime.now(UTC).isoformat(),
        env.definition(),
        timeout=timeout,
        source=env.source,
        parent_run_id=None if link is None else link[0],
        parent_node=None if link is None else link[1],
    )
    if plan.limits:
        row.limits = run_keys(plan.limits, input)
    return row


async def submit(
    plan: Plan,
    env: Environment,
    input: Any,
    *,
    run_id: str | None = None,
    timeout: float | None = None,
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
    timeout = seconds(timeout, "timeout")
    link = take_link()
    row = new_row(
        plan, env, plain_input(input), status="queued", run_id=run_id, timeout=timeout, link=link
    )
    if not await env.store.enqueue(row):
        await _check_workflow(env.store, row.run_id, plan.name, must_exist=True)
    return row.run_id


async def execute_claimed(
    plan: Plan, env: Environment, claim: Claim, *, owner: str, timeout: float | None = None
) -> RunResult:
    """Execute a run a worker claimed (``store.claim_ready``, in ``env``'s store) as
    ``owner``, under its stored deadline, else ``timeout``; cancelled, it is released as
    ``running`` (reported ``interrupted``) for another worker to continue.

    Raises:
        LeaseLost: another owner took the run over; it was stopped.
    """
    assert claim.run is not None
    assert env.store is not None
    durable = DurableRun(env.store, claim.run)
    durable.adopt(claim, owner)
    durable.handover = True  # a worker that stops leaves its runs to the others
    if claim.run.timeout is not None:  # the run's own deadline wins over the worker's
        timeout = claim.run.timeout
    return await _execute(claimed(plan, durable, claim, timeout=timeout), env, None)


async def resume(
    plan: Plan,
    env: Environment,
    run_id: str,
    *,
    timeout: float | None = None,
    listener: Listener | None = None,
) -> RunResult:
    """Finish a stored run: its successful nodes keep their stored outputs, every other node
    runs; see ``Workflow.resume``."""
    timeout = seconds(timeout, "timeout")
    if env.store is None:
        raise FlowError(f"workflow {plan.name!r} has no store to resume run {run_id!r} from")
    row = await _check_workflow(env.store, run_id, plan.name, must_exist=True)
    assert row is not None
    durable = DurableRun(env.store, row)
    opened = await _open(plan, durable, create=False, timeout=timeout)
    return opened if isinstance(opened, RunResult) else await _execute(opened, env, listener)


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


async def _open(
    plan: Plan, durable: DurableRun, *, create: bool, timeout: float | None, input: Any = None
) -> Execution | RunResult:
    """Claim the run (or, with ``create``, create it with ``input``; else reopen it, a failed
    one included): the execution to carry out, or an ended run's stored result.

    Raises:
        FlowError: no such run.
        RunInProgress: a live owner holds it.
    """
    claim = await durable.open(create=create, reopen=not create)
    run_id = durable.row.run_id
    if claim.outcome == "missing":
        raise FlowError(f"no run {run_id!r} in {durable.store!r}")
    if claim.outcome == "cancelled":  # its run limit's strategy (cancel_newest)
        raise cancelled_from(run_id, claim.run.error if claim.run else None)
    if claim.outcome == "queued":  # its run limit's keys are held: it waits its turn
        return await _turn(plan, durable, timeout=timeout, reopen=not create)
    if claim.outcome == "busy":
        raise RunInProgress(run_id, claim.run.owner if claim.run else None)
    if claim.outcome == "finished":
        assert claim.run is not None
        return stored_result(claim.run)
    return claimed(plan, durable, claim, timeout=timeout, input=input)


async def _turn(
    plan: Plan, durable: DurableRun, *, timeout: float | None, reopen: bool
) -> Execution | RunResult:
    """Wait until queued run ``durable`` may take its keys (looking again every 0.25 s at
    most), then claim it: its execution; or, if a worker took it meanwhile, its result.
    Cancelled while it waits, the run is cancelled in its store (nobody is left to run it).

    Raises:
        RunCancelled: it was cancelled (superseded) while it waited.
    """
    store, run_id, pause = durable.store, durable.row.run_id, 0.005
    try:
        while True:
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.25)
            claim = await durable.open(create=False, reopen=reopen, queued=not reopen)
            if claim.outcome == "claimed":
                return claimed(plan, durable, claim, timeout=timeout)
            if claim.outcome != "queued":
                return await result_of(store, run_id, None)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True), contextlib.suppress(FlowError):
            await store.cancel(run_id, reason="its caller stopped waiting for it")
        raise


def claimed(
    plan: Plan, durable: DurableRun, claim: Claim, *, timeout: float | None, input: Any = None
) -> Execution:
    """The execution of a run this process has just created (with ``input``) or claimed: a
    queued run from its start, a workflow retry at its next attempt, any other from its stored
    records (``_resume``). Under ``timeout``, else its stored deadline: each execution has the
    deadline's whole length."""
    run_id = durable.row.run_id
    if claim.outcome == "created" or claim.run is None:
        return Execution(plan=plan, input=input, run_id=run_id, timeout=timeout, durable=durable)
    stored = claim.run
    timeout = stored.timeout if timeout is None else timeout
    where, attempts = None, 0
    if stored.status == "retrying":  # a workflow-level retry: its next attempt, from scratch
        attempts = stored.attempts
    elif stored.status != "queued":  # queued: submitted, a worker starts it
        where, attempts = restart(plan, stored), stored.attempts - 1
    return Execution(
        plan=plan,
        input=json.loads(stored.input),
        run_id=run_id,
        timeout=timeout,
        restart=where,
        attempts=attempts,
        durable=durable,
    )


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
            ex = claimed(plan, durable, claim, timeout=None)
            results.append(await _execute(ex, env, None))

    async with anyio.create_task_group() as tg:
        for row, plan, env in due:
            tg.start_soon(again, row, plan, env)
    return results
