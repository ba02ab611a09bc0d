"""Sub-workflow nodes (and maps of children): compiling one (its child checked, recursion
refused, its input bound) and running it: a child run with its deterministic id
(``"<parent>:<node>"``, ``"<parent>:<node>[<i>]"``), in the parent's store when there is
one, its output taken as the node's and its failure raised as the node's error."""

from __future__ import annotations

import builtins
import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from .._definition import Definition
from .._errors import (
    DefinitionError,
    FlowError,
    InputError,
    RunInProgress,
    cancelled_from,
)
from .._nodes import AnyNode, SubSpec
from .._resolve import compile_value, environment
from .context import CURRENT, RunContext
from .ended import result_of
from .observe import Wait
from .result import stored_result

if TYPE_CHECKING:
    from .._models import ErrorInfo, RunResult
    from .._store.protocol import RunStore
    from .durable import DurableRun
    from .states import RunState

WHOLE = "__input__"
"""The input key of a child's input given as one selector or template (not a dict)."""

_COMPILING: ContextVar[tuple[Definition, ...]] = ContextVar("flowrt_compiling", default=())


@contextmanager
def compiling(definition: Definition) -> Iterator[None]:
    """Mark ``definition`` as being compiled (its children are checked inside): a child that
    is already being compiled is a recursion."""
    token = _COMPILING.set((*_COMPILING.get(), definition))
    try:
        yield
    finally:
        _COMPILING.reset(token)


def child_inputs(node: AnyNode, known: frozenset[str]) -> dict[str, Any]:
    """Check a sub-workflow node (or a map of children): its child (valid, not recursive) and
    its ``input``; returns the inputs to bind its function to.

    Raises:
        DefinitionError: not a workflow, recursion (naming the cycle), an invalid child, or an
            ``input`` naming an unknown node.
    """
    spec = node.sub
    assert spec is not None
    child = spec.workflow
    if not isinstance(child, Definition):
        why = f"must be a Workflow, got {child!r}"
        raise DefinitionError(why, node=node.name, field="workflow")
    _check_child(node.name, child)
    if node.map is not None:
        return {}
    given = spec.input if spec.input is not None else "$.input"
    inputs = dict(given) if isinstance(given, Mapping) else {WHOLE: given}
    for key, value in inputs.items():
        try:
            compile_value(value, known)
        except DefinitionError as exc:
            where = "input" if key == WHOLE else f"input.{key}"
            raise DefinitionError(exc.reason, node=node.name, field=where) from None
    return inputs


def _check_child(node: str, child: Definition) -> None:
    stack = _COMPILING.get()
    if any(outer is child for outer in stack):
        start = next(i for i, outer in enumerate(stack) if outer is child)
        cycle = " -> ".join(outer.name for outer in (*stack[start:], child))
        raise DefinitionError(f"sub-workflow recursion: {cycle}", node=node, field="workflow")
    validate = getattr(child, "validate", None)
    if validate is None:
        return
    try:
        validate()  # compile_plan marks the child as being compiled
    except DefinitionError as exc:
        why = f"child workflow {child.name!r} is invalid: {exc}"
        raise DefinitionError(why, node=node, field="workflow") from None


@dataclass(slots=True)
class Parent:
    """What the children of a run share: the run's store (None: children run in memory), the
    run ids its sub-workflow nodes gave their children (``NodeResult.child_run_id``), and,
    in a worker (``queued``: its durable run and state), the nodes waiting for children."""

    store: RunStore | None
    children: dict[str, str] = field(default_factory=dict)
    queued: tuple[DurableRun, RunState] | None = None
    inflight: dict[str, int] = field(default_factory=dict)  # node -> items in run_child
    waiting: dict[str, int] = field(default_factory=dict)  # node -> items waiting for a child
    announced: dict[str, Wait] = field(default_factory=dict)

    @contextmanager
    def running(self, node: str) -> Iterator[None]:
        """A node (or map item) is in ``run_child``."""
        self.inflight[node] = self.inflight.get(node, 0) + 1
        try:
            yield
        finally:
            self.inflight[node] -= 1
            self._announce(node)

    @contextmanager
    def awaiting(self, node: str) -> Iterator[None]:
        """A node (or map item) waits for its child: once every item of the node in flight
        does, the node waits (its scheduler may park the run)."""
        self.waiting[node] = self.waiting.get(node, 0) + 1
        try:
            self._announce(node)
            yield
        finally:
            self.waiting[node] -= 1
            wait = self.announced.pop(node, None)
            if wait is not None and self.queued is not None:
                scheduler = self.queued[1].scheduler
                if scheduler is not None:
                    scheduler.woke(wait)

    def _announce(self, node: str) -> None:
        count = self.waiting.get(node, 0)
        if self.queued is None or not count or count < self.inflight.get(node, 0):
            return
        scheduler = self.queued[1].scheduler
        if node in self.announced or scheduler is None:
            return
        wait = self.announced[node] = Wait("child", math.inf, math.inf)
        scheduler.node_waits(node, wait)


PARENT: ContextVar[Parent | None] = ContextVar("flowrt_parent", default=None)
SPAWNING: ContextVar[tuple[str, str] | None] = ContextVar("flowrt_spawning", default=None)
"""The parent run and node of the child run about to be created (read once by ``take_link``)."""


@contextmanager
def parented(durable: DurableRun | None, state: RunState) -> Iterator[Parent]:
    """The context of a run's children while it executes (entered only when it has
    sub-workflow nodes): its store, the ids its nodes give their children, and for a worker's
    run (``handover``) what parks it while its children run on any worker."""
    parent = Parent(None if durable is None else durable.store)
    if durable is not None and durable.handover:
        parent.queued = (durable, state)
    token = PARENT.set(parent)
    try:
        yield parent
    finally:
        PARENT.reset(token)


def take_link() -> tuple[str, str] | None:
    """The (parent run, parent node) of the run being created here, if a sub-workflow node is
    creating it; cleared, so that runs the child's own nodes start are not linked too."""
    link = SPAWNING.get()
    if link is not None:
        SPAWNING.set(None)
    return link


def child_function(spec: SubSpec, mapped: bool) -> Callable[..., Any]:
    """The function a sub-workflow node (or each item of a map of children) runs."""
    if mapped:

        async def run_item(item: Any, **_: Any) -> Any:
            return await run_child(spec, item)

        return run_item

    async def run(**given: Any) -> Any:
        return await run_child(spec, given.get(WHOLE, given))

    return run


async def run_child(spec: SubSpec, input: Any) -> Any:
    """Run (or take, resume, or wait for) the child run of the calling node; its output.

    Raises:
        InputError: the child's input is not an object.
        FlowError: ``detach`` without a store, or the child's id is another workflow's run.
        Exception: the child's failure, as an exception of its error's type.
    """
    fields = CURRENT.get()
    run_id, _, node, attempt, item = fields
    if not isinstance(input, Mapping):
        why = f"the child's input must be an object, got {type(input).__name__}"
        raise InputError(why, node=node, field="input")
    default = RunContext(*fields).idempotency_key  # "<run>:<node>" or "<run>:<node>[<i>]"
    child_id = _child_id(spec, default, run_id, input)
    parent = PARENT.get() or Parent(None)
    if item is None:
        parent.children[node] = child_id
    key = default.removeprefix(f"{run_id}:")  # the node, or "<node>[<i>]" for a map item
    token = SPAWNING.set((run_id, key))
    try:
        if spec.detach:
            return await _detached(spec, input, child_id, parent.store)
        with parent.running(node):
            result = await _child_result(spec.workflow, input, (child_id, key), parent, attempt)
    finally:
        SPAWNING.reset(token)
    if result.status != "success":
        raise child_failure(child_id, result.error)
    return result.output


def _child_id(spec: SubSpec, default: str, run_id: str, input: Any) -> str:
    """The child's run id: the ``run_id`` template rendered over the input, else ``default``
    (the node's idempotency key)."""
    if spec.run_id is not None:
        return str(environment().from_string(spec.run_id).render(input=input, parent=run_id))
    return default


async def _detached(spec: SubSpec, input: Any, child_id: str, store: Any) -> Any:
    if store is None:
        raise FlowError(f"a detached child ({child_id!r}) needs a store: it outlives its parent")
    await spec.workflow.submit(input, store=store, run_id=child_id)
    return {"run_id": child_id}


async def _child_result(
    child: Any, input: Any, ids: tuple[str, str], parent: Parent, attempt: int
) -> RunResult:
    """The child's result: run in memory; or in the store, where an ended child is taken as
    stored (a failed or cancelled one resumed by the node's retry), an interrupted or
    cancelled one resumed, and one a live process owns waited for; in a worker, the child is
    queued for any worker and waited for (``_queued``). Its deadline is what remains of the
    node's."""
    deadline = anyio.current_effective_deadline()
    left = None if deadline == float("inf") else max(0.0, deadline - anyio.current_time())
    child_id, store = ids[0], parent.store
    if store is None:
        result: RunResult = await child.run(input, run_id=child_id, timeout=left)
        return result
    if attempt > 1:
        stored = await store.load_run(child_id)
        if stored is not None and stored.status in ("failure", "cancelled"):
            resumed: RunResult = await child.resume(child_id, store=store, timeout=left)
            return resumed
    if parent.queued is not None:
        return await _queued(child, input, ids, parent, left)
    try:
        ran: RunResult = await child.run(input, run_id=child_id, store=store, timeout=left)
        return ran
    except RunInProgress:
        return await result_of(store, child_id, left)


async def _queued(
    child: Any, input: Any, ids: tuple[str, str], parent: Parent, left: float | None
) -> RunResult:
    """In a worker: queue the child for any worker (once: its id is its key), record the wait,
    and wait for its end (a notification, or every ``poll_seconds``); the run parks meanwhile
    when all its running nodes wait. Stopped otherwise than by parking (a cancel, a deadline,
    a timeout), the node cancels its child (and so the child's own children)."""
    assert parent.queued is not None
    durable, state = parent.queued
    store, run_id = durable.store, durable.row.run_id
    child_id, key = ids
    await child.submit(input, store=store, run_id=child_id, timeout=left)
    await store.await_child(run_id, durable.attempt, key, child_id)
    try:
        result = await _ended(store, child_id)
        if result is None:  # not yet: the node waits (and the run may park)
            with parent.awaiting(key.partition("[")[0]):
                result = await _until_ended(store, child_id, run_id)
    except BaseException:
        if not state.parking and not durable.lost:
            with anyio.CancelScope(shield=True):
                await _cancel_child(store, child_id, run_id)
        raise
    await store.end_wait(run_id, durable.attempt, key)
    return result


async def _until_ended(store: RunStore, child_id: str, parent_id: str) -> RunResult:
    """The stored child's result once it has ended: looked at whenever its end may have been
    notified, and every ``poll_seconds``."""
    while True:
        await store.wait_for_signal(parent_id, store.poll_seconds)
        result = await _ended(store, child_id)
        if result is not None:
            return result


async def _ended(store: RunStore, child_id: str) -> RunResult | None:
    """The stored child's result if it has ended, else None.

    Raises:
        RunCancelled: it was cancelled.
    """
    found = await store.load_run(child_id)
    if found is not None and found.status in ("success", "failure"):
        return stored_result(found)
    if found is not None and found.status == "cancelled":
        raise cancelled_from(child_id, found.error)
    return None


async def _cancel_child(store: RunStore, child_id: str, parent_id: str) -> None:
    with contextlib.suppress(FlowError):  # ended meanwhile, or gone
        await store.cancel(
            child_id, reason=f"its parent run {parent_id!r} was stopped", by=f"run {parent_id}"
        )


_FAILURES: dict[str, type[Exception]] = {}


class ChildFailed(FlowError):
    """A child run failed; the node's error (its class is named like the child's error type,
    and is also that built-in exception when there is one: ``retry_on`` works as for any
    node).

    Attributes:
        child_run_id: the child run.
    """

    child_run_id: str = ""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def child_failure(child_id: str, error: ErrorInfo | None) -> Exception:
    """The exception a sub-workflow node fails with for its child's failure ``error``."""
    kind = error.type if error is not None else "FlowError"
    message = error.message if error is not None else "it failed"
    cls = _FAILURES.get(kind)
    if cls is None:
        cls = _FAILURES[kind] = _failure_class(kind)
    exc = cls(f"child run {child_id!r} failed: {message}")
    exc.child_run_id = child_id  # type: ignore[attr-defined]
    return exc


def _failure_class(kind: str) -> type[Exception]:
    builtin = getattr(builtins, kind, None)
    named = {"__module__": "flowrt", "__qualname__": kind}
    if isinstance(builtin, type) and issubclass(builtin, Exception) and builtin is not Exception:
        try:
            return type(kind, (ChildFailed, builtin), named)
        except TypeError:  # an incompatible layout: the name alone
            pass
    return type(kind, (ChildFailed,), named)
