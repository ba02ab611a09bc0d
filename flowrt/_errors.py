"""The flowrt exception tree.

```
FlowError
├── DefinitionError (ValueError)   a workflow definition is wrong: raised by validate() and run()
├── InputError (ValueError)        a node's inputs could not be resolved (a failure envelope's type)
├── OutputError (ValueError)       a durable run's node returned an output that is not JSON
├── NoMatch                        a Choice had no option whose condition held and no default
├── MaxLoopsExceeded               a loop ran max_loops steps without returning Final
├── TooManyFailures                a map had more failed items than tolerated_failures
├── StrayCancellation              a node's code raised CancelledError that no cancellation explains
├── RunInProgress                  a run with this id is executed by another owner right now
│   └── LeaseLost                  this process lost its run to another owner (its writes refused)
├── RunNotFound (LookupError)      no stored run has this id
├── RunEnded                       the run ended (success or failure): it cannot be cancelled
├── RunCancelled                   the run was cancelled by a request (wf.cancel, CLI, HTTP)
│   ├── LimitReached               its run limit's key was full (strategy cancel_newest)
│   └── Superseded                 a newer run of its key took it (strategy cancel_in_progress)
├── RateLimited                    an attempt's turn under a rate limit was too far away
├── TooManyRecoveries              a run kept killing its workers (Worker max_claims): ended
├── StoreTooNew                    a store's schema is newer than this flowrt knows
└── WorkflowFailed                 raised by RunResult.raise_for_status() for a failed run
```

Node functions' own exceptions are never wrapped: a node's envelope records their class name and
message. The classes above that a node can fail with appear as the `type` of its `ErrorInfo`.
"""

from __future__ import annotations

from typing import Protocol


class _Failure(Protocol):
    """What ``WorkflowFailed`` reads of an ``ErrorInfo``."""

    @property
    def type(self) -> str: ...
    @property
    def message(self) -> str: ...


class FlowError(Exception):
    """Root of every exception flowrt defines."""


class DefinitionError(FlowError, ValueError):
    """A workflow definition is invalid.

    Attributes:
        node: the node at fault, or None for a workflow-level problem.
        field: the field at fault (``"depends"``, ``"inputs.text"``, ...), or None.
        reason: what is wrong, in words.
    """

    def __init__(self, reason: str, *, node: str | None = None, field: str | None = None) -> None:
        self.node = node
        self.field = field
        self.reason = reason
        where = ".".join(part for part in (f"node {node!r}" if node else None, field) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class InputError(FlowError, ValueError):
    """A node's input could not be resolved (a parameter without a value, map items not a list,
    a template that failed), or a durable run's input cannot be stored.

    Attributes:
        reason: what is wrong, in words.
        node: the node whose input it is, when known.
        field: the parameter or input at fault (``"items"``, ``"input"``...), when known.
    """

    def __init__(self, reason: str, *, node: str | None = None, field: str | None = None) -> None:
        self.reason, self.node, self.field = reason, node, field
        super().__init__(f"node {node!r}: {reason}" if node else reason)


class OutputError(FlowError, ValueError):
    """A node of a durable run (one with a store) returned an output that cannot be stored as
    JSON.

    Attributes:
        node: the node.
        reason: why it cannot be stored.
    """

    def __init__(self, node: str, reason: str) -> None:
        self.node, self.reason = node, reason
        super().__init__(f"node {node!r}: its output cannot be stored as JSON: {reason}")


class NoMatch(FlowError):
    """No option of a Choice node held and it has no default option.

    Attributes:
        node: the Choice.
    """

    def __init__(self, node: str) -> None:
        self.node = node
        super().__init__(f"Choice {node!r}: no option matched and it has no default option")


class MaxLoopsExceeded(FlowError):
    """A loop node reached its ``max_loops`` without its step returning ``Final``.

    Attributes:
        node: the loop node.
        limit: its ``max_loops``.
    """

    def __init__(self, node: str, limit: int) -> None:
        self.node, self.limit = node, limit
        super().__init__(
            f"Agent {node!r} has reached the maximum loop limit of {limit} "
            "without finding a final answer"
        )


class TooManyFailures(FlowError):
    """A map node had more failed items than its ``tolerated_failures`` allows.

    Attributes:
        node: the map node.
        failed: how many items failed.
        total: how many items it had.
        tolerated: how many failures it tolerated.
    """

    def __init__(self, node: str, failed: int, total: int, tolerated: int) -> None:
        self.node, self.failed, self.total, self.tolerated = node, failed, total, tolerated
        super().__init__(
            f"map {node!r}: {failed} of {total} items failed, more than the {tolerated} tolerated"
        )


class StrayCancellation(FlowError):
    """A node's function raised ``asyncio.CancelledError`` while nothing was cancelling it (it
    raised it itself, or awaited something cancelled elsewhere). The node fails with it, like
    any other error, instead of vanishing from the run.

    Attributes:
        node: the node.
    """

    def __init__(self, node: str) -> None:
        self.node = node
        super().__init__(
            f"node {node!r}: its function raised CancelledError while nothing was cancelling it "
            "(did it await something cancelled elsewhere?)"
        )


class RunInProgress(FlowError):
    """A run with this id is being executed by another owner (a live process holds its lease):
    one run is executed by one owner at a time.

    Attributes:
        run_id: the run.
        owner: the owner holding it, when known.
    """

    def __init__(self, run_id: str, owner: str | None = None, detail: str | None = None) -> None:
        self.run_id = run_id
        self.owner = owner
        held = f" by {owner}" if owner else ""
        super().__init__(
            detail or f"run {run_id!r} is being executed{held}: its owner's lease is live"
        )


class LeaseLost(RunInProgress):
    """This process's claim on a run was taken over (its lease had expired and another owner
    claimed the run): its writes are refused and it dropped the run."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            run_id,
            detail=f"run {run_id!r} was taken over by another owner after this process's lease "
            "expired: its writes were refused and it stopped executing the run",
        )


class RunNotFound(FlowError, LookupError):
    """No stored run has this id.

    Attributes:
        run_id: the id asked for.
    """

    def __init__(self, run_id: str, where: object = None) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r}" + (f" in {where!r}" if where is not None else ""))


class RunEnded(FlowError):
    """The run has ended (``success`` or ``failure``): it cannot be cancelled (or signalled).

    Attributes:
        run_id: the run.
        status: how it ended.
    """

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id, self.status = run_id, status
        super().__init__(f"run {run_id!r} has ended ({status})")


class RunCancelled(FlowError):
    """The run was cancelled by a request (``wf.cancel``, ``flowrt.cancel_run``, ``flowrt runs
    cancel``, ``POST /runs/{id}/cancel``): its running nodes were cancelled and it is stored
    ``cancelled``. Raised by the ``wf.run`` executing it, and by ``wf.result`` for it.

    Attributes:
        run_id: the run.
        reason: the request's reason (the stored error's message).
        by: who asked, when known.
    """

    def __init__(self, run_id: str, reason: str, by: str | None = None) -> None:
        self.run_id, self.reason, self.by = run_id, reason, by
        who = f" by {by}" if by else ""
        super().__init__(f"run {run_id!r} was cancelled{who}: {reason}")


class LimitReached(RunCancelled):
    """A run was cancelled at submit because its ``RunLimit`` key was full (strategy
    ``cancel_newest``); the reason names the runs holding it."""


class Superseded(RunCancelled):
    """A run holding a ``RunLimit`` key was cancelled because a newer run of the key took it
    (strategy ``cancel_in_progress``); the reason names the new run."""


def cancelled_from(run_id: str, error: dict[str, str] | None) -> RunCancelled:
    """The exception a caller gets for stored run ``run_id`` that ended ``cancelled`` with
    ``error`` (its type picks ``LimitReached``, ``Superseded`` or ``RunCancelled``)."""
    error = error or {}
    kind = {"LimitReached": LimitReached, "Superseded": Superseded}.get(
        error.get("type", ""), RunCancelled
    )
    return kind(run_id, error.get("message") or "cancelled", error.get("by") or None)


class RateLimited(FlowError):
    """An attempt's turn under rate limit ``name`` was further away than its
    ``max_wait_seconds``: the attempt failed without starting (retryable), reserving nothing.

    Attributes:
        node: the node.
        name: the rate limit.
        wait: how long the turn was away (seconds).
    """

    def __init__(self, node: str, name: str, wait: float, max_wait: float) -> None:
        self.node, self.name, self.wait = node, name, wait
        super().__init__(
            f"node {node!r}: rate limit {name!r} gives its next permit in {wait:.3g}s, more "
            f"than max_wait_seconds={max_wait:g}"
        )


class SignalTimeout(FlowError):
    """A wait node's due time came before its signal (the signal, if it comes, stays unconsumed).

    Attributes:
        node: the wait node.
        signal: the signal it waited for.
        seconds: how long it waited (its ``timeout_seconds``).
    """

    def __init__(self, node: str, signal: str, seconds: float) -> None:
        self.node, self.signal, self.seconds = node, signal, seconds
        super().__init__(f"node {node!r} waited {seconds:g}s for signal {signal!r}")


class SignalConflict(FlowError, ValueError):
    """A signal sent again with a key already used for a different payload: nothing was sent.

    Attributes:
        run_id: the run.
        signal: the signal.
        key: the idempotency key.
    """

    def __init__(self, run_id: str, signal: str, key: str) -> None:
        self.run_id, self.signal, self.key = run_id, signal, key
        super().__init__(
            f"signal {signal!r} to run {run_id!r} with key {key!r} was sent before with another "
            "payload"
        )


class TooManyRecoveries(FlowError):
    """A run was claimed ``Worker(max_claims=...)`` times without any node finishing (it keeps
    killing the workers that take it): it is ended ``failure`` instead of being claimed again.
    The error type of such a run; ``wf.resume`` can still take it by hand."""


class StoreTooNew(FlowError):
    """A store's schema was written by a newer flowrt: this one refuses to use it (it could
    misread or damage its runs).

    Attributes:
        store: the store, as messages name it.
        found: its schema version.
        known: the newest version this flowrt knows.
    """

    def __init__(self, store: str, found: int, known: int) -> None:
        self.store, self.found, self.known = store, found, known
        super().__init__(
            f"store {store} has schema version {found}, newer than this flowrt's {known}: "
            "upgrade flowrt to use it"
        )


class WorkerCrashed(FlowError):
    """The worker executing a node's attempt died (killed, out of memory): the attempt failed,
    and is retried like any failure."""

    def __init__(self, node: str | None, detail: str) -> None:
        where = "a node" if node is None else f"node {node!r}"
        super().__init__(f"the worker executing {where} died: {detail}")
        self.node = node


class RunParked(FlowError):
    """A worker's run stopped executing because every node it was running waits for a retry
    of at least ``park_after_seconds``: stored ``waiting`` with its due time, owned by nobody,
    it is claimed again by a worker when due (its slot is free meanwhile)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} is parked in a retry wait until it is due")
        self.run_id = run_id


class WorkflowFailed(FlowError):
    """A run failed; raised by ``RunResult.raise_for_status()``.

    Attributes:
        error: the error that failed the run.
        run_id: the failed run's id.
    """

    def __init__(self, workflow: str, run_id: str, error: _Failure | None) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.error = error
        detail = f"{error.type}: {error.message}" if error else "unknown error"
        super().__init__(f"workflow {workflow!r} run {run_id} failed: {detail}")


def attempt_timed_out(node: str, attempt: int, attempts: int, timeout: float) -> TimeoutError:
    """The error of node ``node``'s attempt ``attempt`` (of at most ``attempts``) that ran past
    its ``timeout`` seconds, wherever it ran (the loop, a thread, a process)."""
    return TimeoutError(
        f"node {node!r} attempt {attempt} of {attempts} timed out after {timeout:g}s"
    )
