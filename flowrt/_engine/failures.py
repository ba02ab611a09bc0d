"""How a failure is classified and kept, for node attempts and map items alike: what an
exception that escaped a node's code means (a failure, or a cancellation that must propagate),
its ``{type, message}``, its ErrorInfo shared between alike failures, and its traceback
(formatted, its frames released)."""

from __future__ import annotations

import asyncio
import traceback

from .._errors import StrayCancellation
from .._fast import error_of
from .._models import ErrorInfo


def message_of(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``str()`` raises."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() raised>"


def as_failure(exc: BaseException, node: str) -> Exception | None:
    """What node ``node`` fails with when its code raised ``exc``: ``exc`` itself for an
    Exception; a StrayCancellation for a CancelledError that no cancellation explains (on
    asyncio the task has no pending cancel request; on trio an asyncio CancelledError never is
    one); None for anything else (a cancellation, KeyboardInterrupt...), which must propagate."""
    if isinstance(exc, Exception):
        return exc
    if not isinstance(exc, asyncio.CancelledError):
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:  # not on asyncio
        task = None
    else:
        if task is None or task.cancelling():
            return None
    return StrayCancellation(node)


def failure_info(exc: BaseException, seen: dict[tuple[str, str], ErrorInfo]) -> ErrorInfo:
    """The ErrorInfo of ``exc``, shared through ``seen`` (the run's) with every failure that
    says the same: ErrorInfo is frozen, and nodes failing alike (a flaky dependency, attempt
    after attempt) then cost one."""
    try:
        key = (type(exc).__name__, str(exc))
    except Exception:  # an exception whose str() raises
        key = (type(exc).__name__, message_of(exc))
    info = seen.get(key)
    if info is None:
        info = seen[key] = error_of(key[0], key[1])
    return info


TRACEBACK_FRAMES = 20


def format_traceback(exc: BaseException) -> str:
    """``exc``'s traceback, formatted (its last ``TRACEBACK_FRAMES`` frames). The frames'
    locals are cleared afterwards: a kept exception must not keep a run's objects alive (nor
    make reference cycles of them)."""
    text = "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES))
    release_frames(exc)
    return text


def release_frames(exc: BaseException | None) -> None:
    """Clear the locals of ``exc``'s frames, and of its cause's and context's. A frame still
    executing (the one that caught ``exc``, which holds ``exc`` in a local) cannot be cleared:
    it leaves the traceback, or it would make a reference cycle through ``exc``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            try:
                tb.tb_frame.clear()
            except RuntimeError:  # still executing
                tb = tb.tb_next
                continue
            break
        exc.__traceback__ = tb
        traceback.clear_frames(tb)
        exc = exc.__cause__ or exc.__context__


def error_fields(exc: BaseException) -> dict[str, str]:
    """``{type, message}`` of an exception, as envelopes hold it."""
    return {"type": type(exc).__name__, "message": message_of(exc)}
