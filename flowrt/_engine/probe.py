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
    """Step the coroutine by hand, as a task would: returned at once, its value; suspended,
    hand each thing it waits on to the task and step it again when resumed (the task sends
    None), or throw into it what is thrown in (a cancellation). No ``yield from``: a plain
    generator may not delegate to a coroutine, and its wrapper would be one more object per
    node."""
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
            try:
                waits = coro.send(None)
            except StopIteration as done:
                return done.value
