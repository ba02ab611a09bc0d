"""Picklable functions for the process-executor tests (a worker process imports them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def square(x: int) -> dict[str, int]:
    return {"square": x * x, "pid": os.getpid()}


def sleep_then_mark(marker: str, seconds: float) -> str:
    time.sleep(seconds)  # a blocking function: only killing its process stops it
    Path(marker).write_text("finished")
    return "finished"


def context_key() -> str:
    """What flowrt.current() says in a worker process."""
    import flowrt

    ctx = flowrt.current()
    return f"{ctx.idempotency_key}@{ctx.attempt}"
