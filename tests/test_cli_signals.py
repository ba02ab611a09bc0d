"""``flowrt run --store`` stopped by SIGTERM or Ctrl-C (SIGINT): the run is stored
``interrupted`` (no owner, resumable at once), the resume hint is printed, and the exit code is
143 or 130."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from flowrt import SQLiteStore

FLOWRT = str(Path(sys.executable).parent / "flowrt")
APP = """
import pathlib, time
from flowrt import Workflow

wf = Workflow("sleepy")
MARK = pathlib.Path(__file__).with_name("started")

@wf.node
def first() -> int:
    return 1

@wf.node(depends=[first])
def sleepy() -> str:
    first_time = not MARK.exists()
    MARK.write_text("yes")
    if first_time:
        time.sleep(60)
    return "awake"
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stores_the_run_interrupted_with_the_resume_hint(
    tmp_path: Path, stop: signal.Signals
) -> None:
    (tmp_path / "app.py").write_text(APP)
    db = tmp_path / "runs.db"
    command = [FLOWRT, "run", "app.py:wf", "--store", str(db)]
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # a cold start on a loaded machine takes seconds
    while not (tmp_path / "started").exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the node never started"
        time.sleep(0.02)
    process.send_signal(stop)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + stop, err
    run_id = err.splitlines()[0].split()[1]
    assert f"resume with `flowrt resume {run_id} --store {db}`" in err
    assert "Traceback" not in err

    async def stored() -> tuple[str, str | None]:
        with SQLiteStore(db) as store:
            run = await store.load_run(run_id)
            assert run is not None
            return run.status, run.owner

    assert anyio.run(stored) == ("interrupted", None)
    again = subprocess.run(
        [FLOWRT, "resume", run_id, "app.py:wf", "--store", str(db)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert anyio.run(stored)[0] == "success"
