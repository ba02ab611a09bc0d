"""The run viewer in a real headless Chromium (Debian's ``chromium``, driven by Playwright through
``executable_path``), served by ``flowrt ui`` over a SQLite store holding a finished run, a
failed one and one still running (a separate process, blocked on a gate file).

With ``FLOWRT_SCREENSHOTS=1`` the screenshots of both pages are written to ``docs/`` (the
README shows them); otherwise to the test's temporary folder. On CI (``CI=true``) a missing
Chromium is a failure, not a skip: ``make test`` installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import viewer_flows
from test_docs import served

from benchmarks.fastapi_load import free_port
from flowrt import SQLiteStore

sync_api = pytest.importorskip("playwright.sync_api")

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The viewer's colours (viewer.css) as the browser computes them.
COLOURS = {
    "success": "rgb(46, 125, 50)", "failure": "rgb(198, 40, 40)", "skip": "rgb(141, 141, 141)",
    "running": "rgb(21, 101, 192)",
}  # fmt: skip

pytestmark = pytest.mark.timeout(120)


def need_chromium() -> str:
    if CHROMIUM is None:
        message = "no chromium on PATH (make test installs Debian's chromium package)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def gated_run(db: Path, run_id: str, gate: Path) -> subprocess.Popen[bytes]:
    """A process running a ``shop`` run that waits at node ``wait_gate`` until ``gate`` exists."""
    code = (
        "import sys, anyio, viewer_flows\nfrom flowrt import SQLiteStore\n"
        f"store = SQLiteStore({str(db)!r})\n"
        f"anyio.run(lambda: viewer_flows.shop.run({{'order_id': 9, 'gate': {str(gate)!r}}}, "
        f"store=store, run_id={run_id!r}))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=HERE)
    deadline = time.monotonic() + 20
    while not stored_nodes(db, run_id) >= 4:  # fetch (3 attempts), route, backup, slow_quote
        assert process.poll() is None, "the gated run's process died"
        assert time.monotonic() < deadline, "the gated run did not reach its gate"
        time.sleep(0.05)
    return process


def stored_nodes(db: Path, run_id: str) -> int:
    async def count() -> int:
        async with SQLiteStore(db) as store:
            run = await store.load_run(run_id)
        return 0 if run is None else len(run.nodes)

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, count).result()


@dataclass
class Viewer:
    url: str
    db: Path
    tmp: Path
    finished: str
    failed: str
    running: str


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    need_chromium()
    tmp = tmp_path_factory.mktemp("viewer")
    db, gate = tmp / "runs.db", tmp / "gate"

    async def finished_runs() -> tuple[str, str]:
        async with SQLiteStore(db) as store:
            shop = await viewer_flows.shop.run({"order_id": 7}, store=store)
            broken = await viewer_flows.broken.run({}, store=store)
            await viewer_flows.skipping.run({}, store=store, run_id="skipping-run")
        return shop.run_id, broken.run_id

    finished, failed = anyio.run(finished_runs)
    runner = gated_run(db, "running-run", gate)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(HERE))  # the stored definitions import viewer_flows
    command = [sys.executable, "-m", "flowrt", "ui", "--store", str(db), "--port", str(port)]
    server = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        served(f"{url}/ui", server, seconds=30)
        yield Viewer(url, db, tmp, finished, failed, "running-run")
    finally:
        gate.touch()
        server.terminate()
        runner.wait(timeout=20)
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(viewer: Viewer) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=need_chromium())
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.dialogs = dialogs
    try:
        yield opened
    finally:
        context.close()


def screenshot(page: Any, viewer: Viewer, name: str) -> Path:
    folder = DOCS if os.environ.get("FLOWRT_SCREENSHOTS") == "1" else viewer.tmp
    folder.mkdir(exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a real picture, not an empty page
    return path


def test_the_runs_page_lists_a_finished_and_a_running_run(page: Any, viewer: Viewer) -> None:
    page.goto(f"{viewer.url}/ui")
    rows = page.locator("tr.run")
    statuses = {
        rows.nth(i).get_attribute("data-run"): rows.nth(i).locator(".badge").inner_text()
        for i in range(rows.count())
    }
    assert statuses == {
        viewer.finished: "success",
        viewer.failed: "failure",
        "skipping-run": "success",
        "running-run": "running",
    }
    assert page.locator("tr.run").first.get_attribute("data-run") == "running-run"  # newest
    screenshot(page, viewer, "viewer-runs.png")
    page.select_option("select[name=status]", "running")  # the filter, used as a person would
    page.click("button[type=submit]")
    page.wait_for_url("**status=running**")
    assert [rows.nth(i).get_attribute("data-run") for i in range(rows.count())] == ["running-run"]
    page.click("text=running-run")
    page.wait_for_url("**/ui/runs/running-run")
    assert page.locator("#run-status").inner_text() == "running"


def test_the_run_page_colours_every_node_by_its_status(page: Any, viewer: Viewer) -> None:
    page.goto(f"{viewer.url}/ui/runs/{viewer.finished}")
    expected = {
        "fetch": "success", "route": "success", "backup": "skip", "slow_quote": "failure",
        "wait_gate": "success", "render": "success",
    }  # fmt: skip
    for name, status in expected.items():
        rect = page.locator(f"svg [data-node={name}] rect")
        stroke = rect.evaluate("el => getComputedStyle(el).stroke")
        assert stroke == COLOURS[status], name
        assert page.locator(f"svg [data-node={name}] .state").text_content().startswith(status)
    taken = page.locator("svg text.edge-label.taken")
    assert taken.text_content() == "primary"
    screenshot(page, viewer, "viewer-run.png")
    page.goto(f"{viewer.url}/ui/runs/running-run")
    stroke = page.locator("svg [data-node=wait_gate] rect").evaluate(
        "el => getComputedStyle(el).stroke"
    )
    assert stroke == COLOURS["running"]


CROSSINGS = """() => {
  const boxes = [...document.querySelectorAll("svg g.node rect")].map(r => [
    r.closest("g").dataset.node, r.getBoundingClientRect()]);
  const inside = (x, y, b, m) =>
    x > b.left + m && x < b.right - m && y > b.top + m && y < b.bottom - m;
  const wrong = [];
  for (const path of document.querySelectorAll("svg path.edge")) {
    const matrix = path.getScreenCTM(), length = path.getTotalLength();
    for (let i = 0; i <= 100; i++) {
      const p = path.getPointAtLength(length * i / 100).matrixTransform(matrix);
      for (const [name, b] of boxes) {
        const edge = path.querySelector("title").textContent;
        if (inside(p.x, p.y, b, 1)) wrong.push(edge + " over " + name);
      }
    }
  }
  for (const label of document.querySelectorAll("svg text.edge-label")) {
    const l = label.getBoundingClientRect();
    for (const [name, b] of boxes) {
      if (l.left < b.right && l.right > b.left && l.top < b.bottom && l.bottom > b.top)
        wrong.push("label " + label.textContent + " over " + name);
    }
  }
  return [...new Set(wrong)];
}"""


def test_edges_go_around_nodes_and_labels_stay_readable(page: Any, viewer: Viewer) -> None:
    page.goto(f"{viewer.url}/ui/runs/skipping-run")
    assert page.locator("svg path.edge").count() == 7
    assert page.evaluate(CROSSINGS) == []
    taken = page.locator("svg text.edge-label.taken")
    assert taken.text_content() == "ok"
    assert taken.evaluate("el => getComputedStyle(el).visibility") == "visible"
    page.goto(f"{viewer.url}/ui/runs/{viewer.finished}")
    assert page.evaluate(CROSSINGS) == []


def test_a_node_retried_twice_has_a_bar_per_attempt(page: Any, viewer: Viewer) -> None:
    page.goto(f"{viewer.url}/ui/runs/{viewer.finished}")
    row = page.locator("li.row", has=page.locator(".label[data-node=fetch]"))
    kinds = row.locator(".bar").evaluate_all("bars => bars.map(b => b.classList[1])")
    assert kinds == ["failed", "wait", "failed", "wait", "ok"]
    boxes = [row.locator(".bar").nth(i).bounding_box() for i in range(5)]
    assert all(box is not None and box["width"] >= 1 for box in boxes)
    lefts = [box["x"] for box in boxes if box is not None]
    assert lefts == sorted(lefts)  # in time order, left to right


def test_an_html_output_renders_as_text(page: Any, viewer: Viewer) -> None:
    page.goto(f"{viewer.url}/ui/runs/{viewer.finished}")
    page.click("svg [data-node=render]")
    output = page.locator("#detail pre.output")
    output.wait_for()
    assert output.inner_text() == '"<script>alert(1)</script>"'
    assert page.locator("#detail script").count() == 0
    page.goto(f"{viewer.url}/ui/runs/{viewer.failed}")
    page.click("svg [data-node=explode]")
    assert page.locator("#detail .error").first.inner_text() == "ValueError: <b>bad</b> input"
    assert page.locator("#detail b").count() == 0
    assert page.dialogs == []


def test_the_page_is_usable_with_the_keyboard(page: Any, viewer: Viewer) -> None:
    page.goto(f"{viewer.url}/ui/runs/{viewer.finished}")
    page.locator("svg [data-node=fetch]").focus()
    page.keyboard.press("Enter")
    page.locator("#detail h2", has_text="fetch").wait_for()
    assert "ConnectionError: upstream refused attempt 1" in page.locator("#detail").inner_text()
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    focused = page.evaluate("document.activeElement.dataset.node")
    assert focused == "fetch"  # back on the node's timeline row
    page.keyboard.press("Tab")  # to the next node's row, then open it with Space
    page.keyboard.press(" ")
    page.locator("#detail h2", has_text="route").wait_for()


def test_a_running_run_updates_to_success_without_a_reload(page: Any, viewer: Viewer) -> None:
    gate = viewer.tmp / "live-gate"
    runner = gated_run(viewer.db, "live-run", gate)
    try:
        page.goto(f"{viewer.url}/ui/runs/live-run")
        assert page.locator("#run-status").inner_text() == "running"
        page.evaluate("window.notReloaded = true")
        gate.touch()
        page.locator("#run-status", has_text="success").wait_for(timeout=15_000)
        assert page.evaluate("window.notReloaded") is True  # the same document: no reload
        render = page.locator("svg [data-node=render]")
        assert "status-success" in (render.get_attribute("class") or "")
    finally:
        gate.touch()
        runner.wait(timeout=20)
