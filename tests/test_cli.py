"""The command line, through subprocess (as users run it)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowrt import ErrorInfo, Event

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def flowrt(*args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, "-m", "flowrt"]
        if module
        else [str(Path(sys.executable).parent / "flowrt")]
    )
    return subprocess.run(
        [*command, *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=60, check=False
    )


def test_validate_ok() -> None:
    done = flowrt("validate", "demo.yaml")
    assert (done.returncode, done.stdout) == (0, "ok: workflow 'order-pipeline', 9 nodes\n")


def test_validate_a_bad_file_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: w\nnodes:\n  - {name: a, call: 'json:dumps', error_handling: {backoff_rate: 0.5}}\n"
    )
    done = flowrt("validate", str(bad))
    assert done.returncode == 2
    assert (
        done.stderr
        == "flowrt: error: nodes[0].error_handling.backoff_rate: must be >= 1 (got 0.5)\n"
    )
    assert "Traceback" not in done.stderr


def test_run_prints_progress_and_a_table_and_exits_1_on_failure() -> None:
    done = flowrt("run", "demo.yaml", "--input", '{"sku": "KB-1"}')
    assert done.returncode == 1
    assert "fetch_price: attempt 1 failed (ConnectionError" in done.stderr
    assert "retrying in 0.05s" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("output: ")  # the run's output first, as JSON
    assert json.loads(lines[0].removeprefix("output: "))["build_page"].startswith("KB-1 at $19.99")
    assert lines[2].split() == ["node", "status", "attempts", "duration", "error", "/", "reason"]
    assert any(line.startswith("fetch_price") and "success  3" in line for line in lines)
    assert lines[-1].startswith("run failure")


def test_run_json_prints_only_the_run_result() -> None:
    done = flowrt("run", "fallback_choice.yaml", "--input", '{"query": "q"}', "--json")
    assert done.returncode == 0
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert result["output"] == {"answer": "primary hit for q", "route": "primary"}
    assert done.stderr == ""


def test_run_input_from_a_file(tmp_path: Path) -> None:
    data = tmp_path / "in.json"
    data.write_text('{"query": "q", "primary_down": true}')
    done = flowrt("run", "fallback_choice.yaml", "--input", f"@{data}", "--json")
    assert json.loads(done.stdout)["output"]["route"] == "backup"


def test_dry_run_shows_the_plan_without_calling_anything() -> None:
    done = flowrt("run", "demo.yaml", "--dry-run")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "workflow 'order-pipeline': 9 nodes in 4 stages (no function called)",
        "  stage 1: fetch_price, fetch_reviews",
        "  stage 2: route_reviews, charge_card",
        "  stage 3: rank_live_reviews, use_cached_reviews, ship_order",
        "  stage 4: build_page, email_tracking_number",
    ]
    assert "fetch_price" not in done.stderr


def test_graph_prints_mermaid_with_labelled_choice_edges() -> None:
    done = flowrt("graph", "fallback_choice.yaml", module=True)
    assert done.returncode == 0
    assert done.stdout == (
        "flowchart TD\n"
        '    n0["primary_search"]\n'
        '    n1{"route"}\n'
        '    n2["backup_search"]\n'
        '    n3["answer"]\n'
        "    n0 --> n1\n"
        "    n1 -->|backup| n2\n"
        "    n0 --> n3\n"
        "    n1 -->|primary| n3\n"
        "    n2 --> n3\n"
    )


def test_a_python_workflow_object_can_be_named() -> None:
    done = flowrt("run", "error_to_output.py:wf", "--input", '{"email": "x@y.com"}', "--json")
    assert json.loads(done.stdout)["output"]["profile"]["company"] == "y.com"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "missing.yaml"), "no such file: missing.yaml"),
        (("run", "demo.yaml", "--input", "{bad"), "--input is not valid JSON"),
        (("run", "demo.yaml", "--input", "@nowhere.json"), "--input: cannot read nowhere.json"),
        (("run", "error_to_output.py:nothing"), "has no attribute 'nothing'"),
        (("run", "demo.py:price_calls"), "is a int, not a flowrt Workflow"),
    ],
)
def test_bad_usage_exits_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    done = flowrt(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_unknown_command_is_a_usage_error() -> None:
    assert flowrt("frobnicate").returncode == 2


def test_schema_is_json_schema_of_the_file_format() -> None:
    done = flowrt("schema")
    schema = json.loads(done.stdout)
    assert set(schema["required"]) == {"name", "nodes"}
    assert "NodeFile" in schema["$defs"]


def test_progress_is_a_live_bar_on_a_terminal_and_plain_lines_elsewhere() -> None:
    from flowrt._cli.progress import LiveProgress, Progress, progress_for

    retry = Event(
        kind="node.retrying", run_id="r", node="a", attempt=1, wait=0.5,
        error=ErrorInfo(type="E", message="m\nsecond line"),
    )  # fmt: skip
    events = [
        Event(kind="node.started", run_id="r", node="a", attempt=1),
        retry,
        Event(kind="node.started", run_id="r", node="a", attempt=2),
        Event(kind="node.finished", run_id="r", node="a", attempt=2, status="success"),
        Event(kind="node.started", run_id="r", node="b", attempt=1),
        Event(kind="node.finished", run_id="r", node="b", attempt=1, status="failure",
              error=ErrorInfo(type="F", message="broke")),
        Event(kind="run.finished", run_id="r", status="failure"),
    ]  # fmt: skip
    terminal = io.StringIO()
    live = LiveProgress(2, terminal, force_terminal=True, width=80)
    for event in events:
        live(event)
    shown = terminal.getvalue()
    assert "a: attempt 1 failed (E: m), retrying in 0.5s" in shown  # above the bar, one line
    assert "b: failed (F: broke)" in shown
    assert "2/2" in shown  # the bar counted nodes done out of the total (its last render)
    assert "1 failed" in shown
    plain = io.StringIO()
    assert isinstance(progress_for(2, plain), Progress)  # not a terminal: plain lines only
    for event in events:
        progress_for(2, plain)(event)
    assert plain.getvalue() == (
        "  a: attempt 1 failed (E: m), retrying in 0.5s\n  b: failed (F: broke)\n"
    )


def test_stored_runs_list_show_and_resume(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    first = flowrt(
        "run", "fallback_choice.yaml", "--input", '{"query": "q"}', "--json", "--store", store
    )
    run_id = json.loads(first.stdout)["run_id"]
    listing = subprocess.run(
        [str(Path(sys.executable).parent / "flowrt"), "runs", "list"],
        cwd=EXAMPLES, capture_output=True, text=True, timeout=60, check=False,
        env={**__import__("os").environ, "FLOWRT_STORE": store},
    )  # fmt: skip
    assert listing.returncode == 0
    assert run_id in listing.stdout
    assert "fallback-choice" in listing.stdout
    shown = flowrt("runs", "show", run_id, "--store", store)
    assert shown.returncode == 0
    assert "primary_search" in shown.stdout
    assert "success" in shown.stdout
    resumed = flowrt("resume", run_id, "--store", store)  # workflow rebuilt from the store
    assert resumed.returncode == 0
    assert resumed.stdout.splitlines()[-1].startswith("run success")
    missing = flowrt("resume", "nope", "--store", store)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"flowrt: error: no run 'nope' in {store}"


SLOW_STEPS = """
import time
from pathlib import Path

def step(name: str, log: str) -> str:
    with open(log, "a") as file:
        file.write(name + "\\n")
    if name == "b" and Path(log).with_suffix(".broken").exists():
        raise RuntimeError("b is broken")
    time.sleep(0.5)
    return name
"""


def test_two_resumers_at_once_run_the_unfinished_node_once(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    (tmp_path / "slow_steps.py").write_text(SLOW_STEPS)
    log = tmp_path / "calls.log"
    (tmp_path / "calls.broken").touch()
    nodes = "\n".join(
        f"  - {{name: {n}, call: 'slow_steps:step', inputs: {{name: {n}, log: '{log}'}}"
        + (f", depends: [{prev}]}}" if prev else "}")
        for n, prev in (("a", None), ("b", "a"), ("c", "b"))
    )
    (tmp_path / "chain.yaml").write_text(f"name: slow-chain\nnodes:\n{nodes}\n")
    store = str(tmp_path / "runs.db")
    first = flowrt("run", str(tmp_path / "chain.yaml"), "--json", "--store", store)
    assert first.returncode == 1
    run_id = json.loads(first.stdout)["run_id"]
    (tmp_path / "calls.broken").unlink()
    with closing(sqlite3.connect(store)) as db, db:  # its owner died: running, lease expired
        db.execute("UPDATE runs SET status = 'running', owner = 'x', lease_until = 1")
    command = [str(Path(sys.executable).parent / "flowrt"), "resume", run_id, "--store", store]
    resumers = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [resumer.communicate(timeout=60) for resumer in resumers]
    codes = sorted(resumer.returncode for resumer in resumers)
    assert codes == [0, 2], outputs
    refused = next(err for (_, err), r in zip(outputs, resumers, strict=True) if r.returncode)
    assert f"run {run_id!r} is being executed" in refused
    assert log.read_text().split() == ["a", "b", "b", "c"]  # b and c ran once more, a never


HOSTILE_MODULES = {
    "boom.py": 'raise RuntimeError("boom at import")\ndef f():\n    return 1\n',
    "broken.py": "def f(:\n",
    "objs.py": "class Thing:\n    pass\ndef thing():\n    return Thing()\ndef raw():\n"
    "    return b'\\xff\\xfe'\n",
}


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    for name, text in HOSTILE_MODULES.items():
        (tmp_path / name).write_text(text)
    for name, call in (("boom", "boom:f"), ("broken", "broken:f")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: w\nnodes:\n  - {{name: a, call: '{call}'}}\n"
        )
    (tmp_path / "objs.yaml").write_text(
        "name: w\nnodes:\n  - {name: a, call: 'objs:thing'}\n  - {name: b, call: 'objs:raw'}\n"
    )
    (tmp_path / "notdb.db").write_text("not a database")
    (tmp_path / "deep.json").write_text("[" * 3000 + "]" * 3000)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["validate", "boom.yaml"],
            "importing module 'boom' failed (RuntimeError: boom at import)",
        ),
        (["validate", "broken.yaml"], "importing module 'broken' failed (SyntaxError"),
        (["run", "objs.yaml", "--store", "notdb.db"], "store notdb.db: file is not a database"),
        (["run", "objs.yaml", "--store", "missing/dir/x.db"], "unable to open database file"),
        (["runs", "list", "--store", "notdb.db"], "file is not a database"),
        (["run", "objs.yaml", "--input", "@deep.json"], "--input is nested too deep"),
    ],
)
def test_a_bad_file_or_store_exits_2_with_one_line(
    hostile: Path, args: list[str], says: str
) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flowrt"), *args],
        cwd=hostile, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("flowrt: error: ")
    assert says in done.stderr


def test_run_json_fails_nodes_whose_output_json_cannot_hold(hostile: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flowrt"), "run", "objs.yaml", "--json"],
        cwd=hostile, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (1, "")  # the run failed; nothing crashed
    result = json.loads(done.stdout)
    assert result["status"] == "failure"
    for name, what in (("a", "Thing"), ("b", "bytes")):
        error = result["nodes"][name]["error"]
        assert error["type"] == "OutputError"
        assert error["message"].startswith(f"node {name!r}: its output cannot be stored as JSON")
        assert what in error["message"]


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    reader, writer = os.pipe()
    os.close(reader)  # nobody will read: the first write fails with EPIPE
    try:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "flowrt"), "schema"],
            stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (0, "")


def test_a_stored_run_prints_its_id_and_the_table_keeps_one_line_per_node(
    tmp_path: Path,
) -> None:
    (tmp_path / "items.py").write_text(
        "def check(item):\n    if item % 2:\n"
        "        raise ValueError(f'odd {item}\\nsecond line')\n    return item\n"
    )
    (tmp_path / "items.yaml").write_text(
        "name: items\nnodes:\n  - name: each\n    call: 'items:check'\n"
        "    map: {items: [1, 2, 3, 4]}\n    error_handling: {behavior: return}\n"
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flowrt"), "run", "items.yaml", "--store", "r.db"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    run_id = done.stderr.splitlines()[0].split()[1]
    assert done.stderr.splitlines()[0] == f"run {run_id} (stored in r.db)"
    row = next(line for line in done.stdout.splitlines() if line.startswith("each"))
    assert row.endswith("2 of 4 items failed; item 0: ValueError: odd 1")  # first line only
    assert "second line" not in done.stdout.split("\n\n", 1)[1]


def test_a_stored_run_resumes_from_another_folder(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "steps.py").write_text(
        "import os\n"
        "def flaky():\n"
        "    if not os.path.exists(os.environ['FIXED']):\n"
        "        raise RuntimeError('not yet')\n"
        "    return 'fixed'\n"
    )
    (project / "wf.yaml").write_text("name: moved\nnodes:\n  - {name: a, call: 'steps:flaky'}\n")
    store, fixed = tmp_path / "runs.db", tmp_path / "fixed"
    command = [str(Path(sys.executable).parent / "flowrt")]
    env = {**os.environ, "FIXED": str(fixed)}
    first = subprocess.run(
        [*command, "run", str(project / "wf.yaml"), "--json", "--store", str(store)],
        cwd=project, capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert first.returncode == 1
    fixed.touch()
    resumed = subprocess.run(
        [*command, "resume", json.loads(first.stdout)["run_id"], "--store", str(store)],
        cwd=elsewhere, capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert (resumed.returncode, resumed.stderr) == (0, "")
    assert resumed.stdout.splitlines()[-1].startswith("run success")
