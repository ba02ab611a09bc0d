"""HTTP idempotency for ``workflow_router``: an ``Idempotency-Key`` header names the run. The
same key gives the same run id (for a router with a store, the run id is derived from the
workflow and the key, so every app instance agrees); a repeated request answers for the run the
first one started, and a key used again with another body is refused (409)."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import anyio
from fastapi import HTTPException

from .._store.records import RunRow

T = TypeVar("T")


def keyed_run_id(workflow: str, key: str) -> str:
    """The run id of ``key`` for ``workflow``: 32 hex digits, the same in every process."""
    return hashlib.sha256(f"{workflow}\x00{key}".encode()).hexdigest()[:32]


def canonical(data: Any) -> str:
    """A request body as comparable text (keys sorted)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def conflict(key: str) -> HTTPException:
    """The answer to a key used again with another body."""
    return HTTPException(409, f"Idempotency-Key {key!r} was already used with a different body")


def check_stored(run: RunRow | None, key: str, data: Any) -> None:
    """Refuse (409) a key whose stored run was started with another input.

    Raises:
        HTTPException: 409.
    """
    if run is not None and canonical(json.loads(run.input)) != canonical(data):
        raise conflict(key)


class _First(Generic[T]):
    __slots__ = ("answer", "body", "done")

    def __init__(self, body: str) -> None:
        self.body = body
        self.done = anyio.Event()
        self.answer: T | None = None


class Replies(Generic[T]):
    """Without a store: the answer to the first request of each key (the last ``keep``
    keys), given again to repeats, which wait for it while it is being made."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.seen: OrderedDict[str, _First[T]] = OrderedDict()

    async def once(self, key: str, data: Any, answer: Callable[[], Awaitable[T]]) -> T:
        """``await answer()`` for the first request of ``key``; its answer for the others.

        Raises:
            HTTPException: 409, the key came with another body.
        """
        first = self.seen.get(key)
        body = canonical(data)
        if first is not None:
            if first.body != body:
                raise conflict(key)
            await first.done.wait()
            if first.answer is not None:
                return first.answer
            return await self.once(key, data, answer)  # the first was cancelled: try again
        first = self.seen[key] = _First(body)
        while len(self.seen) > self.keep:
            self.seen.popitem(last=False)
        try:
            first.answer = await answer()
        except BaseException:
            self.seen.pop(key, None)
            raise
        finally:
            first.done.set()
        return first.answer


__all__: Sequence[str] = ["Replies", "canonical", "check_stored", "conflict", "keyed_run_id"]
