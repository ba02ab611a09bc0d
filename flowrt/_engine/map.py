"""A map node: its function called once per item, at most ``concurrency`` at a time, each item
under the node's error handling; the output is the list of per-item envelopes in item order."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import InputError, TooManyFailures
from .._fast import error_of
from .._models import AttemptRecord
from .attempt import attempt, item_envelope
from .context import CURRENT
from .encode import settle_output
from .failures import as_failure
from .native import task_group
from .states import NodeState, RunState

if TYPE_CHECKING:
    from .invoke import Invoke
    from .planned import PlanNode


async def run_map(
    pn: PlanNode, results: Mapping[str, Any], state: NodeState, ctx: RunState
) -> NodeState:
    """A map node: one call per item, each under the node's error handling. It is one
    attempt of its node in every view: ``node.started``, a trace record (its timeline bar and
    span), and ``node.item_failed`` for each item that fails."""
    state.attempts = 1
    for observer in ctx.observers:
        observer.node_started(pn.name, 1)
    start = ctx.clock() - ctx.origin
    await _items(pn, results, state, ctx)
    if state["status"] == "success":
        settle_output(pn.name, state)  # the list of item envelopes, in its one JSON form
    error = state.error
    info = None if error is None else error_of(error["type"], error["message"])
    state.record(AttemptRecord(1, start, ctx.clock() - ctx.origin - start, info))
    return state


async def _items(
    pn: PlanNode, results: Mapping[str, Any], state: NodeState, ctx: RunState
) -> NodeState:
    try:
        args, kwargs = pn.arguments(results)
        assert pn.items is not None
        items = pn.items(pn.data(results))
        if not isinstance(items, list | tuple):
            raise InputError(
                f"items resolved to {type(items).__name__}, not a list: {items!r:.80}",
                node=pn.name,
                field="items",
            )
    except InputError as exc:
        return state.fail(exc)
    return await MapRun(pn, items, args, kwargs, ctx).run(state)


class MapRun:
    """One map node's run over its items: workers take the next item until none is left, or
    until a failure stops the map (behavior ``raise``, or more than ``tolerated_failures``)."""

    __slots__ = (
        "allowed",
        "args",
        "bare",
        "ctx",
        "envelopes",
        "failed",
        "invoke",
        "items",
        "kwargs",
        "pending",
        "plain",
        "pn",
    )

    def __init__(
        self,
        pn: PlanNode,
        items: Sequence[Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        ctx: RunState,
    ) -> None:
        assert pn.map is not None
        assert pn.invoke is not None
        self.pn, self.items, self.args, self.kwargs, self.ctx = pn, items, args, kwargs, ctx
        limit = pn.map.tolerated_failures
        self.allowed = math.floor(limit * len(items)) if isinstance(limit, float) else limit
        self.envelopes: list[dict[str, Any] | None] = [None] * len(items)
        self.pending = iter(range(len(items)))
        self.failed: list[int] = []
        policy = pn.policy  # plain: one call is the whole policy (no permits to take either)
        self.plain = policy.max_retries == 0 and policy.timeout_seconds is None and not pn.rates
        self.invoke: Invoke = pn.invoke
        self.bare = not args and not kwargs

    async def run(self, state: NodeState) -> NodeState:
        """Run every item (``concurrency`` workers) and finish ``state``."""
        assert self.pn.map is not None
        count = len(self.items)
        with anyio.CancelScope() as scope:
            async with task_group() as spawn:
                for _ in range(min(self.pn.map.concurrency or count, count)):
                    spawn(self.worker, scope)
        return self.verdict(state)

    async def worker(self, scope: anyio.CancelScope) -> None:
        """Take items until none is left; a failure that stops the map cancels ``scope``."""
        pn, items, invoke, ctx = self.pn, self.items, self.invoke, self.ctx
        for i in self.pending:
            if self.plain:  # no retries, no timeout, no rate limit
                here = CURRENT.set((ctx.run_id, ctx.workflow, pn.name, 1, i))  # current()
                try:
                    if self.bare:
                        output = await invoke(items[i])
                    else:
                        output = await invoke(items[i], *self.args, **self.kwargs)
                    envelope = {"status": "success", "output": output, "error": None}
                except BaseException as caught:
                    exc = as_failure(caught, pn.name)
                    if exc is None:
                        raise
                    envelope = item_envelope(NodeState().fail(exc))
                    del exc  # its traceback holds this frame: no reference cycle through it
                finally:
                    CURRENT.reset(here)
            else:
                call = (items[i], *self.args)
                state = NodeState()
                await attempt(pn, invoke, call, self.kwargs, state, self.ctx, item=i)
                envelope = item_envelope(state)
            self.envelopes[i] = envelope
            if envelope["status"] == "failure" and self.stops(i):
                scope.cancel()
                return

    def stops(self, i: int) -> bool:
        """Item ``i`` failed (reported ``node.item_failed``): whether that stops the map."""
        self.failed.append(i)
        envelope = self.envelopes[i]
        assert envelope is not None
        for observer in self.ctx.observers:
            observer.item_failed(self.pn.name, i, envelope["error"])
        return self.pn.raises or (self.allowed is not None and len(self.failed) > self.allowed)

    def verdict(self, state: NodeState) -> NodeState:
        """Finish ``state``: the first item failure (``raise``), too many failures, or the list
        of envelopes."""
        failed, allowed = self.failed, self.allowed
        if self.pn.raises and failed:
            error = self.envelopes[failed[0]]["error"]  # type: ignore[index]
            message = f"item {failed[0]}: {error['message']}"
            return state.failed({"type": error["type"], "message": message})
        if allowed is not None and len(failed) > allowed:
            count = len(self.items)
            return state.fail(TooManyFailures(self.pn.name, len(failed), count, allowed))
        return state.succeed(self.envelopes)
