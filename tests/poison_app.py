"""A worker process whose one workflow's node kills the process (a poison run), unless
``POISON_CURED=1``; each call of the node is a line in the log file.

    python tests/poison_app.py STORE LOG MAX_CLAIMS

drains the store with ``Worker(max_claims=MAX_CLAIMS)`` and prints how many runs it executed.
"""

from __future__ import annotations

import os
import signal
import sys

import anyio

from flowrt import SQLiteStore, Worker, Workflow


def build(store: SQLiteStore, log: str) -> Workflow:
    wf = Workflow("poison", store=store)

    @wf.node
    def bad() -> str:
        with open(log, "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()}\n")
        if os.environ.get("POISON_CURED") != "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return "ok"

    return wf


async def main(path: str, log: str, max_claims: str) -> None:
    with SQLiteStore(path) as store:
        worker = Worker(store, [build(store, log)], max_claims=int(max_claims), poll_seconds=0.01)
        print(await worker.drain())


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
