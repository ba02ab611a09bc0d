"""The documentation site as a reader gets it: ``mkdocs build --strict`` from the checkout (no
broken link, page left out of the nav, or unresolved reference), served over loopback and read
in Debian's chromium (Playwright through ``executable_path``): the home page links every guide,
a guide's sample and the search box are there, and the reference pages hold what the code
says (every command's ``--help``, the file format's schema, the API's classes). With
``FLOWRT_SCREENSHOTS=1`` it saves two pages' screenshots in ``docs/screenshots/``."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("mkdocs")

from test_ui_browser import need_chromium  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site, built strictly into a temporary folder and served on a loopback port."""
    folder = tmp_path_factory.mktemp("site")
    mkdocs = str(Path(sys.executable).parent / "mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def page(site: str) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=need_chromium())
        try:
            opened = browser.new_page(viewport={"width": 1280, "height": 800})
            opened.set_default_timeout(15_000)
            yield opened
        finally:
            browser.close()


def shot(page: object, name: str) -> None:
    if os.environ.get("FLOWRT_SCREENSHOTS") == "1":
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(exist_ok=True)
        page.screenshot(path=str(folder / name), full_page=False)  # type: ignore[attr-defined]


def test_the_home_page_links_every_guide_and_searches(page: object, site: str) -> None:
    page.goto(f"{site}/")  # type: ignore[attr-defined]
    nav = page.locator("nav.md-nav--primary").inner_text()  # type: ignore[attr-defined]
    for title in (
        "Getting started",
        "Concepts",
        "Durable runs",
        "Workers on PostgreSQL",
        "Limits",
        "Python API",
        "Command line",
        "Performance",
        "Changelog",
    ):
        assert title in nav, title
    assert page.locator("input.md-search__input").count() == 1  # type: ignore[attr-defined]
    shot(page, "site-home.png")


def test_a_guide_shows_its_samples_and_the_reference_pages_what_the_code_says(
    page: object, site: str
) -> None:
    page.goto(f"{site}/guides/limits/")  # type: ignore[attr-defined]
    assert "RunLimit" in page.locator("article").inner_text()  # type: ignore[attr-defined]
    assert page.locator("article pre code").count() >= 2  # type: ignore[attr-defined]
    shot(page, "site-limits.png")
    page.goto(f"{site}/reference/cli/")  # type: ignore[attr-defined]
    text = page.locator("article").inner_text()  # type: ignore[attr-defined]
    for command in ("flowrt run", "flowrt runs list", "flowrt signal", "flowrt worker"):
        assert command in text, command
    page.goto(f"{site}/reference/yaml/")  # type: ignore[attr-defined]
    assert '"run_limit"' in page.locator("article").inner_text()  # type: ignore[attr-defined]
    page.goto(f"{site}/reference/api/")  # type: ignore[attr-defined]
    text = page.locator("article").inner_text()  # type: ignore[attr-defined]
    for name in ("Workflow", "RunLimit", "RateLimit", "SQLiteStore", "Worker", "PostgresStore"):
        assert name in text, name
