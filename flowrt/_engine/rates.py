"""Rate limits in the engine: compiling a node's ``RateLimit``s, and taking an attempt's
permits before it starts (``throttle``), from the run's store (GCRA on the store's clock:
``_store.rates``) or, for a run without one, from this process (the same rule, on the loop's
clock). Waiting for a turn is announced like a retry's wait (``node.throttled``): it is
outside the attempt's timeout, inside the run's deadline, and a long one parks a worker's run
(its permit kept: the resumed attempt does not take another)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .._errors import DefinitionError, RateLimited
from .._limits import RateLimit, as_tuple
from .._resolve import Value, compile_value, view
from .._store.rates import turn
from .observe import Wait

if TYPE_CHECKING:
    from .._store.protocol import RunStore

Shape = tuple[float, int, float | None]  # seconds between permits, burst, max wait


@dataclass(frozen=True, slots=True)
class PlannedRate:
    """A compiled rate limit of a node: the limit, its key (None: one key), and the results
    the key may read (the run input, the node's dependencies)."""

    rate: RateLimit
    key: Value | None
    names: tuple[str, ...] = ("input",)

    @property
    def shape(self) -> Shape:
        rate = self.rate
        return (rate.interval, rate.burst, rate.max_wait_seconds)


class Limiter(Protocol):
    """Where permits come from: ``take`` reserves the next permit of (name, key) and gives
    the seconds until its turn and True; or, when that is more than the shape's max wait,
    reserves nothing and gives the seconds and False."""

    async def take(self, limit: tuple[str, str], shape: Shape) -> tuple[float, bool]: ...


class _Node(Protocol):
    """What ``throttle`` uses of a compiled node (``planned.PlanNode``)."""

    name: str
    rates: tuple[PlannedRate, ...]


class _State(Protocol):
    """What ``throttle`` uses of a node's state (``attempt.NodeState``)."""

    permit: bool


class _Run(Protocol):
    """What ``throttle`` uses of the run's state (``attempt.RunState``): its limiter, and its
    scheduler (its results; told of waits: ``attempt.Parking``), None outside a run."""

    limiter: Limiter
    scheduler: Any


class StoreLimiter:
    """A stored run's permits: the store's (shared by every process using it)."""

    __slots__ = ("store",)

    def __init__(self, store: RunStore) -> None:
        self.store = store

    async def take(self, limit: tuple[str, str], shape: Shape) -> tuple[float, bool]:
        return await self.store.take_permit(limit, shape)


class MemoryLimiter:
    """An in-memory run's permits: this process's, on the loop's clock."""

    __slots__ = ("tats",)

    def __init__(self) -> None:
        self.tats: dict[tuple[str, str], float] = {}

    async def take(self, limit: tuple[str, str], shape: Shape) -> tuple[float, bool]:
        interval, burst, max_wait = shape
        now = anyio.current_time()
        at, tat = turn(self.tats.get(limit, now), now, interval, burst)
        if max_wait is not None and at - now > max_wait:
            return at - now, False
        self.tats[limit] = tat
        return at - now, True


MEMORY = MemoryLimiter()


def compile_rates(node: str, given: Any, known: Collection[str]) -> tuple[PlannedRate, ...]:
    """Check and compile node ``node``'s ``rate_limit=``; keys may read ``known``.

    Raises:
        DefinitionError: not RateLimits, one name twice, or a bad key.
    """
    rates = as_tuple(given, RateLimit, "rate_limit")
    names = [rate.name for rate in rates]
    if len(set(names)) != len(names):
        raise DefinitionError("one rate limit name given twice", node=node, field="rate_limit")
    planned = []
    for rate in rates:
        try:
            key = None if rate.key is None else compile_value(rate.key, known)
        except DefinitionError as exc:
            raise DefinitionError(exc.reason, node=node, field="rate_limit.key") from None
        planned.append(PlannedRate(rate, key, tuple(sorted(known))))
    return tuple(planned)


def check_shapes(nodes: Sequence[tuple[str, tuple[PlannedRate, ...]]]) -> None:
    """One name, one ``(limit, per_seconds, burst)`` in a workflow.

    Raises:
        DefinitionError: a name with two shapes, naming both nodes.
    """
    seen: dict[str, tuple[str, tuple[int, float, int]]] = {}
    for node, rates in nodes:
        for planned in rates:
            rate = planned.rate
            first = seen.setdefault(rate.name, (node, rate.shape))
            if first[1] != rate.shape:
                why = (
                    f"rate limit {rate.name!r} is (limit, per_seconds, burst) {rate.shape} here "
                    f"but {first[1]} on node {first[0]!r}: one name, one limit"
                )
                raise DefinitionError(why, node=node, field="rate_limit")


def _key_text(planned: PlannedRate, results: Mapping[str, Any]) -> str:
    key = planned.key
    if key is None:
        return ""
    value = key(view(results, planned.names) if key.needs_view else results)
    return value if isinstance(value, str) else json.dumps(value, default=str)


async def throttle(pn: _Node, state: _State, ctx: _Run, item: int | None) -> RateLimited | None:
    """Take the permits of the attempt about to start (each of ``pn.rates``), waiting for the
    latest turn; the error to fail it with when a turn is too far away (nothing reserved for
    that limit: permits taken for the others are spent)."""
    if state.permit:  # resumed from a parked wait for its turn: it has its permits
        state.permit = False
        return None
    scheduler = ctx.scheduler
    results = {} if scheduler is None else scheduler.results
    longest, name = 0.0, ""
    for planned in pn.rates:
        rate = planned.rate
        limit = (rate.name, _key_text(planned, results))
        wait, granted = await ctx.limiter.take(limit, planned.shape)
        if not granted:
            return RateLimited(pn.name, rate.name, wait, rate.max_wait_seconds or 0.0)
        if wait > longest:
            longest, name = wait, rate.name
    if longest > 0:
        await _wait_turn(pn, state, ctx, item, (longest, name))
    return None


async def _wait_turn(
    pn: _Node, state: _State, ctx: _Run, item: int | None, turn: tuple[float, str]
) -> None:
    """Wait ``turn`` (seconds, the limit's name): a node's wait told to its scheduler (its
    observers, parking), a map item's its own."""
    seconds, name = turn
    scheduler = ctx.scheduler if item is None else None
    if scheduler is None:
        await anyio.sleep(seconds)
        return
    announced = Wait("throttled", seconds, time.time() + seconds, rate_limit=name)
    scheduler.waiting(pn.name, state, announced)
    try:
        await anyio.sleep(seconds)
    finally:
        scheduler.woke(announced)


__all__: Sequence[str] = [
    "MEMORY",
    "Limiter",
    "MemoryLimiter",
    "PlannedRate",
    "StoreLimiter",
    "check_shapes",
    "compile_rates",
    "throttle",
]
