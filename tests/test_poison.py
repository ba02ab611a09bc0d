"""Poison runs: a run that keeps killing the workers that claim it is ended ``failure`` with
``TooManyRecoveries`` after ``Worker(max_claims=...)`` claims without progress, instead of
being claimed forever; ``resume`` can still take it by hand."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from poison_app import build

from flowrt import SQLiteStore, Worker, Workflow
from flowrt._store.owners import owner_id
from flowrt._store.records import RunRow

pytestmark = pytest.mark.anyio
APP = Path(__file__).resolve().parent / "poison_app.py"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_run_that_kills_its_workers_ends_after_max_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "calls.log"
    with SQLiteStore(db) as store:
        run_id = await build(store, str(log)).submit()
    codes = []
    for _ in range(4):  # three workers die; the fourth ends the run instead of claiming it
        done = subprocess.run(
            [sys.executable, str(APP), str(db), str(log), "3"], capture_output=True, text=True
        )
        codes.append((done.returncode, done.stdout.strip()))
    assert codes == [(-9, ""), (-9, ""), (-9, ""), (0, "0")]
    assert len(log.read_text().split()) == 3  # at most max_claims executions
    with SQLiteStore(db) as store:
        run = await store.load_run(run_id)
        assert run is not None
        assert run.status == "failure"
        assert run.error is not None
        assert run.error["type"] == "TooManyRecoveries"
        assert "claimed 3 times" in run.error["message"]
        monkeypatch.setenv("POISON_CURED", "1")
        result = await build(store, str(log)).resume(run_id)  # by hand, it is taken
    assert (result.status, result["bad"].output) == ("success", "ok")


@pytest.fixture
def store(any_store: Any) -> Any:
    return any_store


def dead_owner() -> str:
    """An owner id of this host whose process does not exist (above any pid_max)."""
    _, _, start, space, _ = owner_id().split(":")
    return f"{socket.gethostname()}:{2**30 + 11}:{start}:{space}:dead"


async def test_claims_without_progress_end_the_run_on_both_stores(store: Any) -> None:
    row = RunRow("p", "wf", "{}", "queued", "2026-12-06T00:00:00+00:00")
    assert await store.enqueue(row)
    for _ in range(2):  # claimed twice by owners that die before any node finishes
        (claim,) = await store.claim_ready(dead_owner(), ["wf"], 5, max_claims=2)
        assert claim.run.run_id == "p"
    assert await store.claim_ready(owner_id(), ["wf"], 5, max_claims=2) == []
    run = await store.load_run("p")
    assert (run.status, run.error["type"]) == ("failure", "TooManyRecoveries")


async def test_a_finished_node_resets_the_count(store: Any) -> None:
    assert await store.enqueue(RunRow("p", "wf", "{}", "queued", "2026-12-06T00:00:00+00:00"))
    for _ in range(3):
        (claim,) = await store.claim_ready(dead_owner(), ["wf"], 5, max_claims=2)
        record = '["a", "success", 1, null, 1, 0.1, null, 0.0]'
        await store.write("p", claim.token, 1, [record])  # progress, then the owner dies
    (claim,) = await store.claim_ready(owner_id(), ["wf"], 5, max_claims=2)  # a 4th claim
    assert (claim.run.claim, claim.run.stalled) == (3, 0)  # as it was: 3 claims, none stalled


async def test_a_dead_owner_on_this_host_does_not_hold_its_run(store: Any) -> None:
    row = RunRow("d", "wf", "{}", "running", "2026-12-06T00:00:00+00:00")
    assert (await store.claim("d", dead_owner(), new=row)).outcome == "created"
    assert (await store.load_run("d")).status == "interrupted"
    assert [r.run_id for r in await store.list_runs(status="interrupted")] == ["d"]
    assert (await store.claim("d", owner_id())).outcome == "claimed"
    assert (await store.load_run("d")).status == "running"


async def test_another_hosts_owner_keeps_its_run_until_its_lease_ends(store: Any) -> None:
    row = RunRow("o", "wf", "{}", "running", "2026-12-06T00:00:00+00:00")
    elsewhere = "another-host:1:1:abcdef01:x"
    assert (await store.claim("o", elsewhere, new=row)).outcome == "created"
    assert (await store.claim("o", owner_id())).outcome == "busy"
    assert await store.claim_ready(owner_id(), ["wf"], 5) == []
    assert (await store.load_run("o")).status == "running"


def test_max_claims_must_be_positive(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "x.db") as store, pytest.raises(ValueError, match="max_claims"):
        Worker(store, [Workflow("w")], max_claims=0)
