"""The run viewer's pages, read-only over a store: ``/ui`` lists runs (filtered by status and
workflow, newest first, paged); ``/ui/runs/{run_id}`` shows one run's graph, timeline and nodes,
and follows it live over Server-Sent Events while it is going. Served by
``workflow_router(wf, store=..., ui=True)`` and by ``flowrt ui``.

Pages are rendered on the server (jinja2, autoescaped: node outputs and error messages are
shown as text, whatever they hold) with a little script; every asset ships in the package.
Links are relative, so the pages work under any prefix.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote, urlencode

import anyio
import anyio.to_thread
from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sse_starlette import EventSourceResponse, ServerSentEvent

from .._catalog import Catalog, LoadError
from .._engine.planned import Plan
from .._errors import DefinitionError, FlowError
from .._store.protocol import RunStore
from .._store.records import RunRow, RunStatus
from .._workflow import Workflow
from .viewer import (
    ACTIVE,
    BOX_H,
    BOX_W,
    RunView,
    format_seconds,
    node_input,
    run_view,
    seconds_between,
)

ASSETS = Path(__file__).parent / "assets"
PAGE_SIZE = 50
_HEADERS = {
    # Nothing but the package's own script runs, even if user data slipped through escaping.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'"
    ),
    "x-content-type-options": "nosniff",
}
_TYPES = {".css": "text/css", ".js": "text/javascript"}


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(ASSETS), autoescape=select_autoescape(["html"], default=True)
    )
    env.filters.update(
        secs=format_seconds,
        when=_when,
        pretty=_pretty,
        pct=lambda value, span: f"{max(0.0, 100 * value / span):.3f}",
        css=lambda status: str(status).replace(" ", "-"),
        urlpart=lambda text: quote(str(text), safe=""),
    )
    return env


class Plans:
    """The compiled workflow of each run: a served workflow's own, else the one its run row
    stored as data (its ``call:`` modules imported, in a worker thread: an import must not
    block the loop), else none (the graph is not drawn)."""

    def __init__(self, workflows: Sequence[Workflow] = ()) -> None:
        self.known = {wf.name: wf for wf in workflows}
        self.loaded: dict[tuple[str, str], tuple[Plan | None, str | None]] = {}

    async def plan_for(self, run: RunRow) -> tuple[Plan | None, str | None]:
        """The run's plan and, when there is none, a note saying why."""
        wf = self.known.get(run.workflow)
        if wf is not None:
            return wf.compiled(), None
        if run.definition is None and run.source is None:
            return None, "This workflow has no data form (a lambda or a local function): no graph."
        key = (run.workflow, run.definition or run.source or "")
        if key not in self.loaded:
            self.loaded[key] = await anyio.to_thread.run_sync(self._load, run)
        return self.loaded[key]

    @staticmethod
    def _load(run: RunRow) -> tuple[Plan | None, str | None]:
        try:
            return Catalog()(run).compiled(), None
        except (DefinitionError, LoadError) as exc:
            return None, f"The workflow cannot be loaded here ({exc}): no graph."


class Viewer:
    """The pages over one store. ``fixed``: show only this workflow's runs."""

    def __init__(
        self, store: RunStore, plans: Plans, fixed: str | None, deadline: float | None
    ) -> None:
        self.store, self.plans, self.fixed, self.deadline = store, plans, fixed, deadline
        self.templates = _templates()
        for name in ("runs.html", "run.html", "body.html", "node.html"):
            self.templates.get_template(name)  # compiled now, not on the loop at first request
        # Read once, here: serving them reads no file on the loop.
        self.assets = {path.name: path.read_bytes() for path in ASSETS.glob("viewer.*")}
        self.poll = 0.25  # seconds between reads of a followed run
        self.tick = 1.0  # a running run's page is redrawn at least this often (its bars grow)

    async def _html(self, template: str, **values: Any) -> HTMLResponse:
        """The page, rendered in a worker thread: a run of thousands of nodes takes a tenth of a
        second to render, which the app's loop must not wait for."""
        page = self.templates.get_template(template)
        text = await anyio.to_thread.run_sync(
            functools.partial(page.render, box_w=BOX_W, box_h=BOX_H, **values)
        )
        return HTMLResponse(text, headers=_HEADERS)

    async def runs(
        self, status: str = "", workflow: str = "", page: int = 1, limit: int = PAGE_SIZE
    ) -> HTMLResponse:
        """``GET /ui``: the runs, newest first; filtered by ``status`` and ``workflow``."""
        page, limit = max(page, 1), min(max(limit, 1), 500)
        chosen = self.fixed or workflow or None
        found = await self.store.list_runs(
            limit + 1, status or None, workflow=chosen, offset=(page - 1) * limit
        )
        now = time.time()
        rows = [
            {**vars_of(run), "duration": seconds_between(run.started_at, run.finished_at, now)}
            for run in found[:limit]
        ]
        for row in rows:  # a queued run says what keeps it waiting
            if row["status"] == "queued":
                found_blockers = await self.store.blockers(row["run_id"])
                row["blocked"] = "; ".join(b.describe() for b in found_blockers)

        def query(number: int) -> str:
            size = None if limit == PAGE_SIZE else limit
            kept = {"status": status, "workflow": workflow, "limit": size, "page": number}
            return urlencode({key: value for key, value in kept.items() if value})

        return await self._html(
            "runs.html",
            root="./",
            runs=rows,
            status=status,
            workflow=workflow,
            fixed=self.fixed,
            page=page,
            more=len(found) > limit,
            query=query,
            statuses=get_args(RunStatus),
            workflows=sorted({run.workflow for run in found}),
        )

    async def _find(self, run_id: str) -> RunRow:
        run = await self.store.load_run(run_id)
        if run is None or (self.fixed is not None and run.workflow != self.fixed):
            raise HTTPException(404, f"no run {run_id!r}")
        return run

    async def _view(self, run_id: str, template: str) -> HTMLResponse:
        run = await self._find(run_id)
        plan, note = await self.plans.plan_for(run)
        view = await self._run_view(run, plan)
        children = await self.store.list_runs(limit=500, parent=run_id)
        children.sort(key=lambda child: child.run_id)
        blockers = await self.store.blockers(run_id) if run.status == "queued" else []
        return await self._html(
            template, root="../../", view=view, note=note, children=children, blockers=blockers
        )

    async def _run_view(self, run: RunRow, plan: Plan | None) -> RunView:
        """The run's page, with what its nodes wait for when it is still going."""
        waits = await self.store.waits(run.run_id) if run.status in ACTIVE else []
        return await anyio.to_thread.run_sync(
            run_view, run, plan, time.time(), self.deadline, waits
        )

    async def run(self, run_id: str) -> HTMLResponse:
        """``GET /ui/runs/{run_id}``: the run's page."""
        return await self._view(run_id, "run.html")

    async def body(self, run_id: str) -> HTMLResponse:
        """``GET /ui/runs/{run_id}/body``: the part of the run's page that changes."""
        return await self._view(run_id, "body.html")

    async def node(self, run_id: str, name: str) -> HTMLResponse:
        """``GET /ui/runs/{run_id}/nodes/{name}``: one node's input, output and error."""
        run = await self._find(run_id)
        plan, _ = await self.plans.plan_for(run)
        view = await self._run_view(run, plan)
        found = next((node for node in view.nodes if node.name == name), None)
        if found is None:
            raise HTTPException(404, f"run {run_id!r} has no node {name!r}")
        row = next((row for row in run.nodes if row.name == name), None)
        given, problem = _input(plan, run, name, found.status)
        output = None if row is None or row.output is None else json.loads(row.output)
        return await self._html(
            "node.html", node=found, input=given, input_error=problem, output=output
        )

    async def live(self, run_id: str) -> EventSourceResponse:
        """``GET /ui/runs/{run_id}/live``: ``changed`` each time the run's records change (and
        every ``tick`` seconds while it runs), then ``ended`` once it has ended."""
        await self._find(run_id)
        return EventSourceResponse(self._changes(run_id), ping=15)

    async def _changes(self, run_id: str) -> AsyncIterator[ServerSentEvent]:
        seen: object = None
        sent = anyio.current_time()
        while True:
            run = await self.store.load_run(run_id)
            if run is None or run.status not in ACTIVE:  # ended (or pruned meanwhile)
                yield ServerSentEvent(data="gone" if run is None else run.status, event="ended")
                return
            state = (run.status, [(n.name, n.status, n.attempts) for n in run.nodes])
            if state != seen or anyio.current_time() - sent >= self.tick:
                if seen is not None:
                    yield ServerSentEvent(data=run.status, event="changed")
                seen, sent = state, anyio.current_time()
            await anyio.sleep(self.poll)

    async def asset(self, name: str) -> Response:
        """``GET /ui/assets/{name}``: the stylesheet and the script."""
        content = self.assets.get(name)
        if content is None:
            raise HTTPException(404, f"no asset {name!r}")
        return Response(content, media_type=_TYPES[Path(name).suffix])


def vars_of(run: RunRow) -> dict[str, Any]:
    """A run row's fields, without its nodes (what a runs-page row shows)."""
    return {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "status": run.status,
        "started_at": run.started_at,
        "attempts": run.attempts,
    }


def _input(plan: Plan | None, run: RunRow, name: str, status: str) -> tuple[Any, str | None]:
    """A node's resolved input, or why it is not shown."""
    if plan is None:
        return None, "Not shown: the workflow's definition is not available here."
    if status in ("skip", "pending", "not run"):
        return None, f"None: the node is {status}."
    try:
        return node_input(plan.nodes[plan.index[name]], run), None
    except FlowError as exc:
        return None, f"It cannot be resolved from the stored results: {exc}"


def viewer_router(
    store: RunStore,
    workflows: Sequence[Workflow] = (),
    *,
    fixed: str | None = None,
    deadline: float | None = None,
    **router_options: Any,
) -> APIRouter:
    """An APIRouter with the viewer's pages under ``/ui`` (see the module docstring)."""
    viewer = Viewer(store, Plans(workflows), fixed, deadline)
    router = APIRouter(**router_options)
    html: Mapping[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    router.add_api_route("/ui", viewer.runs, methods=["GET"], **html)
    router.add_api_route(
        "/ui/assets/{name}", viewer.asset, methods=["GET"], include_in_schema=False
    )
    router.add_api_route("/ui/runs/{run_id}", viewer.run, methods=["GET"], **html)
    router.add_api_route("/ui/runs/{run_id}/body", viewer.body, methods=["GET"], **html)
    router.add_api_route("/ui/runs/{run_id}/nodes/{name}", viewer.node, methods=["GET"], **html)
    router.add_api_route(
        "/ui/runs/{run_id}/live",
        viewer.live,
        methods=["GET"],
        response_class=EventSourceResponse,
        include_in_schema=False,
    )
    return router


__all__: Sequence[str] = ["Plans", "Viewer", "viewer_router"]
