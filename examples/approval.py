"""Human in the loop: a refund waits for a person's approval, served by FastAPI with a worker.

The run drafts the refund, then waits (durably: no process is held while it waits) for signal
``approval``. A Choice pays the refund when it was approved, and tells the customer otherwise:
on a rejection, and when nobody answered within the timeout (``SignalTimeout``, returned as the
wait's result).

Serve it from the repository root (runs are kept in ./approval.db; the viewer is at /refunds/ui):

    FLOWRT_STORE=approval.db .venv/bin/uvicorn examples.approval:app --port 8000

    curl -s localhost:8000/refunds/runs -H 'content-type: application/json' \\
         -d '{"order_id": 7, "amount": 30}'                                # -> run_id
    curl -s localhost:8000/refunds/runs/<run_id>                           # waiting: approve
    curl -s localhost:8000/refunds/runs/<run_id>/signals/approval \\
         -H 'content-type: application/json' -H 'Idempotency-Key: ticket-991' \\
         -d '{"approved": true, "by": "ana"}'
    # or, from any machine that reaches the store:
    .venv/bin/flowrt signal <run_id> approval --payload '{"approved": true, "by": "ana"}' \\
         --key ticket-991 --store approval.db

``python examples/approval.py`` runs the whole story in one process: one refund approved, one
rejected, one that times out (``APPROVAL_TIMEOUT`` seconds; 3 days when served).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio
from fastapi import FastAPI
from pydantic import BaseModel

import flowrt
from flowrt import Condition, ErrorHandling, SQLiteStore, Worker, Workflow
from flowrt.fastapi import workflow_router


class Approval(BaseModel):
    """What the approver sends."""

    approved: bool
    by: str


TIMEOUT = float(os.environ.get("APPROVAL_TIMEOUT", 3 * 86400))
wf = Workflow("refund-approval", output={"outcome": "$.pay.output || $.notify.output"})


@wf.node
async def draft(order_id: int, amount: float) -> dict[str, object]:
    return {"order_id": order_id, "amount": amount}


approve = wf.wait(
    "approve",
    signal="approval",
    schema=Approval,
    timeout_seconds=TIMEOUT,
    depends=[draft],
    error_handling=ErrorHandling(behavior="return"),  # a timeout is an answer too
)
route = wf.choice(
    "route", {"pay": Condition("$.approve.output.approved", "==", True), "tell": None}
)


@wf.node(depends=[route["pay"]], inputs={"refund": "$.draft.output", "by": "$.approve.output.by"})
async def pay(refund: dict[str, object], by: str) -> str:
    return f"refunded {refund['amount']} for order {refund['order_id']} (approved by {by})"


@wf.node(depends=[route["tell"]], inputs={"why": "$.approve.error.type || rejected"})
async def notify(why: str) -> str:
    return "no refund: " + ("nobody approved in time" if why == "SignalTimeout" else "rejected")


store = SQLiteStore(os.environ.get("FLOWRT_STORE", "approval.db"), poll_seconds=0.2)
app = FastAPI(title="flowrt approval example")
app.include_router(workflow_router(wf, store=store, ui=True), prefix="/refunds")


async def story(path: Path) -> None:
    """Three refunds through a worker: approved, rejected, and one nobody answers."""
    async with SQLiteStore(path, poll_seconds=0.05) as kept, anyio.create_task_group() as tg:
        tg.start_soon(Worker(kept, [wf], poll_seconds=0.05).serve)
        answers = {1: {"approved": True, "by": "ana"}, 2: {"approved": False, "by": "bo"}}
        for order_id in (1, 2, 3):
            run_id = await wf.submit({"order_id": order_id, "amount": 30}, store=kept)
            if order_id in answers:
                sent = await flowrt.send_signal(kept, run_id, "approval", answers[order_id])
                print(f"order {order_id}: sent {sent.signal} #{sent.seq}")
            result = await wf.result(run_id, store=kept, timeout=TIMEOUT + 30)
            print(f"order {order_id}: {result.output['outcome']}")
        tg.cancel_scope.cancel()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(story, Path(folder) / "approval.db")
