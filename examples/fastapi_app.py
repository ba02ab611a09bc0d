"""A webhook receiver: each POSTed JSON payload is the input of one run.

Serve it from the repository root:

    .venv/bin/uvicorn examples.fastapi_app:app --port 8000

    curl -s localhost:8000/webhooks/order/run -H 'content-type: application/json' \\
         -d '{"order_id": 7, "amount": 12.5, "email": "ada@example.com"}'
    curl -s localhost:8000/webhooks/order/runs -H 'content-type: application/json' \\
         -d '{"order_id": 8, "amount": 3, "email": "bob@example.com"}'   # -> run_id
    curl -N localhost:8000/webhooks/order/runs/<run_id>/events             # live events (SSE)

Open http://localhost:8000/docs for the input schema, derived from the functions' type hints.
"""

from __future__ import annotations

import anyio
from fastapi import FastAPI

from flowrt import ErrorHandling, Workflow
from flowrt.fastapi import workflow_router

wf = Workflow("order-webhook", output={"receipt": "$.send_receipt.output || not sent"})


@wf.node
async def validate_order(order_id: int, amount: float, email: str) -> dict[str, object]:
    if amount <= 0:
        raise ValueError(f"order {order_id}: amount must be positive, got {amount}")
    return {"order_id": order_id, "amount": amount, "email": email}


@wf.node(
    inputs={"order": "$.validate_order.output"},
    error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0.05, timeout_seconds=2),
)
async def reserve_stock(order: dict[str, object]) -> str:
    await anyio.sleep(0.01)  # a call to the inventory service
    return f"reserved for order {order['order_id']}"


@wf.node(
    depends=[reserve_stock],
    inputs={"to": "$.validate_order.output.email"},
    error_handling=ErrorHandling(behavior="return", timeout_seconds=1),
)
async def send_receipt(to: str) -> str:
    if to.endswith(".invalid"):
        raise ConnectionError(f"mail server refused {to}")
    return f"receipt sent to {to}"


app = FastAPI(title="flowrt webhook example")
app.include_router(workflow_router(wf, timeout=10), prefix="/webhooks/order")
