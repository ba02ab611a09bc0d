"""One node's attempts: call under a cancel scope when a timeout is set, classify the failure,
wait with backoff, retry; fill in the node's ``Done`` record as it goes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ._backoff import wait_before_retry
from ._models import AttemptRecord, ErrorInfo, construct

if TYPE_CHECKING:
    from ._events import Emitter
    from ._plan import PlanNode


@dataclass(slots=True)
class Done:
    """A node's record while it runs and after: ``status`` is None until it finishes; a skipped
    node has a ``reason`` and the root ``cause`` of its skip."""

    status: str | None = None
    output: Any = None
    error: dict[str, str] | None = None
    attempts: int = 0
    duration: float = 0.0
    reason: str | None = None
    cause: str | None = None
    trace: list[AttemptRecord] = field(default_factory=list)

    def envelope(self) -> dict[str, Any]:
        """The store's plain-data view: ``{status, output, error}``."""
        return {"status": self.status, "output": self.output, "error": self.error}

    def fail(self, exc: BaseException) -> Done:
        """Finish as a failure with ``exc``'s type and message."""
        self.status, self.output, self.error = "failure", None, error_info(exc)
        return self


def message_of(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``str()`` raises."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() raised>"


def error_info(exc: BaseException) -> dict[str, str]:
    """``{type, message}`` of an exception, as envelopes hold it."""
    return {"type": type(exc).__name__, "message": message_of(exc)}


class Context:
    """What every node of one run shares: the event emitter (None when nobody listens), the
    random source for jitter, and the loop's clock."""

    __slots__ = ("clock", "emit", "rng")

    def __init__(self, emit: Emitter | None, rng: Any, clock: Callable[[], float]) -> None:
        self.emit = emit
        self.rng = rng
        self.clock = clock


def _retries(pn: PlanNode, exc: Exception) -> bool:
    if pn.retry_types is not None:
        return isinstance(exc, pn.retry_types)
    try:
        return pn.policy.retries(exc)
    except Exception:  # a retry_on predicate that raises does not retry
        return False


async def attempt(
    pn: PlanNode,
    fn: Callable[..., Awaitable[Any]],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    done: Done,
    ctx: Context,
    events: bool = True,
) -> Done:
    """Await ``fn(*args, **kwargs)`` until it succeeds or the policy says stop; fill in and
    return ``done``. ``events=False`` (map items) emits nothing."""
    policy = pn.policy
    timeout = policy.timeout_seconds
    emit = ctx.emit if events else None
    clock = ctx.clock
    while True:
        done.attempts += 1
        number = done.attempts
        if emit is not None:
            emit("node.started", pn.name, attempt=number)
        start = clock()
        try:
            if timeout is None:
                output = await fn(*args, **kwargs)
            else:
                with anyio.move_on_after(timeout) as scope:
                    output = await fn(*args, **kwargs)
                if scope.cancelled_caught:
                    raise TimeoutError(
                        f"node {pn.name!r} attempt {number} of {policy.max_retries + 1} "
                        f"timed out after {timeout:g}s"
                    )
        except Exception as exc:
            info = construct(ErrorInfo, {"type": type(exc).__name__, "message": message_of(exc)})
            wait = None
            if number <= policy.max_retries and _retries(pn, exc):
                waits = pn.waits
                wait = (
                    waits[number - 1] if waits else wait_before_retry(policy, number - 1, ctx.rng)
                )
            done.trace.append(AttemptRecord(number, start, clock() - start, info, wait))
            if wait is None:
                error = {"type": info.type, "message": info.message}
                done.status, done.output, done.error = "failure", None, error
                return done
            if emit is not None:
                emit("node.retrying", pn.name, attempt=number, error=info.__dict__, wait=wait)
            if wait > 0:  # a zero wait retries at once
                await anyio.sleep(wait)
        else:
            done.trace.append(AttemptRecord(number, start, clock() - start))
            done.status, done.output = "success", output
            return done
