"""Signals over HTTP, on ``workflow_router(wf, store=...)``: ``POST /runs/{run_id}/signals/
{signal}`` (one route per signal the workflow's waits declare, its payload schema in OpenAPI),
and what ``GET /runs/{run_id}`` says a run waits for."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel

from .._control import deliver
from .._engine.payloads import json_schema
from .._errors import InputError, RunEnded, RunNotFound, SignalConflict
from .._models import SignalSent
from .._store.protocol import RunStore
from .reachable import reachable

MAX_BODY = 1 << 20
"""The largest signal body taken, in bytes (1 MiB); a larger one is 413."""

SignalKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="the same key and payload: one signal"),
]
ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such run"},
    409: {"description": "The run has ended, or the key was used with another payload"},
    413: {"description": "The body is over 1 MiB"},
    422: {"description": "The payload is not JSON or fails the schema, or no wait takes it"},
}


class Waiting(BaseModel):
    """A node of a stored run that waits now: for ``signal`` (None: a sleep), until ``due``
    (ISO 8601 UTC; None: no timeout)."""

    node: str
    signal: str | None = None
    due: str | None = None


async def waiting_of(store: RunStore, run_id: str) -> list[Waiting]:
    """The nodes of stored run ``run_id`` that wait now, by node name."""
    waits = sorted(await store.waits(run_id), key=lambda wait: wait.node)
    return [
        Waiting(
            node=wait.node,
            signal=wait.signal,
            due=None if wait.due is None else datetime.fromtimestamp(wait.due, UTC).isoformat(),
        )
        for wait in waits
    ]


async def payload_of(request: Request) -> Any:
    """The request's body as JSON (an empty body: None).

    Raises:
        HTTPException: 413 for a body over ``MAX_BODY`` bytes; 422 for one that is not JSON.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"the signal's body is over {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"the signal's body is over {MAX_BODY} bytes")
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise HTTPException(422, _detail("payload", f"the body is not JSON: {exc}")) from None


def _detail(field: str, message: str) -> list[dict[str, Any]]:
    """A 422's detail, shaped like FastAPI's own: where (``loc``) and what."""
    return [{"loc": ["body", *field.split(".")[1:]], "msg": message, "type": "value_error"}]


class SignalSender:
    """Sends the signals of one workflow's stored runs."""

    def __init__(self, store: RunStore, workflow: str, declared: dict[str, Any]) -> None:
        self.store, self.workflow, self.declared = store, workflow, declared

    def route(self, name: str | None) -> Callable[..., Awaitable[SignalSent]]:
        """The handler for signal ``name`` (None: the one named in the path)."""

        async def send(
            run_id: str, request: Request, idempotency_key: SignalKey = None
        ) -> SignalSent:
            signal = name if name is not None else request.path_params["signal"]
            return await self.send(run_id, signal, await payload_of(request), idempotency_key)

        return send

    async def send(self, run_id: str, signal: str, payload: Any, key: str | None) -> SignalSent:
        """Send ``signal``, answering the documented status codes.

        Raises:
            HTTPException: 404, 409 or 422 (see ``ANSWERS``); 503 when the store cannot be
                reached (nothing was sent).
        """
        with reachable():
            run = await self.store.load_run(run_id)
        if run is None or run.workflow != self.workflow:
            raise HTTPException(404, f"no run {run_id!r}")
        try:
            with reachable():
                return await deliver(self.store, self.declared, run_id, (signal, payload, key))
        except RunNotFound as exc:  # pruned meanwhile
            raise HTTPException(404, str(exc)) from None
        except (RunEnded, SignalConflict) as exc:
            raise HTTPException(409, str(exc)) from None
        except InputError as exc:
            raise HTTPException(422, _detail(exc.field or "payload", str(exc))) from None


def add_signal_routes(router: APIRouter, store: RunStore, workflow: str, declared: Any) -> None:
    """``POST /runs/{run_id}/signals/{signal}`` on ``router``: a route per declared signal (its
    payload's JSON Schema in OpenAPI), then one for any other name (422: no wait takes it)."""
    sender = SignalSender(store, workflow, dict(declared or {}))
    for name, schema in sender.declared.items():
        body = {"content": {"application/json": {"schema": json_schema(schema)}}}
        router.add_api_route(
            f"/runs/{{run_id}}/signals/{name}",
            sender.route(name),
            methods=["POST"],
            status_code=202,
            response_model=SignalSent,
            responses=ANSWERS,
            openapi_extra={"requestBody": body},
            summary=f"Send signal {name!r} to a run",
        )
    router.add_api_route(
        "/runs/{run_id}/signals/{signal}",
        sender.route(None),
        methods=["POST"],
        status_code=202,
        response_model=SignalSent,
        responses=ANSWERS,
        include_in_schema=False,
        summary="Send a signal to a run",
    )
