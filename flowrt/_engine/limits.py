"""Run limits in the engine: compiling a workflow's ``RunLimit``s, resolving a run's keys from
its input when it is submitted or run, and holding keys within one process when a run has no
store (the stores hold them for stored runs: ``_store.limits``, whose rules this follows)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._errors import DefinitionError, InputError, LimitReached, Superseded
from .._limits import RunLimit, as_tuple
from .._resolve import Value, compile_selector
from .._store.records import RunKey


@dataclass(frozen=True, slots=True)
class PlannedLimit:
    """A compiled run limit: the limit, its key's selector (None: one key), and the prefix of
    its keys (``<workflow>:<selector>``)."""

    limit: RunLimit
    value: Value | None
    prefix: str


def compile_limits(workflow: str, given: Any) -> tuple[PlannedLimit, ...]:
    """Check and compile ``run_limit=`` of workflow ``workflow``.

    Raises:
        DefinitionError: not RunLimits, a key that is not a selector over the input, or two
            limits with one key.
    """
    planned: list[PlannedLimit] = []
    for limit in as_tuple(given, RunLimit, "run_limit"):
        selector = limit.key or "*"
        if any(p.prefix == f"{workflow}:{selector}" for p in planned):
            why = f"two run limits have the key {limit.key!r}: give each key one limit"
            raise DefinitionError(why, field="run_limit.key")
        try:
            value = None if limit.key is None else compile_selector(limit.key, {"input"})
        except DefinitionError as exc:
            raise DefinitionError(exc.reason, field="run_limit.key") from None
        planned.append(PlannedLimit(limit, value, f"{workflow}:{selector}"))
    return tuple(planned)


def run_keys(limits: Sequence[PlannedLimit], input: Any) -> tuple[RunKey, ...]:
    """The keys a run with ``input`` (plain) takes under ``limits``.

    Raises:
        InputError: a key's value is missing, or is not a JSON scalar (str, int, float, bool).
    """
    keys = []
    for planned in limits:
        limit = planned.limit
        text = "*"
        if planned.value is not None:
            text = _scalar(planned.value({"input": input}), limit.key)
        keys.append(RunKey(f"{planned.prefix}={text}", limit.max_runs, limit.strategy))
    return tuple(keys)


def _scalar(value: Any, key: str | None) -> str:
    """``value`` as a key's JSON text.

    Raises:
        InputError: it is None (nothing there), or not a finite JSON scalar.
    """
    if value is None:
        why = f"run_limit key {key!r} has no value in the run input"
        raise InputError(why, field="run_limit.key")
    finite = not isinstance(value, float) or math.isfinite(value)
    if not isinstance(value, str | int | float | bool) or not finite:
        why = f"run_limit key {key!r} must be a JSON scalar (str, int, float, bool), got "
        raise InputError(why + f"{type(value).__name__} {value!r}"[:200], field="run_limit.key")
    return json.dumps(value, ensure_ascii=False)


@dataclass(eq=False)
class _Entry:
    """A run of this process queued for or holding its keys."""

    run_id: str
    keys: tuple[RunKey, ...]
    wake: anyio.Event = field(default_factory=anyio.Event)
    holding: bool = False
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    superseded_by: str | None = None


_lines: dict[str, list[_Entry]] = {}  # each key's runs: its holders, then those queued for it


def _ahead(entry: _Entry, key: str) -> list[_Entry]:
    line = _lines.get(key, [])
    return line[: line.index(entry)] if entry in line else list(line)


def _supersede(old: _Entry, new: str) -> None:
    old.superseded_by = new
    old.scope.cancel()
    old.wake.set()


def _admit(entry: _Entry) -> None:
    """Apply the strategies of new run ``entry``, then queue it on each of its keys.

    Raises:
        LimitReached: a full key's strategy is ``cancel_newest``.
    """
    for key in entry.keys:
        ahead = _ahead(entry, key.key)
        extra = len(ahead) - key.max_runs + 1
        if extra > 0 and key.strategy == "cancel_newest":
            names = ", ".join(repr(e.run_id) for e in ahead)
            why = f"run limit {key.key!r} (max_runs={key.max_runs}) is held by {names}"
            raise LimitReached(entry.run_id, why)
        if extra > 0 and key.strategy == "cancel_in_progress":
            for old in ahead[:extra]:
                _supersede(old, entry.run_id)
    for key in entry.keys:
        _lines.setdefault(key.key, []).append(entry)


def _free(entry: _Entry) -> bool:
    return all(
        sum(1 for e in _ahead(entry, key.key) if e.superseded_by is None or e.holding)
        < key.max_runs
        for key in entry.keys
    )


def _leave(entry: _Entry) -> None:
    """``entry`` ended: it leaves its keys' lines, and the runs left in them look again."""
    for key in entry.keys:
        line = _lines.get(key.key, [])
        if entry in line:
            line.remove(entry)
        for other in line:
            other.wake.set()
        if not line:
            _lines.pop(key.key, None)


@asynccontextmanager
async def held_here(run_id: str, keys: tuple[RunKey, ...]) -> AsyncIterator[anyio.CancelScope]:
    """Hold ``keys`` for in-memory run ``run_id`` while the block runs (after waiting its
    turn, ``queue``); yields the scope to run it in (a newer run cancels it: ``Superseded``).

    Raises:
        LimitReached: a key is full and its strategy is ``cancel_newest``.
        Superseded: a newer run of a key took it, first or while it ran.
    """
    entry = _Entry(run_id, keys)
    _admit(entry)
    try:
        while not _free(entry) and entry.superseded_by is None:
            await entry.wake.wait()
            entry.wake = anyio.Event()
        if entry.superseded_by is None:
            entry.holding = True
            with entry.scope:
                yield entry.scope
    finally:
        _leave(entry)
    if entry.superseded_by is not None:
        raise Superseded(run_id, f"superseded by run {entry.superseded_by!r}")


__all__: Sequence[str] = ["PlannedLimit", "compile_limits", "held_here", "run_keys"]
