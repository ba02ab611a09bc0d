"""A stored run names where its workflow's code lives, so ``flowrt resume``, workers and the
viewer find it from any folder; a broken workflow file is exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from flowrt import SQLiteStore
from flowrt._catalog import Catalog
from flowrt._web.pages import Plans

FLOWRT = str(Path(sys.executable).parent / "flowrt")
APP = """
import pathlib
from flowrt import Workflow

wf = Workflow("from-a-file")
MARK = pathlib.Path(__file__).with_name("ran")
wf.node(lambda: 1, name="one")  # a lambda: no data form, only the file can rebuild it

@wf.node(depends=["one"])
def fails_once() -> str:
    first = not MARK.exists()
    MARK.write_text("yes")
    if first:
        raise ConnectionError("first run fails")
    return "second run"
"""


def flowrt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWRT, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def stored_run(db: Path) -> object:
    async def load() -> object:
        with SQLiteStore(db) as store:
            (run,) = await store.list_runs()
            return await store.load_run(run.run_id)

    return anyio.run(load)


@pytest.mark.timeout(120)
def test_a_python_file_run_is_resumed_and_drawn_from_another_folder(tmp_path: Path) -> None:
    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "app.py").write_text(APP)
    db = tmp_path / "runs.db"
    first = flowrt("run", "app.py:wf", "--store", str(db), cwd=here)
    assert first.returncode == 1, first.stderr  # fails_once failed
    run = stored_run(db)
    assert json.loads(run.source) == {"target": f"{(here / 'app.py').resolve()}:wf"}  # type: ignore[attr-defined]
    again = flowrt("resume", run.run_id, "--store", str(db), cwd=elsewhere)  # type: ignore[attr-defined]
    assert again.returncode == 0, again.stderr
    resumed = stored_run(db)
    assert resumed.status == "success"  # type: ignore[attr-defined]
    outputs = {node.name: node.output for node in resumed.nodes}  # type: ignore[attr-defined]
    assert outputs == {"one": "1", "fails_once": '"second run"'}
    plan, note = anyio.run(Plans().plan_for, resumed)
    assert note is None
    assert plan is not None
    assert [node.name for node in plan.nodes] == ["one", "fails_once"]


def test_a_workflow_defined_in_a_module_is_found_by_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mods" / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(
        "from flowrt import Workflow\nwf = Workflow('orders')\nwf.node(lambda: 7, name='n')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    from shop.flows import wf  # type: ignore[import-not-found]

    assert json.loads(wf.source) == {"target": "shop.flows", "root": str(tmp_path / "mods")}
    db = tmp_path / "runs.db"

    async def run_it() -> None:
        with SQLiteStore(db) as store:
            await wf.run(store=store)

    anyio.run(run_it)
    for name in ("shop", "shop.flows"):  # a process that never imported it
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "mods" not in p])
    found = Catalog()(stored_run(db))  # type: ignore[arg-type]
    assert found.name == "orders"
    assert found is not wf  # imported again, from the root it was stored with


def test_a_script_records_no_source() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from flowrt import Workflow; print(Workflow('s').source)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "None"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("raise RuntimeError('no config')", "RuntimeError: no config"),
        ("import no_such_module_here", "ModuleNotFoundError"),
        ("def broken(:\n", "SyntaxError"),
    ],
)
def test_a_broken_workflow_file_is_exit_2_with_one_line(
    tmp_path: Path, body: str, said: str
) -> None:
    (tmp_path / "broken.py").write_text(body)
    for command in (["run", "broken.py:wf"], ["validate", "broken.py:wf"]):
        done = flowrt(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert said in done.stderr
        assert "broken.py" in done.stderr
