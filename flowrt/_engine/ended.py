"""Waiting for a stored run to end: ``Workflow.result``, and a sub-workflow node whose child
a live process owns."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from .._errors import RunNotFound, cancelled_from
from .._models import RunResult
from .._store.protocol import RunStore
from .result import stored_result


async def result_of(store: RunStore, run_id: str, timeout: float | None) -> RunResult:
    """Wait until stored run ``run_id`` has ended (``success`` or ``failure``); its result.

    Raises:
        RunNotFound: no such run.
        RunCancelled: it was cancelled.
        TimeoutError: it had not ended after ``timeout`` seconds.
    """
    pause = 0.005
    with anyio.fail_after(timeout):
        while True:
            run = await store.load_run(run_id)
            if run is None:
                raise RunNotFound(run_id, store)
            if run.status in ("success", "failure"):
                return stored_result(run)
            if run.status == "cancelled":
                raise cancelled_from(run_id, run.error)
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.25)


__all__: Sequence[str] = ["result_of"]
