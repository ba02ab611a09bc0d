"""The wait-kill harness's workflow: ``draft`` (marks the calls file), a wait ``approve`` for
signal ``approval`` with a timeout (its failure returned), then ``act`` (marks the calls file
with what it saw).

    python tests/wait_app.py STORE CALLS RUN_ID TIMEOUT

runs (or resumes) run RUN_ID in STORE (a SQLite file or a postgresql:// URL) and prints its
RunResult as JSON."""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio

from flowrt import ErrorHandling, SQLiteStore, Workflow


def mark(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def build(calls: str, timeout: float) -> Workflow:
    wf = Workflow("wait_kill")

    @wf.node
    def draft() -> str:
        mark(calls, "draft")
        return "refund"

    wf.wait(
        "approve",
        signal="approval",
        timeout_seconds=timeout,
        depends=[draft],
        error_handling=ErrorHandling(behavior="return"),
    )

    @wf.node(depends=["approve"], inputs={"answer": "$.approve"})
    def act(answer: dict[str, Any]) -> str:
        seen = "approved" if answer["status"] == "success" else "timeout"
        mark(calls, f"act:{seen}")
        return seen

    return wf


def open_store(where: str) -> Any:
    settings = {"heartbeat_seconds": 0.2, "lease_seconds": 1.0, "poll_seconds": 0.05}
    if where.startswith("postgresql://"):
        from flowrt.postgres import PostgresStore

        return PostgresStore(where, **settings)  # type: ignore[arg-type]
    return SQLiteStore(where, **settings)  # type: ignore[arg-type]


async def main(where: str, calls: str, run_id: str, timeout: float) -> None:
    async with open_store(where) as store:
        result = await build(calls, timeout).run(run_id=run_id, store=store)
    print(result.model_dump_json())


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
