"""The child-kill harness's workflows: ``parent`` runs ``prepare``, then a sub-workflow node
``kyc`` (child ``kyc``: ``check`` then ``score``) and a map of 3 ``kyc`` children; every node
makes a keyed effect (a file named by ``flowrt.current().idempotency_key``, created once) and
appends its call to the calls file.

    python tests/child_app.py STORE CALLS EFFECTS RUN_ID

runs (or resumes) run RUN_ID in STORE (a SQLite file or a postgresql:// URL) and prints its
RunResult as JSON."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import anyio
from wait_app import open_store

import flowrt
from flowrt import Workflow


def effect(folder: str, calls: str) -> str:
    key = flowrt.current().idempotency_key
    fd = os.open(calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{key}\n".encode())
    os.close(fd)
    time.sleep(0.02)  # a window for the kill inside the node
    with contextlib.suppress(FileExistsError):  # the keyed effect: once per key
        os.close(os.open(os.path.join(folder, key.replace("/", "_")), os.O_CREAT | os.O_EXCL))
    return key


def build(calls: str, effects: str) -> Workflow:
    kyc = Workflow("kill_kyc")
    kyc.node(lambda: effect(effects, calls), name="check")
    kyc.node(lambda: effect(effects, calls), name="score", depends=["check"])
    parent = Workflow("kill_parent")
    parent.node(lambda: effect(effects, calls), name="prepare")
    parent.subworkflow(kyc, name="kyc", depends=["prepare"])
    parent.map(kyc, name="each", items=[{}, {}, {}], concurrency=2, depends=["prepare"])
    return parent


async def main(where: str, calls: str, effects: str, run_id: str) -> None:
    async with open_store(where) as store:
        result = await build(calls, effects).run(run_id=run_id, store=store)
    print(result.model_dump_json())


def _args() -> Any:
    return sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]


if __name__ == "__main__":
    anyio.run(main, *_args())
