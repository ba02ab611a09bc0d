"""What the run viewer shows, as data: a stored run's nodes with their status, their place in
the graph and their attempts on a timeline, and one node's resolved input. Pure: no I/O; the
pages (``_ui``) only render it.

Times on the timeline are seconds from the run's start. A node with no record yet is
``running`` while the run is active and every dependency has finished (it started when the last
one finished), else ``pending``; in a run that ended, ``not run``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._diagram import stages
from .._engine.planned import Plan, PlanNode
from .._store.mailbox import OpenWait
from .._store.records import NodeRow, RunRow, ran_out_of_time, trace_of

ACTIVE = frozenset({"queued", "running", "waiting", "retrying"})
"""Run statuses of a run that is still going (its page follows it live)."""

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 168, 44, 76, 20, 16
"""The graph's geometry, in SVG units: node boxes, the gaps between columns and rows."""

MAX_GRAPH = 400
"""Above this many nodes the graph is not drawn (the timeline and the list still are)."""


@dataclass(slots=True)
class Bar:
    """One piece of a node's timeline row: an attempt (``ok``, ``failed``, ``timeout``,
    ``running``) or a retry wait (``wait``), from ``start`` to ``end`` seconds."""

    kind: str
    start: float
    end: float
    label: str


@dataclass(slots=True)
class NodeView:
    """One node as the run page shows it; a node waiting now (a wait or a sleep) has the
    ``signal`` it waits for (None for a sleep) and its ``due`` time (``YYYY-MM-DD HH:MM:SS
    UTC``; None: no timeout)."""

    name: str
    kind: str
    status: str
    attempts: int = 0
    duration: float = 0.0
    reason: str | None = None
    error: dict[str, str] | None = None
    x: int = 0
    y: int = 0
    bars: list[Bar] = field(default_factory=list)
    signal: str | None = None
    due: str | None = None


@dataclass(slots=True)
class EdgeView:
    """A dependency drawn from ``source`` to ``target``; ``label`` is a Choice option, whose
    ``state`` is ``taken`` or ``not-taken`` once the Choice has decided."""

    source: str
    target: str
    path: str
    label: str | None = None
    state: str = ""
    label_x: float = 0.0
    label_y: float = 0.0


@dataclass(slots=True)
class RunView:
    """A run's page: its row, its nodes in plan order, the graph's edges and size, and the
    timeline's span (seconds) with the run deadline when known."""

    run: RunRow
    nodes: list[NodeView]
    edges: list[EdgeView]
    width: int
    height: int
    span: float
    duration: float
    deadline: float | None
    graph: bool
    active: bool


def seconds_between(start: str, end: str | None, now: float) -> float:
    """Seconds from ISO time ``start`` to ``end`` (or to wall-clock ``now``), never negative."""
    begin = datetime.fromisoformat(start).timestamp()
    finish = datetime.fromisoformat(end).timestamp() if end else now
    return max(0.0, finish - begin)


def format_seconds(value: float | None) -> str:
    """A duration for people: ``0 ms``, ``12 ms``, ``1.25 s``, ``3 min 04 s``, ``2 h 05 min``."""
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(int(value), 60)
    return (
        f"{minutes} min {seconds:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


def _bars(row: NodeRow) -> list[Bar]:
    bars = []
    for attempt in trace_of(row.trace, row.duration):
        end = attempt.started + attempt.duration
        kind, why = "ok", ""
        if attempt.error is not None:
            kind = "timeout" if attempt.error.type == "TimeoutError" else "failed"
            why = f": {attempt.error.type}: {attempt.error.message:.200}"
        label = f"attempt {attempt.attempt}, {format_seconds(attempt.duration)}{why}"
        bars.append(Bar(kind, attempt.started, end, label))
        if attempt.wait:
            wait = f"retry wait {format_seconds(attempt.wait)}"
            bars.append(Bar("wait", end, end + attempt.wait, wait))
    return bars


def _status(
    pn: PlanNode | None, row: NodeRow | None, rows: dict[str, NodeRow], active: bool
) -> str:
    if row is not None:
        return row.status
    if not active:
        return "not run"
    return "pending" if pn is None else _pending_or_running(pn, rows)


def _pending_or_running(pn: PlanNode, rows: dict[str, NodeRow]) -> str:
    deps = pn.visible[1:]  # after "input": its dependencies' names
    done = all(name in rows and rows[name].status != "waiting" for name in deps)
    return "running" if done else "pending"


def _ends(bars: Sequence[Bar]) -> float:
    return max((bar.end for bar in bars), default=0.0)


def run_view(
    run: RunRow,
    plan: Plan | None,
    now: float,
    deadline: float | None = None,
    waits: Sequence[OpenWait] = (),
) -> RunView:
    """The page of ``run`` (``plan``: its workflow compiled, None when it has no data form),
    at wall-clock ``now``; ``deadline`` is the run's timeout in seconds, when known; ``waits``
    are its nodes that wait now (``RunStore.waits``)."""
    active = run.status in ACTIVE
    duration = seconds_between(run.started_at, None if active else run.finished_at, now)
    rows = {row.name: row for row in run.nodes}
    names = [pn.name for pn in plan.nodes] if plan else [row.name for row in run.nodes]
    nodes = []
    for name in names:
        pn = plan.nodes[plan.index[name]] if plan else None
        row = rows.get(name)
        view = NodeView(name, pn.kind if pn else "task", _status(pn, row, rows, active))
        if row is not None:
            view.attempts, view.duration, view.reason = row.attempts, row.duration, row.reason
            view.error, view.bars = row.error, _bars(row)
        nodes.append(view)
    _running_bars(nodes, plan, duration)
    _waiting(nodes, waits)
    if deadline is None and ran_out_of_time(run):
        deadline = run.timeout
    span = max([duration, deadline or 0.0, *(_ends(view.bars) for view in nodes)]) or 1.0
    graph = plan is not None and len(plan.nodes) <= MAX_GRAPH
    edges, width, height = _layout(nodes, plan, rows) if graph and plan else ([], 0, 0)
    return RunView(run, nodes, edges, width, height, span, duration, deadline, graph, active)


def _running_bars(nodes: list[NodeView], plan: Plan | None, now: float) -> None:
    """Open bars for the running nodes: from their last dependency's end until ``now``."""
    if plan is None:
        return
    by_name = {view.name: view for view in nodes}
    for view in nodes:
        if view.status == "running":
            deps = plan.nodes[plan.index[view.name]].visible[1:]
            start = max((_ends(by_name[dep].bars) for dep in deps), default=0.0)
            view.bars = [Bar("running", start, max(start, now), "running")]


def _waiting(nodes: list[NodeView], waits: Sequence[OpenWait]) -> None:
    """Mark the nodes that wait now with their signal and due time."""
    by_name = {view.name: view for view in nodes}
    for wait in waits:
        view = by_name.get(wait.node)
        if view is None:
            continue
        view.status, view.signal = "waiting", wait.signal
        if wait.due is not None:
            view.due = datetime.fromtimestamp(wait.due, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _layout(
    nodes: list[NodeView], plan: Plan, rows: dict[str, NodeRow]
) -> tuple[list[EdgeView], int, int]:
    """Place nodes in columns by dependency depth; draw every edge around the nodes it passes
    (``route``), labelled with its Choice option, and mark the options a decided Choice took
    or did not."""
    by_name = {view.name: view for view in nodes}
    columns = stages(plan)
    tops: list[list[int]] = []
    for column, names in enumerate(columns):
        for row_number, name in enumerate(names):
            view = by_name[name]
            view.x = MARGIN + column * (BOX_W + GAP_X)
            view.y = MARGIN + row_number * (BOX_H + GAP_Y)
        tops.append([by_name[name].y for name in names])
    edges = [
        _edge(pn, dep, option, by_name, rows, plan, tops)
        for pn in plan.nodes
        for dep, option in pn.edges
    ]
    width = 2 * MARGIN + len(columns) * BOX_W + max(0, len(columns) - 1) * GAP_X
    tallest = max((len(names) for names in columns), default=0)
    height = 2 * MARGIN + tallest * BOX_H + max(0, tallest - 1) * GAP_Y
    return edges, width, height


def _column(x: float) -> int:
    return round((x - MARGIN) / (BOX_W + GAP_X))


def _free_y(tops: Sequence[int], guess: float) -> float:
    """A height at which a line crosses a column without touching its boxes (whose tops are
    ``tops``): ``guess`` when it is clear, else the nearest gap's middle."""
    clear = 4
    if not any(top - clear <= guess <= top + BOX_H + clear for top in tops):
        return guess
    gaps = [tops[0] - GAP_Y / 2, tops[-1] + BOX_H + GAP_Y / 2]
    gaps += [(a + BOX_H + b) / 2 for a, b in itertools.pairwise(tops)]
    return min(gaps, key=lambda gap: abs(gap - guess))


def route(
    start: tuple[float, float], end: tuple[float, float], tops: Sequence[Sequence[int]]
) -> list[tuple[float, float]]:
    """The points an edge passes from ``start`` (a box's right side) to ``end`` (a box's
    left side): across each column between them, a straight run at a height clear of that
    column's boxes. Between columns it is drawn as a curve (``path``)."""
    (x1, y1), (x2, y2) = start, end
    first, last = _column(x1 - BOX_W), _column(x2)
    points = [start]
    for column in range(first + 1, last):
        guess = y1 + (y2 - y1) * (column - first) / (last - first)
        y = _free_y(tops[column], guess)
        left = MARGIN + column * (BOX_W + GAP_X)
        points += [(left, y), (left + BOX_W, y)]
    return [*points, end]


def path(points: Sequence[tuple[float, float]]) -> str:
    """SVG path data through ``points``: straight across a column, a curve with level ends
    between columns (it stays between them)."""
    (x, y), *rest = points
    parts = [f"M{x:.0f},{y:.0f}"]
    for number, (nx, ny) in enumerate(rest):
        if number % 2:  # across a column
            parts.append(f"L{nx:.0f},{ny:.0f}")
        else:
            middle = (x + nx) / 2
            parts.append(f"C{middle:.0f},{y:.0f} {middle:.0f},{ny:.0f} {nx:.0f},{ny:.0f}")
        x, y = nx, ny
    return " ".join(parts)


def _edge(
    pn: PlanNode,
    dep: int,
    option: str | None,
    by_name: dict[str, NodeView],
    rows: dict[str, NodeRow],
    plan: Plan,
    tops: Sequence[Sequence[int]],
) -> EdgeView:
    source, target = by_name[plan.nodes[dep].name], by_name[pn.name]
    points = route((source.x + BOX_W, source.y + BOX_H / 2), (target.x, target.y + BOX_H / 2), tops)
    (x1, y1), (nx, ny) = points[0], points[1]
    # the label on the first stretch, between the source's column and the next: no box there
    edge = EdgeView(
        source.name, target.name, path(points), option, "", (x1 + nx) / 2, (y1 + ny) / 2 - 4
    )
    decided = rows.get(source.name)
    if option is not None and decided is not None and decided.status == "success":
        taken = decided.output is not None and json.loads(decided.output) == option
        edge.state = "taken" if taken else "not-taken"
    return edge


def node_input(pn: PlanNode, run: RunRow) -> Any:
    """What node ``pn`` was given, resolved again from the run's input and the stored results
    of its dependencies (selectors and templates are pure): its parameters by name (a map's
    ``items`` too); a Choice's conditions read the results, so it has none.

    Raises:
        InputError: the input cannot be resolved from what is stored.
    """
    results: dict[str, Any] = {"input": json.loads(run.input)}
    for row in run.nodes:
        output = None if row.output is None else json.loads(row.output)
        results[row.name] = {"status": row.status, "output": output, "error": row.error}
    if pn.kind == "choice":
        return None
    args, kwargs = pn.arguments(results)
    given = {name: value for (name, _), value in zip(pn.positional, args, strict=True)}
    given.update(kwargs)
    if pn.items is not None:
        given["items"] = pn.items(pn.data(results))
    return given


__all__: Sequence[str] = [
    "ACTIVE",
    "Bar",
    "EdgeView",
    "NodeView",
    "RunView",
    "format_seconds",
    "node_input",
    "run_view",
    "seconds_between",
]
