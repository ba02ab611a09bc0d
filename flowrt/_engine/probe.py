"""Knowing whether a node let the loop run: flowrt's speed trick for a busy loop (its
equivalence test: tests/test_probe.py).

A task that runs a chain of nodes yields to the loop once it has gone ``YIELD_AFTER`` without
a turn (``Scheduler._run``). A node that awaited gave the loop its turn already, but an ``await``
does not say whether it suspended; under load every node's await takes longer than that, and
the task would pay one more loop turn per node (through every frame of its stack: in a web
request, a second task step per node). ``Probe`` awaits a node's coroutine exactly as ``await``
would, and notes whether it suspended: then the node counts as the task's turn. Only where the
loop sends None into a coroutine it resumes (asyncio's and uvloop's tasks do; trio sends values),
and only for a node that starts late, when the check may come.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


class Probe:
    """``await Probe(coro)`` is ``await coro``, and ``suspended`` tells whether the coroutine
    suspended (let the loop run) on the way."""

    __slots__ = ("coro", "suspended")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.suspended = False

    def __await__(self) -> Generator[Any, None, Any]:
        return _probed(self)


def _probed(probe: Probe) -> Generator[Any, Any, Any]:
    """Step the coroutine once by hand: returned at once, its value; suspended, hand what it
    waits on to the task and, when resumed (the task sends None), await the rest natively
    through the coroutine's ``__await__`` (a plain generator may not delegate to a coroutine
    itself; stepping it by hand to its end would raise a StopIteration, with its traceback,
    per node). What is thrown in at that first wait (a cancellation) is thrown into the
    coroutine, as ``await`` would."""
    coro = probe.coro
    try:
        waits = coro.send(None)
    except StopIteration as done:
        return done.value
    probe.suspended = True
    while True:
        try:
            yield waits
        except BaseException as exc:  # thrown in while it waits: to the coroutine
            try:
                waits = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            return (yield from coro.__await__())
