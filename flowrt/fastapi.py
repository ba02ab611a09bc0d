"""Serve a workflow from FastAPI (``pip install flowrt[fastapi]``).

``app.include_router(workflow_router(wf))`` adds:

- ``POST /run``: runs the workflow inside the request; 200 with the RunResult JSON on success, 500
  with the same body on a failed run. A client that disconnects cancels its run.
- ``POST /runs``: starts a background run, 202 with its ``run_id``; ``GET /runs/{run_id}`` gives
  its state and result; ``GET /runs/{run_id}/events`` streams its events as Server-Sent Events
  (from its first event, then live). Background runs live in a task group owned by the app's
  lifespan (merged in by ``include_router``) and are cancelled at shutdown.
- ``GET /graph``: the workflow as a Mermaid flowchart.
- With ``ui=True`` (and a store): the run viewer's pages at ``/ui`` (see ``flowrt._web.pages``).

The request body is a pydantic model derived from the workflow's input parameters (the type hints
of the parameters that come from ``$.input``), so ``/docs`` shows the real schema and a bad body
gets a 422 naming the field. flowrt itself never imports this module.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal

import anyio
import anyio.abc
from fastapi import APIRouter, FastAPI, Header, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from ._engine.limits import run_keys
from ._errors import InputError, RunCancelled, RunInProgress
from ._fast import answer_text, result_json, safe_result
from ._models import ErrorInfo, Event, RunResult
from ._report import jsonable
from ._store.protocol import RunStore
from ._web.background import Background
from ._web.background import RunState as RunState
from ._web.disconnect import run_until_disconnect
from ._web.idempotency import Replies, canonical, check_stored, conflict, keyed_run_id
from ._web.input_model import input_model as input_model
from ._web.pages import viewer_router
from ._web.plain_route import plain_route
from ._web.stored_runs import RunStarted as RunStarted
from ._web.stored_runs import StoredRuns, started_at
from ._workflow import Workflow

Key = Annotated[
    str | None, Header(alias="Idempotency-Key", description="the same key: the same run")
]
_GRACE = 3.0
"""Seconds an open event stream has at server shutdown to deliver its run's cancellation."""


class RunAnswer(BaseModel):
    """The answer to ``POST /run`` with ``response="output"``: the run's id, status, output and
    error, without every node's envelope and trace (a tenth of the bytes for ten nodes)."""

    run_id: str
    status: Literal["success", "failure"]
    output: Any = None
    error: ErrorInfo | None = None


def _answer_json(result: RunResult) -> str:
    """``RunAnswer``'s JSON of ``result`` (``_fast.answer_text``); when its output JSON cannot
    hold, the same with the output in its JSON-safe form."""
    try:
        return answer_text(result.run_id, result.status, result.output, result.error)
    except Exception:  # an output JSON cannot hold: send it in the fallback form
        return answer_text(result.run_id, result.status, jsonable(result.output), result.error)


def _json(model: Event | RunState) -> str:
    """JSON of an event or a run's state, whatever its outputs (see ``_report.result_json``)."""
    try:
        return model.model_dump_json()
    except Exception:  # an output JSON cannot hold: send it in the fallback form
        if model.result is None:
            raise
        return model.model_copy(update={"result": safe_result(model.result)}).model_dump_json()


class _Service:
    """What a router serves for one workflow: its runs in the request, its background runs
    (owned by the app's lifespan), their state and events, and its graph."""

    def __init__(
        self,
        wf: Workflow,
        timeout: float | None,
        keep: int,
        ping: float,
        response: str,
    ) -> None:
        if response not in ("result", "output"):
            raise ValueError(
                f"workflow_router: response must be 'result' or 'output', not {response!r}"
            )
        self.wf, self.timeout, self.keep, self.ping = wf, timeout, keep, ping
        self.compact = response == "output"
        self.runs: OrderedDict[str, Background] = OrderedDict()
        self.owner: list[anyio.abc.TaskGroup] = []
        self.stopping: anyio.Event | None = None
        self.replies: Replies[Response] = Replies(keep)  # POST /run by Idempotency-Key

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Own the background runs while the app runs; cancel those still going at shutdown."""
        async with anyio.create_task_group() as tg:
            self.owner.append(tg)
            self.stopping = anyio.Event()
            tg.start_soon(self.cancel_at_shutdown, self.stopping)
            try:
                yield
            finally:
                self.owner.remove(tg)
                tg.cancel_scope.cancel()

    async def cancel_at_shutdown(self, stopping: anyio.Event) -> None:
        """The server is shutting down (sse-starlette saw it while a follower was connected):
        cancel the background runs now, so their followers get the ``cancelled`` run.finished
        before their streams close, rather than after, at the lifespan's end."""
        await stopping.wait()
        for state in list(self.runs.values()):
            state.scope.cancel()

    def run_now(
        self, request: Request, data: dict[str, Any], key: str | None = None
    ) -> Awaitable[Response]:
        """``POST /run``: 200 or 500 with the RunResult; 499 when the client went away. With
        an ``Idempotency-Key``, a repeat answers for the first request's run (stored with the
        workflow's store, else remembered here); another body with the key is 409. (A plain
        function: no frame of its own under the run's awaits.)"""
        if key is None:
            return self._answer(request, data, None)
        return self._keyed(request, data, key)

    async def _keyed(self, request: Request, data: dict[str, Any], key: str) -> Response:
        """``run_now`` with an ``Idempotency-Key``."""
        if self.wf.store is None:
            return await self.replies.once(key, data, lambda: self._answer(request, data, None))
        run_id = keyed_run_id(self.wf.name, key)
        check_stored(await self.wf.store.load_run(run_id), key, data)
        return await self._answer(request, data, run_id)

    async def _answer(self, request: Request, data: dict[str, Any], run_id: str | None) -> Response:
        try:
            result = await run_until_disconnect(self.wf, request, data, self.timeout, run_id)
        except RunInProgress:  # a repeat while the first is running: answer when it ends
            assert run_id is not None
            result = await self.wf.result(run_id)
        if result is None:  # the client went away; nobody reads this
            return Response(status_code=499)
        code = 200 if result.status == "success" else 500
        text = _answer_json(result) if self.compact else result_json(result)
        return Response(text, code, media_type="application/json")

    async def background(self, state: Background, data: dict[str, Any]) -> None:
        """A background run; cancelled at shutdown, it ends with a "cancelled" run.finished."""
        run_id = state.state.run_id
        try:
            with state.scope:
                await self.wf.run(data, timeout=self.timeout, run_id=run_id, listener=state.add)
        except RunCancelled as exc:  # LimitReached, Superseded
            state.refused(exc)

    def start(self, request: Request, data: dict[str, Any], key: str | None = None) -> RunStarted:
        """``POST /runs``: start a background run (forgetting the oldest finished ones); with
        an ``Idempotency-Key``, a repeat answers for the run the first started."""
        if not self.owner:
            raise HTTPException(503, "background runs need the app's lifespan to be running")
        run_id = uuid.uuid4().hex if key is None else keyed_run_id(self.wf.name, key)
        started = self.runs.get(run_id)
        if started is not None and key is not None:
            if started.body != canonical(data):
                raise conflict(key)
            return started_at(request, run_id)
        state = Background(run_id, canonical(data))
        runs = self.runs
        runs[state.state.run_id] = state
        while len(runs) > self.keep and (oldest := next(iter(runs.values()))).state.status != (
            "running"
        ):
            runs.pop(oldest.state.run_id)
        self.owner[0].start_soon(self.background, state, data)
        return started_at(request, run_id)

    def find(self, run_id: str) -> Background:
        state = self.runs.get(run_id)
        if state is None:
            raise HTTPException(404, f"no run {run_id!r}")
        return state

    async def status(self, run_id: str) -> Response:
        """``GET /runs/{run_id}``: its ``RunState``."""
        return Response(_json(self.find(run_id).state), media_type="application/json")

    async def events(self, run_id: str, request: Request) -> EventSourceResponse:
        """``GET /runs/{run_id}/events``: every event so far, then live, as Server-Sent Events
        (sse-starlette: ids, keep-alive pings, no proxy buffering, closed at shutdown). Each
        event's id is its number in the run (from 1): a client that reconnects with
        ``Last-Event-ID: n`` gets the events after the n-th."""
        state = self.find(run_id)
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else 0

        async def stream() -> AsyncIterator[ServerSentEvent]:
            index = start
            while True:
                changed = state.changed
                while index < len(state.events):
                    event = state.events[index]
                    index += 1
                    yield ServerSentEvent(data=_json(event), event=event.kind, id=str(index))
                if state.state.status != "running":
                    return
                await changed.wait()

        return EventSourceResponse(
            stream(), ping=self.ping, shutdown_event=self.stopping, shutdown_grace_period=_GRACE
        )

    async def graph(self) -> PlainTextResponse:
        """``GET /graph``."""
        return PlainTextResponse(self.wf.mermaid())


def workflow_router(
    wf: Workflow,
    *,
    timeout: float | None = None,
    keep: int = 1000,
    ping: float = 15,
    response: Literal["result", "output"] = "result",
    store: RunStore | None = None,
    worker: bool = True,
    ui: bool = False,
    **router_options: Any,
) -> APIRouter:
    """An APIRouter serving ``wf``: see the module docstring for its routes.

    Args:
        wf: the workflow (validated here).
        timeout: the deadline of each run, in seconds (stored with a background run: whichever
            process executes it applies it).
        keep: how many finished background runs stay readable (the oldest are forgotten).
        ping: seconds between keep-alive pings on an idle event stream.
        response: what ``POST /run`` answers: the whole ``RunResult`` (``"result"``), or a
            ``RunAnswer`` (``"output"``: run id, status, output and error only).
        store: keep background runs in this store: every instance serving it answers
            ``GET /runs``, ``GET /runs/{run_id}`` and its events for any run.
        worker: with a store, run a ``Worker`` for ``wf`` in the router's lifespan.
        ui: also serve the run viewer of this workflow's runs in ``store`` at ``/ui``.
        router_options: passed to ``APIRouter`` (``prefix``, ``tags``, ...).

    Raises:
        DefinitionError: the workflow is invalid.
        ValueError: ``ui=True`` without a ``store`` (the viewer reads runs from it).
    """
    wf.validate()
    service = _Service(wf, timeout, keep, ping, response)
    stored = None if store is None else StoredRuns(wf, store, worker, ping, timeout)
    router = APIRouter(lifespan=(stored or service).lifespan, **router_options)
    _routes(router, service, *_handlers(service, stored))
    if stored is not None:
        return _stored_routes(router, stored, ui, timeout)
    return _memory_routes(router, service, ui)


def _handlers(
    service: _Service, stored: StoredRuns | None
) -> tuple[Callable[..., Awaitable[Response]], Callable[..., Awaitable[RunStarted]]]:
    """``POST /run`` and ``POST /runs``, their body typed with the workflow's input model."""

    async def run(request: Request, body: BaseModel) -> Response:
        # The Idempotency-Key header read here, not as a parameter: FastAPI's header
        # dependency costs a tenth of a small run per request (documented in _routes).
        key = request.headers.get("idempotency-key")
        try:
            return await service.run_now(request, body.model_dump(exclude_unset=True), key)
        except (InputError, RunCancelled) as exc:
            raise _refusal(exc) from None

    async def start(request: Request, body: BaseModel, idempotency_key: Key = None) -> RunStarted:
        data = body.model_dump(exclude_unset=True)
        with _refused():
            if stored is not None:
                return await stored.start(request, data, idempotency_key)
            run_keys(service.wf.compiled().limits, data)  # a bad key: 422, before it starts
            return service.start(request, data, idempotency_key)

    # The body model is made here, at run time: give FastAPI the class, not a string annotation.
    run.__annotations__["body"] = start.__annotations__["body"] = input_model(service.wf)
    return run, start


@contextmanager
def _refused() -> Iterator[None]:
    """A run refused: 422 for an input its run limit cannot key (``InputError``), 409 for a
    run cancelled (by its run limit: ``LimitReached``, ``Superseded``; or by a request)."""
    try:
        yield
    except (InputError, RunCancelled) as exc:
        raise _refusal(exc) from None


def _refusal(exc: InputError | RunCancelled) -> HTTPException:
    """See ``_refused``."""
    return HTTPException(422 if isinstance(exc, InputError) else 409, str(exc))


_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "the same key: the same run",
    "schema": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "the same key: the same run",
        "title": "Idempotency-Key",
    },
}
"""``POST /run``'s header as OpenAPI shows it (read from the request, not a parameter)."""


def _routes(
    router: APIRouter,
    service: _Service,
    run: Callable[..., Awaitable[Response]],
    start: Callable[..., Awaitable[RunStarted]],
) -> None:
    wf = service.wf
    answer = RunAnswer if service.compact else RunResult
    router.add_api_route(
        "/run",
        run,
        methods=["POST"],
        route_class_override=plain_route(run.__annotations__["body"]),
        response_model=answer,
        responses={500: {"model": answer, "description": "The run failed"}},
        summary=f"Run workflow {wf.name!r} and return its result",
        openapi_extra={"parameters": [_KEY_HEADER]},
    )
    router.add_api_route(
        "/runs", start, methods=["POST"], status_code=202, summary="Start a background run"
    )
    router.add_api_route(
        "/graph", service.graph, methods=["GET"], summary="The workflow as Mermaid"
    )


def _memory_routes(router: APIRouter, service: _Service, ui: bool) -> APIRouter:
    if ui:
        raise ValueError("workflow_router: ui=True needs store=... (the viewer reads runs there)")
    router.add_api_route(
        "/runs/{run_id}",
        service.status,
        methods=["GET"],
        response_model=RunState,
        summary="A background run",
    )
    router.add_api_route(
        "/runs/{run_id}/events",
        service.events,
        methods=["GET"],
        response_class=EventSourceResponse,
        summary="A background run's events, as Server-Sent Events",
    )
    return router


def _stored_routes(
    router: APIRouter, stored: StoredRuns, ui: bool, timeout: float | None
) -> APIRouter:
    if ui:
        viewer = viewer_router(stored.store, [stored.wf], fixed=stored.wf.name, deadline=timeout)
        router.include_router(viewer)
    stored.add_routes(router)
    return router
