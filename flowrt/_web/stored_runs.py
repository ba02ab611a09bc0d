"""What ``workflow_router(wf, store=store)`` serves: background runs kept in the store, so that
every app instance (and every worker) shares them. ``POST /runs`` submits a run; the router's
lifespan runs a ``Worker`` for the workflow unless ``worker=False``; ``GET /runs``,
``GET /runs/{run_id}`` and ``GET /runs/{run_id}/events`` read the store, whichever instance
started the run."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from .._control import cancel_run
from .._engine.result import stored_result
from .._errors import RunEnded, RunNotFound
from .._models import ErrorInfo, Event, EventKind, RunResult
from .._store.mailbox import OpenWait
from .._store.mask import masked
from .._store.protocol import RunStore
from .._store.records import RunRow
from .._worker import Worker
from .._workflow import Workflow
from .idempotency import check_stored, keyed_run_id
from .reachable import reachable
from .signal_routes import Waiting, add_signal_routes, waiting_of

ENDED = ("success", "failure")


class RunStarted(BaseModel):
    """The answer to ``POST /runs``."""

    run_id: str
    status_url: str
    events_url: str


def started_at(request: Request, run_id: str) -> RunStarted:
    """``POST /runs``'s answer: the run's id and its URLs, absolute paths beside the request's
    (without its query string)."""
    base = request.url.path.rstrip("/").removesuffix("/runs")
    return RunStarted(
        run_id=run_id,
        status_url=f"{base}/runs/{run_id}",
        events_url=f"{base}/runs/{run_id}/events",
    )


class StoredRun(BaseModel):
    """A run as ``GET /runs`` lists it."""

    run_id: str
    workflow: str
    status: Literal[
        "queued",
        "running",
        "waiting",
        "retrying",
        "success",
        "failure",
        "cancelled",
        "interrupted",
    ]
    attempts: int
    started_at: str
    finished_at: str | None = None


class StoredRunState(BaseModel):
    """``GET /runs/{run_id}`` with a store: its status, its RunResult once it has ended, the
    nodes that wait now (``waiting``: signal and due time), for a queued run what keeps it
    waiting (``blocked_by``: one line per full run-limit key), and for a cancelled run why
    (``error``: ``Cancelled``, ``LimitReached``, ``Superseded``, with who asked)."""

    run_id: str
    status: str
    result: RunResult | None = None
    waiting: list[Waiting] = []
    blocked_by: list[str] = []
    error: dict[str, str] | None = None


def _listed(run: RunRow) -> StoredRun:
    return StoredRun(
        run_id=run.run_id,
        workflow=run.workflow,
        status=run.status,
        attempts=run.attempts,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def events_of(run: RunRow, waits: Sequence[OpenWait] = ()) -> list[Event]:
    """The events of a stored run, as its records tell them: ``run.started``, each node's
    last record (``node.waiting`` for a wait or a sleep in ``waits``, with its signal and the
    seconds until its due time; ``node.throttled`` for a node waiting for its turn under a
    rate limit; ``node.retrying`` for a node in a retry wait; else ``node.finished``), and
    ``run.finished`` with its result once it has ended."""
    events = [Event(kind="run.started", run_id=run.run_id, attempt=run.attempts)]
    open_waits = {wait.node: wait for wait in waits}
    for node in run.nodes:
        kind: EventKind = "node.retrying" if node.status == "waiting" else "node.finished"
        wait = open_waits.get(node.name) if node.status == "waiting" else None
        left = None
        if node.status == "waiting" and node.reason == "throttled":
            kind = "node.throttled"
        elif wait is not None:
            kind = "node.waiting"
            left = None if wait.due is None else max(0.0, wait.due - time.time())
        events.append(
            Event(
                kind=kind,
                run_id=run.run_id,
                node=node.name,
                attempt=node.attempts + 1 if kind == "node.throttled" else node.attempts,
                status=node.status if kind == "node.finished" else None,
                error=ErrorInfo(**node.error) if node.error else None,
                signal=None if wait is None else wait.signal,
                wait=left,
            )
        )
    if run.status in ENDED or run.status == "cancelled":
        result = stored_result(run) if run.status in ENDED else None
        events.append(
            Event(kind="run.finished", run_id=run.run_id, status=run.status, result=result)
        )
    return events


class CancelRequest(BaseModel):
    """The optional body of ``POST /runs/{run_id}/cancel``."""

    reason: str | None = None


class Cancelled(BaseModel):
    """The answer of ``POST /runs/{run_id}/cancel``: ``cancelled`` (stored so now, 200) or
    ``requested`` (its owner stops it at its next heartbeat, 202)."""

    run_id: str
    outcome: Literal["cancelled", "requested"]


CANCEL_ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": Cancelled, "description": "Its owner was asked to stop it"},
    404: {"description": "No such run"},
    409: {"description": "The run has ended"},
}


class StoredRuns:
    """The background runs of one workflow, in a store."""

    def __init__(
        self, wf: Workflow, store: RunStore, worker: bool, ping: float, timeout: float | None
    ) -> None:
        self.wf, self.store, self.worker, self.ping = wf, store, worker, ping
        self.timeout = timeout  # each background run's deadline, stored with it
        self.running: Worker | None = None  # the lifespan's worker
        self.poll = 0.1  # seconds between reads of a followed run

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Run a ``Worker`` for the workflow while the app runs (unless ``worker=False``);
        stopped at shutdown, it hands its runs back to the other workers."""
        async with anyio.create_task_group() as tg:
            if self.worker:
                self.running = Worker(self.store, [self.wf], poll_seconds=0.5, timeout=self.timeout)
                tg.start_soon(self.running.serve)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    async def start(
        self, request: Request, data: dict[str, Any], key: str | None = None
    ) -> RunStarted:
        """``POST /runs``: submit the run to the store (a worker executes it). With an
        ``Idempotency-Key``, the run id is the key's (``keyed_run_id``): a repeat, to this app
        instance or another, answers for the run the first started; another body is 409. A
        store that cannot be reached is 503 with the reason: nothing was queued."""
        run_id = None if key is None else keyed_run_id(self.wf.name, key)
        with reachable():
            if key is not None and run_id is not None:
                check_stored(await self.store.load_run(run_id), key, data)
            run_id = await self.wf.submit(
                data, store=self.store, run_id=run_id, timeout=self.timeout
            )
        return started_at(request, run_id)

    async def health(self) -> Response:
        """``GET /health``: 200 ``{"store": "ok", "worker": "ok" | "off"}``, or 503 naming
        what is down (the store does not answer within 5 s; the worker cannot reach it)."""
        store = "ok"
        try:
            with anyio.fail_after(5):
                await self.store.list_runs(limit=1)
        except Exception as exc:
            store = f"down: {masked(f'{type(exc).__name__}: {exc}'.splitlines()[0])}"
        worker = "off" if self.running is None else self.running.health
        state = {"store": store, "worker": worker}
        code = 200 if store == "ok" and worker in ("ok", "off") else 503
        return Response(json.dumps(state), code, media_type="application/json")

    async def find(self, run_id: str) -> RunRow:
        run = await self.store.load_run(run_id)
        if run is None or run.workflow != self.wf.name:
            raise HTTPException(404, f"no run {run_id!r}")
        return run

    async def status(self, run_id: str) -> Response:
        """``GET /runs/{run_id}``."""
        run = await self.find(run_id)
        result = stored_result(run) if run.status in ENDED else None
        waiting = [] if run.status in ENDED else await waiting_of(self.store, run_id)
        state = StoredRunState(run_id=run_id, status=run.status, result=result, waiting=waiting)
        if run.status == "queued":
            state.blocked_by = [b.describe() for b in await self.store.blockers(run_id)]
        elif run.status == "cancelled":
            state.error = run.error
        return Response(state.model_dump_json(), media_type="application/json")

    async def cancel(
        self, run_id: str, request: Request, response: Response, body: CancelRequest | None = None
    ) -> Cancelled:
        """``POST /runs/{run_id}/cancel``: cancel the run, whichever process executes it (see
        ``flowrt.cancel_run``): 200 when it is stored ``cancelled``, 202 when its owner was
        asked to stop it; 404 for an unknown run, 409 for one that has ended."""
        await self.find(run_id)
        client = request.client.host if request.client else "unknown"
        by = f"POST /runs/{run_id}/cancel from {client}"
        reason = body.reason if body is not None else None
        try:
            outcome = await cancel_run(self.store, run_id, reason=reason, by=by)
        except RunNotFound as exc:  # pruned meanwhile
            raise HTTPException(404, str(exc)) from None
        except RunEnded as exc:
            raise HTTPException(409, str(exc)) from None
        response.status_code = 200 if outcome == "cancelled" else 202
        return Cancelled(run_id=run_id, outcome=outcome)

    def add_routes(self, router: APIRouter) -> None:
        """The store's routes on ``router``."""
        router.add_api_route(
            "/health",
            self.health,
            summary="Whether the store and the router's worker are up",
            responses={503: {"description": "The store or the worker is down"}},
        )
        router.add_api_route(
            "/runs",
            self.listing,
            response_model=list[StoredRun],
            summary="The workflow's most recent runs in the store, newest first",
        )
        router.add_api_route(
            "/runs/{run_id}",
            self.status,
            response_model=StoredRunState,
            summary="A run in the store",
        )
        router.add_api_route(
            "/runs/{run_id}/events",
            self.events,
            response_class=EventSourceResponse,
            summary="A stored run's events, as its records tell them, as Server-Sent Events",
        )
        router.add_api_route(
            "/runs/{run_id}/cancel",
            self.cancel,
            methods=["POST"],
            response_model=Cancelled,
            responses=CANCEL_ANSWERS,
            summary="Cancel a run, whichever process executes it",
        )
        add_signal_routes(router, self.store, self.wf.name, self.wf.compiled().signals)

    async def listing(
        self, limit: int = 50, status: str | None = None, offset: int = 0
    ) -> list[StoredRun]:
        """``GET /runs``: the workflow's most recent runs, newest first (``offset`` skips
        that many: paging)."""
        runs = await self.store.list_runs(
            limit=limit, status=status, workflow=self.wf.name, offset=offset
        )
        return [_listed(run) for run in runs]

    async def events(self, run_id: str, request: Request) -> EventSourceResponse:
        """``GET /runs/{run_id}/events``: the run's events as its records tell them, then
        live (the store is read every 0.1 s) until ``run.finished``. Ids number the events;
        ``Last-Event-ID: n`` skips the first n."""
        await self.find(run_id)
        last = request.headers.get("last-event-id", "")
        sent = int(last) if last.isdigit() else 0

        async def stream() -> AsyncIterator[ServerSentEvent]:
            nonlocal sent
            while True:
                run = await self.find(run_id)
                waits = [] if run.status in ENDED else await self.store.waits(run_id)
                events = events_of(run, waits)
                for event in events[sent:]:
                    sent += 1
                    data = event.model_dump_json()  # stored outputs are JSON already
                    yield ServerSentEvent(data=data, event=event.kind, id=str(sent))
                if events[-1].kind == "run.finished":
                    return
                await anyio.sleep(self.poll)

        return EventSourceResponse(stream(), ping=self.ping)
