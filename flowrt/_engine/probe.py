"""Knowing whether a node let the loop run: flowrt's speed trick for a busy loop (its
equivalence test: tests/test_probe.py).

A task that runs a chain of nodes yields to the loop once it has gone ``YIELD_AFTER`` without
a turn (``Scheduler._run``). A node that awaited gave the loop its turn already, but an ``await``
does not say whether it suspended; under load every node's await takes longer than that, and
the task would pay one more loop turn per node (through every frame of its stack: in a web
request, a second task step per node). ``probe(coro, seen)`` awaits a node's coroutine exactly
as ``await`` would, and notes in ``seen`` (one per task) whether it suspended: then the node
counts as the task's turn. Only where the loop sends None into a coroutine it resumes (asyncio's
and uvloop's tasks do; trio sends values), and only for a node that starts late, when the check
may come. A probe is one generator object: a coroutine-like generator (``types.coroutine``) is
awaited as it is and may delegate to the coroutine itself (no object around it, no wrapper).
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any


@types.coroutine
def probe(coro: Coroutine[Any, Any, Any], seen: list[bool]) -> Generator[Any, Any, Any]:
    """``await probe(coro, seen)`` is ``await coro``; ``seen[0]`` is set False, then True if
    the coroutine suspends (lets the loop run) on the way.

    The coroutine is stepped once by hand: returned at once, its value; suspended, what it
    waits on goes to the task and, when resumed (the task sends None), the rest is awaited
    natively (stepping it by hand to its end would raise a StopIteration, with its traceback,
    per node). What is thrown in at that first wait (a cancellation) is thrown into the
    coroutine, as ``await`` would."""
    seen[0] = False
    try:
        waits = coro.send(None)
    except StopIteration as done:
        return done.value
    seen[0] = True
    while True:
        try:
            yield waits
        except BaseException as exc:  # thrown in while it waits: to the coroutine
            try:
                waits = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            return (yield from coro)
