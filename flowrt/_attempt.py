"""One node's attempts: call under a cancel scope when a timeout is set, classify the failure,
wait with backoff, retry; fill in the node's ``Done`` record as it goes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ._backoff import wait_before_retry

if TYPE_CHECKING:
    from ._events import Emitter
    from ._plan import PlanNode

Trace = tuple[int, float, float, "dict[str, str] | None", "float | None"]


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
    trace: list[Trace] = field(default_factory=list)

    def envelope(self) -> dict[str, Any]:
        """The store's plain-data view: ``{status, output, error}``."""
        return {"status": self.status, "output": self.output, "error": self.error}

    def fail(self, exc: BaseException) -> Done:
        """Finish as a failure with ``exc``'s type and message."""
        self.status, self.output, self.error = "failure", None, error_info(exc)
        return self


def error_info(exc: BaseException) -> dict[str, str]:
    """``{type, message}`` of an exception, even one whose ``str()`` raises."""
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__name__} whose str() raised>"
    return {"type": type(exc).__name__, "message": message}


def _retries(pn: PlanNode, exc: Exception) -> bool:
    try:
        return pn.policy.retries(exc)
    except Exception:  # a retry_on predicate that raises does not retry
        return False


async def attempt(
    pn: PlanNode,
    call: Callable[[], Awaitable[Any]],
    done: Done,
    emit: Emitter | None,
    rng: Any,
) -> Done:
    """Call ``call`` until it succeeds or the policy says stop; fill in and return ``done``."""
    policy = pn.policy
    timeout = policy.timeout_seconds
    while True:
        done.attempts += 1
        number = done.attempts
        if emit is not None:
            emit("node.started", pn.name, attempt=number)
        start = anyio.current_time()
        try:
            if timeout is None:
                output = await call()
            else:
                with anyio.move_on_after(timeout) as scope:
                    output = await call()
                if scope.cancelled_caught:
                    raise TimeoutError(
                        f"node {pn.name!r} attempt {number} of {policy.max_retries + 1} "
                        f"timed out after {timeout:g}s"
                    )
        except Exception as exc:
            error = error_info(exc)
            retry = number <= policy.max_retries and _retries(pn, exc)
            wait = wait_before_retry(policy, number - 1, rng) if retry else None
            done.trace.append((number, start, anyio.current_time() - start, error, wait))
            if wait is None:
                done.status, done.output, done.error = "failure", None, error
                return done
            if emit is not None:
                emit("node.retrying", pn.name, attempt=number, error=error, wait=wait)
            await anyio.sleep(wait)
        else:
            done.trace.append((number, start, anyio.current_time() - start, None, None))
            done.status, done.output = "success", output
            return done
