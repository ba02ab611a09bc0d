"""How ``flowrt run`` stops on Ctrl-C and SIGTERM alike: the run is cancelled (its nodes'
``finally`` blocks run) and, when it is stored, handed over as a worker hands its runs over:
stored ``interrupted`` with no owner, resumable at once. The command exits 130 (SIGINT) or 143
(SIGTERM) with the resume hint."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .._engine.durable import HANDS_OVER

T = TypeVar("T")


class Stopped(Exception):
    """The command was stopped by a signal (``signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports it."""
        return 128 + self.signum


async def until_signal(fn: Callable[[], Awaitable[T]]) -> T:
    """``await fn()``; SIGINT or SIGTERM cancel it, hand a stored run over, and raise
    ``Stopped``."""
    HANDS_OVER.set(True)
    received: list[int] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    received.append(signum)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        result = await fn()
        tg.cancel_scope.cancel()
    if received:
        raise Stopped(received[0])
    return result
