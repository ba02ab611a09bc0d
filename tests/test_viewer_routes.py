"""The run viewer's graph routes edges around nodes: an edge that skips columns crosses each
one at a height clear of its boxes, and a Choice option's label sits between the Choice's
column and the next, where no box is. Checked by sampling every drawn curve, on hand-made
and random DAGs."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from flowrt import Condition, Workflow
from flowrt._store.records import RunRow
from flowrt._web.viewer import BOX_H, BOX_W, EdgeView, NodeView, run_view

NUMBER = r"(-?\d+(?:\.\d+)?)"


def samples(d: str) -> list[tuple[float, float]]:
    """Points along SVG path data made of M, L and C commands (20 per segment)."""
    tokens = re.findall(rf"([MLC])|{NUMBER},{NUMBER}", d)
    points: list[tuple[float, float]] = []
    command, pending, current = "", [], (0.0, 0.0)
    for letter, x, y in tokens:
        if letter:
            command = letter
            continue
        pending.append((float(x), float(y)))
        if command == "M":
            current, pending = pending[0], []
        elif command == "L":
            points += [_lerp(current, pending[0], t / 20) for t in range(21)]
            current, pending = pending[0], []
        elif command == "C" and len(pending) == 3:
            points += [_bezier(current, *pending, t / 20) for t in range(21)]
            current, pending = pending[2], []
    return points


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def _bezier(*points: tuple[float, float]) -> tuple[float, float]:
    *controls, t = points
    p0, p1, p2, p3 = controls
    u = 1 - t  # type: ignore[operator]
    x = u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0]  # type: ignore[operator]
    y = u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1]  # type: ignore[operator]
    return x, y


def inside(point: tuple[float, float], node: NodeView, margin: float = 1.0) -> bool:
    x, y = point
    return (
        node.x + margin < x < node.x + BOX_W - margin
        and node.y + margin < y < node.y + BOX_H - margin
    )


def clear_of_boxes(nodes: list[NodeView], edges: list[EdgeView]) -> list[str]:
    """What crosses a box: an edge passing through a node, or a label over one."""
    wrong = []
    for edge in edges:
        for node in nodes:
            if any(inside(point, node) for point in samples(edge.path)):
                wrong.append(f"{edge.source}->{edge.target} crosses {node.name}")
            if edge.label is not None:
                half = 3.5 * len(edge.label)  # 11px text: about 7px a character
                corners = [
                    (edge.label_x + dx, edge.label_y + dy) for dx in (-half, half) for dy in (-9, 2)
                ]
                if any(inside(corner, node, margin=0) for corner in corners):
                    wrong.append(f"label {edge.label!r} over {node.name}")
    return wrong


def shop() -> Workflow:
    """A Choice whose taken branch skips a column, beside a chain: the page that misled."""
    wf = Workflow("shop")
    wf.node(lambda: 1, name="fetch")
    route = wf.choice("route", {"ok": Condition("$.fetch.status", "==", "success"), "down": None})
    wf.node(lambda: 1, name="a1", depends=["fetch"])
    wf.node(lambda: 1, name="a2", depends=["a1"])
    wf.node(lambda: 1, name="a3", depends=["a2"])
    wf.node(lambda: 1, name="fallback", depends=[route["down"]])
    wf.node(lambda: 1, name="f2", depends=["fallback"])
    wf.node(lambda: 1, name="ship", depends=[route["ok"], "a3"])
    return wf


def view_of(wf: Workflow) -> tuple[list[NodeView], list[EdgeView]]:
    run = RunRow("r", wf.name, "{}", "running", "2026-12-06T00:00:00+00:00")
    view = run_view(run, wf.compiled(), now=0.0)
    return view.nodes, view.edges


def test_column_skipping_edges_and_labels_avoid_every_box() -> None:
    nodes, edges = view_of(shop())
    skipping = [e for e in edges if (e.source, e.target) == ("route", "ship")]
    assert skipping
    assert len(samples(skipping[0].path)) > 21  # it bends around the columns it crosses
    assert clear_of_boxes(nodes, edges) == []


def random_dag(seed: int, size: int) -> Workflow:
    rng = random.Random(seed)
    wf = Workflow("random")
    names: list[str] = []
    for i in range(size):
        name = f"n{i}"
        depends = rng.sample(names, k=min(len(names), rng.randint(0, 3)))
        wf.node(lambda: 1, name=name, depends=depends)
        names.append(name)
    return wf


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(2, 18))
def test_random_graphs_draw_no_edge_through_a_box(seed: int, size: int) -> None:
    nodes, edges = view_of(random_dag(seed, size))
    assert clear_of_boxes(nodes, edges) == []


def test_the_check_itself_finds_a_crossing() -> None:
    nodes, _ = view_of(shop())
    a1 = next(n for n in nodes if n.name == "a1")
    straight = f"M{a1.x - 10},{a1.y + 20} L{a1.x + BOX_W + 10},{a1.y + 20}"
    assert clear_of_boxes(nodes, [EdgeView("x", "y", straight)]) == ["x->y crosses a1"]
