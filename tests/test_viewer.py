"""What the run viewer shows, computed from stored runs (``flowrt._web.viewer``): node statuses,
one timeline bar per attempt with the retry waits between, timeouts, the taken Choice branch,
running and pending nodes of a run in progress, the deadline, and each node's input resolved
again from the stored results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import viewer_flows

from flowrt import SQLiteStore, Workflow
from flowrt._store.records import RunRow, node_text, trace_json
from flowrt._web.viewer import format_seconds, node_input, run_view

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def stored_shop_run(tmp_path: Path) -> RunRow:
    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await viewer_flows.shop.run({"order_id": 7}, store=store)
        run = await store.load_run(result.run_id)
    assert run is not None
    return run


async def test_each_node_shows_its_stored_status_and_a_bar_per_attempt(tmp_path: Path) -> None:
    run = await stored_shop_run(tmp_path)
    view = run_view(run, viewer_flows.shop.compiled(), now=0.0)
    statuses = {node.name: node.status for node in view.nodes}
    assert statuses == {
        "fetch": "success", "route": "success", "backup": "skip", "slow_quote": "failure",
        "wait_gate": "success", "render": "success",
    }  # fmt: skip
    fetch = next(node for node in view.nodes if node.name == "fetch")
    assert [bar.kind for bar in fetch.bars] == ["failed", "wait", "failed", "wait", "ok"]
    attempts = [bar for bar in fetch.bars if bar.kind != "wait"]
    waits = [bar for bar in fetch.bars if bar.kind == "wait"]
    assert [bar.end - bar.start for bar in waits] == pytest.approx([0.05, 0.05])
    for before, wait, after in zip(attempts, waits, attempts[1:], strict=False):
        assert before.end == pytest.approx(wait.start)  # the wait follows its attempt
        assert wait.end <= after.start + 1e-3  # the next attempt starts once it is over
    assert "ConnectionError: upstream refused attempt 1" in attempts[0].label
    slow = next(node for node in view.nodes if node.name == "slow_quote")
    assert [bar.kind for bar in slow.bars] == ["timeout"]
    assert slow.bars[0].start >= fetch.bars[-1].end  # it started after fetch and the Choice
    assert view.span >= max(bar.end for node in view.nodes for bar in node.bars)
    assert view.deadline is None
    assert not view.active


async def test_the_taken_choice_branch_is_marked_and_the_other_is_not(tmp_path: Path) -> None:
    run = await stored_shop_run(tmp_path)
    view = run_view(run, viewer_flows.shop.compiled(), now=0.0)
    labelled = {(edge.source, edge.target, edge.label, edge.state) for edge in view.edges}
    assert ("route", "slow_quote", "primary", "taken") in labelled
    assert ("route", "backup", "backup", "not-taken") in labelled
    assert all(edge.label is None for edge in view.edges if edge.source != "route")
    boxes = {node.name: (node.x, node.y) for node in view.nodes}
    assert boxes["fetch"][0] < boxes["route"][0] < boxes["backup"][0] < boxes["wait_gate"][0]
    assert view.width > boxes["render"][0]
    assert view.height > max(y for _, y in boxes.values())


async def test_node_input_is_resolved_again_from_the_stored_results(tmp_path: Path) -> None:
    run = await stored_shop_run(tmp_path)
    plan = viewer_flows.shop.compiled()
    assert node_input(plan.nodes[plan.index["fetch"]], run) == {"order_id": 7}
    assert node_input(plan.nodes[plan.index["render"]], run) == {"items": 3}
    gate = node_input(plan.nodes[plan.index["wait_gate"]], run)
    assert gate == {"order": {"order_id": 7, "items": 3}, "gate": None}
    assert node_input(plan.nodes[plan.index["route"]], run) is None  # a Choice has no input


def shop_row(status: str, nodes: list[str]) -> RunRow:
    from flowrt._store.records import node_rows

    row = RunRow("r", "shop", json.dumps({"order_id": 1}), status, "2026-11-30T10:00:00+00:00")
    row.nodes = node_rows("r", ["[" + ", ".join(nodes) + "]"])
    return row


def test_a_running_run_shows_running_nodes_from_their_last_dependency_on() -> None:
    fetch = node_text("fetch", "success", '{"items": 3}', None, 1, 0.5, None, "0.25")
    route = node_text("route", "success", '"primary"', None, 1, 0.0, None, "0.75")
    backup = node_text("backup", "skip", None, None, 0, 0.0, "not taken", "[]")
    run = shop_row("running", [fetch, route, backup])
    started = 1796032800.0  # 2026-11-30T10:00:00Z
    view = run_view(run, viewer_flows.shop.compiled(), now=started + 2.0)
    statuses = {node.name: node.status for node in view.nodes}
    assert statuses["slow_quote"] == "running"  # its only dependency has finished
    assert statuses["wait_gate"] == statuses["render"] == "pending"
    slow = next(node for node in view.nodes if node.name == "slow_quote")
    assert [(bar.kind, bar.start, bar.end) for bar in slow.bars] == [("running", 0.75, 2.0)]
    assert view.active
    assert view.duration == pytest.approx(2.0)
    ended = shop_row("cancelled", [fetch, route, backup])
    ended.finished_at = "2026-11-30T10:00:03+00:00"
    statuses = {n.name: n.status for n in run_view(ended, viewer_flows.shop.compiled(), 0).nodes}
    assert statuses["slow_quote"] == "not run"
    assert statuses["render"] == "not run"


def test_a_waiting_node_shows_its_parked_retry_wait() -> None:
    from flowrt._models import AttemptRecord, ErrorInfo

    trace = [AttemptRecord(1, 0.1, 0.2, ErrorInfo(type="ConnectionError", message="down"), 30.0)]
    fetch = node_text(
        "fetch", "waiting", None, {"type": "ConnectionError", "message": "down"}, 1, 0.0, None,
        trace_json(trace), 1796032830.0,
    )  # fmt: skip
    view = run_view(shop_row("waiting", [fetch]), viewer_flows.shop.compiled(), 1796032801.0)
    node = view.nodes[0]
    assert node.status == "waiting"
    assert [(bar.kind, bar.start, bar.end) for bar in node.bars] == [
        ("failed", 0.1, pytest.approx(0.3)), ("wait", pytest.approx(0.3), pytest.approx(30.3)),
    ]  # fmt: skip
    assert view.span == pytest.approx(30.3)
    assert {n.status for n in view.nodes[1:]} == {"pending"}  # nothing after fetch started


async def test_a_run_that_ran_out_of_time_marks_its_deadline(tmp_path: Path) -> None:
    never = str(tmp_path / "never")  # wait_gate waits for it until the deadline
    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await viewer_flows.shop.run(
            {"order_id": 7, "gate": never}, store=store, timeout=0.4
        )
        run = await store.load_run(result.run_id)
    assert run is not None
    assert run.status == "failure"
    view = run_view(run, viewer_flows.shop.compiled(), 0)
    assert view.deadline == pytest.approx(0.4, abs=0.1)  # where the run ended
    assert run_view(run, viewer_flows.shop.compiled(), 0, deadline=0.4).deadline == 0.4
    statuses = {node.name: node.status for node in view.nodes}
    assert statuses["wait_gate"] == "failure"  # cut by the deadline
    assert statuses["render"] == "skip"


def test_a_node_timeout_is_not_the_run_deadline() -> None:
    run = shop_row("failure", [])
    run.finished_at = "2026-11-30T10:00:02.500000+00:00"
    run.error = {"type": "TimeoutError", "message": "node 'x' attempt 1 of 1 timed out after 1s"}
    assert run_view(run, viewer_flows.shop.compiled(), 0).deadline is None


def test_without_a_plan_the_stored_nodes_are_listed_and_no_graph_is_drawn() -> None:
    fetch = node_text("fetch", "success", "1", None, 1, 0.5, None, "0.0")
    view = run_view(shop_row("success", [fetch]), None, 0)
    assert [node.name for node in view.nodes] == ["fetch"]
    assert not view.graph
    assert view.edges == []


def test_a_big_workflow_is_listed_without_a_graph() -> None:
    wf = Workflow("big")
    for i in range(401):
        wf.node(lambda: None, name=f"n{i}")
    row = RunRow("r", "big", "{}", "success", "2026-11-30T10:00:00+00:00")
    view = run_view(row, wf.compiled(), 0)
    assert len(view.nodes) == 401
    assert not view.graph


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (0.0, "0 ms"), (0.0123, "12 ms"), (1.254, "1.25 s"), (184, "3 min 04 s"),
     (7500, "2 h 05 min")],
)  # fmt: skip
def test_durations_read_as_people_write_them(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text
