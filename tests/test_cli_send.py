"""``flowrt signal RUN_ID SIGNAL [--payload JSON] [--key K] --store URL``, through subprocess:
the ``SignalSent`` as JSON and exit 0; exit 1 for no such run, 2 for an ended run or a key
conflict, 3 for a bad payload; one line on stderr, no traceback; nothing kept when it fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowrt import SQLiteStore
from flowrt._catalog import python_object

pytestmark = pytest.mark.anyio

FLOWRT = str(Path(sys.executable).parent / "flowrt")
APP = """
from pydantic import BaseModel
from flowrt import Workflow

class Approval(BaseModel):
    approved: bool
    by: str

wf = Workflow("cli_approval")

@wf.node
def draft(amount: int) -> int:
    return amount

wf.wait("approve", signal="approval", schema=Approval, depends=[draft])
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def flowrt_signal(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWRT, "signal", *args, "--store", str(cwd / "runs.db")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_flowrt_signal_answers_and_exits_as_documented(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    wf = python_object(str(tmp_path / "app.py"), "wf")
    store = SQLiteStore(tmp_path / "runs.db")
    queued = await wf.submit({"amount": 3}, store=store, run_id="queued")
    ended = await wf.submit({"amount": 4}, store=store, run_id="ended")
    await wf.signal(ended, "approval", {"approved": True, "by": "ana"}, store=store)
    assert (await wf.resume(ended, store=store)).status == "success"
    good = '{"approved": true, "by": "ana"}'
    (tmp_path / "payload.json").write_text(good, encoding="utf-8")
    done = {
        "sent": flowrt_signal(tmp_path, queued, "approval", "--payload", good, "--key", "k"),
        "again": flowrt_signal(tmp_path, queued, "approval", "--payload", good, "--key", "k"),
        "file": flowrt_signal(tmp_path, queued, "approval", "--payload", "@payload.json"),
        "no run": flowrt_signal(tmp_path, "nope", "approval", "--payload", good),
        "ended": flowrt_signal(tmp_path, ended, "approval", "--payload", good),
        "conflict": flowrt_signal(
            tmp_path, queued, "approval", "--payload", '{"approved": false, "by": "b"}',
            "--key", "k",
        ),
        "not json": flowrt_signal(tmp_path, queued, "approval", "--payload", "{nope"),
        "schema": flowrt_signal(tmp_path, queued, "approval", "--payload", '{"approved": 1}'),
        "undeclared": flowrt_signal(tmp_path, queued, "other", "--payload", "1"),
    }  # fmt: skip
    codes = {why: (run.returncode, run.stderr.count("\n")) for why, run in done.items()}
    assert codes == {
        "sent": (0, 0),
        "again": (0, 0),
        "file": (0, 0),
        "no run": (1, 1),
        "ended": (2, 1),
        "conflict": (2, 1),
        "not json": (3, 1),
        "schema": (3, 1),
        "undeclared": (3, 1),
    }
    answers = [json.loads(done[why].stdout) for why in ("sent", "again", "file")]
    assert [(a["seq"], a["duplicate"]) for a in answers] == [(1, False), (1, True), (2, False)]
    assert answers[0] == {"run_id": "queued", "signal": "approval", "seq": 1, "duplicate": False}
    assert "payload.by" in done["schema"].stderr or "by" in done["schema"].stderr
    assert "Traceback" not in "".join(run.stderr for run in done.values())
    assert [s.seq for s in await store.signals(queued)] == [1, 2]
    store.close()
