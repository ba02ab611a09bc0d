"""One execution of a run, as its frozen ``Execution`` value describes it: the workflow-level
retry loop around the scheduler, the durable writer beside it, the observers told of the run's
start, retries and end, and the ``RunResult``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from .._errors import LeaseLost, RunParked
from .._models import Event, RunResult
from .._store.records import deadline_error
from .backoff import wait_before_rerun
from .children import parented
from .events import emitter_for
from .native import loop_tools
from .observe import Instrument, Observer
from .rates import StoreLimiter
from .result import run_result
from .scheduler import Scheduler
from .signals import Mailbox, mailbox
from .states import RunState
from .stored_signals import StoredMailbox

if TYPE_CHECKING:
    import random

    from .durable import DurableRun
    from .planned import Plan
    from .resume import Restart

Listener = Callable[[Event], None]
Outcome = tuple[Scheduler, int, dict[str, str] | None]


class Execution(NamedTuple):
    """What one execution of a run is, decided before any node runs: the plan, the run input
    (plain), the run id, the deadline of each workflow-level attempt (seconds; None: none), where
    a resumed run restarts (None: from its first node), the workflow-level attempts made before
    it, and its durable run (None: not durable). A named tuple: immutable, and made once per
    run for the price of a tuple."""

    plan: Plan
    input: Any
    run_id: str
    timeout: float | None = None
    restart: Restart | None = None
    attempts: int = 0
    durable: DurableRun | None = None


async def execute(
    ex: Execution,
    *,
    listeners: Sequence[Listener] = (),
    instruments: Sequence[Instrument] = (),
    rng: random.Random,
) -> RunResult:
    """Execute ``ex``: its events go to ``listeners`` (and logging), its life to the durable
    writer and to the observers ``instruments`` make (told ``run_cancelled`` if it is).

    Raises:
        LeaseLost: another owner took the run over; it was stopped.
        RunCancelled: a cancel request stopped it.
        RunParked: a worker's run was set aside until a wait is due.
    """
    started_at = time.time()
    state = _state(ex, listeners, instruments, rng)
    for observer in state.observers:
        observer.run_started(ex.attempts + 1)
    children: dict[str, str] | None = None
    if ex.plan.children:
        (scheduler, attempts, error), children = await _as_parent(ex, state)
    elif _alone(ex, state):  # the scheduler's coroutine awaited right here: a frame fewer
        scheduler = Scheduler(ex.plan, ex.input, state, ex.plan.max_concurrency, ex.restart)
        in_time = await scheduler.execute(ex.timeout)
        attempts, error = ex.attempts + 1, _run_error(ex.plan, scheduler, in_time, ex.timeout)
    else:
        scheduler, attempts, error = await _carried_out(ex, state)
    result = run_result(
        ex.plan,
        scheduler,
        run_id=ex.run_id,
        error=error,
        attempts=attempts,
        started_at=started_at,
        children=children,
    )
    for observer in state.observers:
        await observer.run_finished(result)
    return result


async def _as_parent(ex: Execution, state: RunState) -> tuple[Outcome, dict[str, str]]:
    """``_carried_out`` for a run with sub-workflow nodes, whose children see it as their
    parent; with the run ids they were given, by node."""
    with parented(ex.durable, state) as parent:
        outcome = await _carried_out(ex, state)
    return outcome, parent.children


def _alone(ex: Execution, state: RunState) -> bool:
    """Whether ``ex`` is one attempt (no workflow-level retry) with nobody to tell of it (not
    durable, no observer) and no mailbox: its scheduler is all there is to await."""
    plan = ex.plan
    return (
        ex.durable is None
        and not state.observers
        and plan.signals is None
        and not plan.retry.max_retries
    )


def _carried_out(ex: Execution, state: RunState) -> Coroutine[Any, Any, Outcome]:
    """Run the attempts (beside the durable writer for a durable run); stopped, the observers
    hear ``run_cancelled`` and the stop goes on. (Plain functions down to the scheduler's
    coroutine where they can be: each frame saved is one fewer under every node's await.)"""
    if ex.durable is None and not state.observers:
        return _attempts(ex, state)  # nobody to tell of a stop
    return _told(ex, state)


async def _told(ex: Execution, state: RunState) -> Outcome:
    """``_carried_out`` for a durable or an observed run."""
    try:
        if ex.durable is None:
            return await _attempts(ex, state)
        return await _beside_writer(ex.durable, state, lambda: _attempts(ex, state))
    except BaseException as stopped:
        parked = isinstance(stopped, RunParked)
        for observer in state.observers:
            await observer.run_cancelled(parked)  # a durable run: stored, shielded
        raise


def _state(
    ex: Execution,
    listeners: Sequence[Listener],
    instruments: Sequence[Instrument],
    rng: random.Random,
) -> RunState:
    """The run's shared state: its observers (the durable writer first, the emitter when
    someone listens, then the others) and, for a worker's durable run, its parking."""
    clock, checkpoint = loop_tools()
    emitter = emitter_for(ex.plan.name, ex.run_id, listeners, clock)
    observers: tuple[Observer, ...] = ()  # the common case: nobody to tell
    if ex.durable is not None or emitter is not None or instruments:
        observers = _observers(ex, emitter, instruments)
    state = RunState(
        clock,
        checkpoint,
        observers=observers,
        rng=rng,
        run_id=ex.run_id,
        workflow=ex.plan.name,
    )
    durable = ex.durable
    if durable is not None:
        state.limiter = StoreLimiter(durable.store)  # permits shared by all the store's users
        state.scope = durable.scope  # the writer stops the run (lease lost, cancel request)
        if durable.handover:  # a worker's run is parked when every running node waits long
            state.park_after = durable.store.park_after_seconds
    return state


def _observers(
    ex: Execution, emitter: Observer | None, instruments: Sequence[Instrument]
) -> tuple[Observer, ...]:
    """The run's observers: the durable writer first, the emitter, then the instruments'."""
    found: list[Observer] = [] if ex.durable is None else [ex.durable]
    if emitter is not None:
        found.append(emitter)
    for instrument in instruments:
        observer = instrument.observe(ex.run_id, ex.plan.name)
        if observer is not None:
            found.append(observer)
    return tuple(found)


async def _beside_writer(
    durable: DurableRun, state: RunState, attempts: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """Await ``attempts()`` with the durable run's writer task beside it, in an anyio task
    group: its cancellation waits for a write in progress (a native cancel would abandon it).

    Raises:
        LeaseLost: another owner took the run over; the run was stopped.
        RunCancelled: a cancel request stopped it.
        RunParked: a worker's run parked in a long wait.
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
    if state.parking:
        raise RunParked(durable.row.run_id)
    raise LeaseLost(durable.row.run_id)


def _attempts(ex: Execution, state: RunState) -> Coroutine[Any, Any, Outcome]:
    """Run the plan (with the run's mailbox open when it has wait or sleep nodes)."""
    if ex.plan.signals is None:
        return _attempts_of(ex, state)
    return _in_mailbox(ex, state)


async def _in_mailbox(ex: Execution, state: RunState) -> Outcome:
    """``_attempts_of`` with the run's mailbox open."""
    plan, durable, signals = ex.plan, ex.durable, ex.plan.signals
    assert signals is not None
    if durable is None:
        box = Mailbox(ex.run_id, plan.name, signals, state)
    else:
        box = StoredMailbox(ex.run_id, plan.name, signals, state, durable)
    with mailbox(box):
        return await _attempts_of(ex, state)


async def _attempts_of(ex: Execution, state: RunState) -> Outcome:
    """Run the plan, again after a failure while workflow-level retries remain."""
    plan, where, attempts = ex.plan, ex.restart, ex.attempts
    while True:
        attempts += 1
        scheduler = Scheduler(plan, ex.input, state, plan.max_concurrency, where)
        where = None  # a retry runs again from the first node
        in_time = await scheduler.execute(ex.timeout)
        error = _run_error(plan, scheduler, in_time, ex.timeout)
        if error is None or attempts > plan.retry.max_retries:
            return scheduler, attempts, error
        wait = wait_before_rerun(plan.retry, attempts - 1)
        for observer in state.observers:
            await observer.run_retrying(attempts, error, wait)
        await anyio.sleep(wait)
        for observer in state.observers:
            observer.run_started(attempts + 1)


def _run_error(
    plan: Plan, scheduler: Scheduler, in_time: bool, timeout: float | None
) -> dict[str, str] | None:
    """What failed the run: its deadline, or the first unhandled failure of a raise node."""
    if not in_time:
        return deadline_error(plan.name, timeout or 0.0)
    failure = scheduler.first_failure()
    return None if failure is None else failure.error
