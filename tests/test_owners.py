"""Owners that died are seen at once on their own host: an owner id names host, process and
the process's start, so a SIGKILLed owner's run is ``interrupted`` (and resumable by a fresh
process at once) without waiting for its lease; a stopped owner (SIGSTOP) is alive; a pid
reused by another process does not fool it; another host's owner is left to its lease."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from conftest import until
from test_crash import CALLS, calls, owner, reference_output, stored

from flowrt import RunInProgress, SQLiteStore, Worker
from flowrt._store.owners import owner_died, owner_id, process_start
from flowrt.cli import main as cli

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent
LEASE = 30.0  # far longer than any of these tests: only the dead-owner rule can free a run


def test_this_process_is_alive_and_a_reused_pid_is_not() -> None:
    mine = owner_id()
    host, pid, start, space, _ = mine.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert not owner_died(mine)
    assert owner_died(f"{host}:{pid}:{int(start) + 1}:{space}:x")  # same pid, another start


def _waiting_child() -> tuple[subprocess.Popen[bytes], str]:
    """A child process that runs until its stdin closes, and its owner id prefix."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    space = owner_id().split(":")[3]
    return child, f"{socket.gethostname()}:{child.pid}:{process_start(child.pid)}:{space}:x"


def test_an_exited_process_and_a_zombie_are_dead() -> None:
    child, its_id = _waiting_child()
    assert not owner_died(its_id)
    assert child.stdin is not None
    child.stdin.close()
    child.wait()
    assert owner_died(its_id)
    zombie, its_id = _waiting_child()
    assert zombie.stdin is not None
    zombie.stdin.close()
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert owner_died(its_id)
    zombie.wait()


def test_owners_this_host_cannot_judge_are_left_to_their_lease() -> None:
    _, _, start, space, _ = owner_id().split(":")
    assert not owner_died(f"another-host:1:{start}:{space}:x")
    assert not owner_died(f"{socket.gethostname()}:{2**22 + 7}:1:{space[::-1]}x:x")  # elsewhere
    assert not owner_died(f"{socket.gethostname()}:{2**22 + 7}:abcd1234")  # an old owner id
    assert not owner_died(None)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.timeout(240)
async def test_a_killed_owner_is_interrupted_and_resumed_at_once(tmp_path: Path) -> None:
    expected = await reference_output(tmp_path)
    limiter = anyio.CapacityLimiter(3)

    async def one(seed: int) -> None:
        rng = random.Random(seed)
        db, calls_file = tmp_path / f"k{seed}.db", tmp_path / f"k{seed}.calls"
        async with limiter:
            kill = (rng.randrange(CALLS), rng.uniform(0, 0.03))
            if await owner(db, calls_file, "run", kill, lease=LEASE):
                return  # it ended before the kill
            with SQLiteStore(db) as store:
                run = await store.load_run("run")
                assert run is not None
                assert run.status == "interrupted", seed
            kept = {n: row for n, row in stored(db).items() if row[0] == "success"}
            before = calls(calls_file)
            result = json.loads(await owner(db, calls_file, "run", None, lease=LEASE))
        assert (result["status"], result["output"]) == ("success", expected), seed
        after = calls(calls_file)
        for name in kept:
            assert after[name] == before[name], (seed, name)  # a success never ran again

    async with anyio.create_task_group() as tg:
        for seed in range(16):
            tg.start_soon(one, seed)


SLOW = """
import sys, anyio
from flowrt import SQLiteStore, Workflow
async def main() -> None:
    with SQLiteStore(sys.argv[1], lease_seconds=30, heartbeat_seconds=0.1) as store:
        wf = Workflow("slow", store=store)
        @wf.node
        async def slow() -> str:
            print("started", flush=True)
            await anyio.sleep(float(sys.argv[2]))
            return "done"
        await wf.run(run_id="s")
anyio.run(main)
"""


def slow_owner(db: Path, seconds: float) -> subprocess.Popen[str]:
    """A process that runs run ``s`` of workflow ``slow`` on ``db`` (lease 30 s), its node
    sleeping ``seconds``; returned once the node has started."""
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    with process.stdout:
        assert process.stdout.readline() == "started\n"
    return process


def slow_workflow(store: SQLiteStore) -> object:
    from flowrt import Workflow

    wf = Workflow("slow", store=store)

    @wf.node
    async def slow() -> str:
        return "done"

    return wf


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_stopped_owner_is_never_taken_over_before_its_lease_ends(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    process = slow_owner(db, 5)
    os.kill(process.pid, signal.SIGSTOP)
    try:
        with SQLiteStore(db) as store:
            wf = slow_workflow(store)
            run = await store.load_run("s")
            assert run is not None
            assert run.status == "running"
            with pytest.raises(RunInProgress):
                await wf.resume("s")  # type: ignore[attr-defined]
            assert await Worker(store, [wf], poll_seconds=0.01).drain() == 0  # type: ignore[list-item]
            assert await store.due_runs() == []
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert process.wait(timeout=30) == 0
    with SQLiteStore(db) as store:
        run = await store.load_run("s")
        assert run is not None
        assert run.status == "success"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_worker_takes_a_killed_owners_run_at_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    process = slow_owner(db, 60)
    process.kill()
    process.wait()
    with SQLiteStore(db) as store:
        wf = slow_workflow(store)
        assert [r.run_id for r in await store.list_runs(status="interrupted")] == ["s"]
        assert await store.list_runs(status="running") == []
        assert await Worker(store, [wf], poll_seconds=0.01).drain() == 1  # type: ignore[list-item]
        await until(lambda: _ended(store), what="the run to end")


async def _ended(store: SQLiteStore) -> bool:
    run = await store.load_run("s")
    return run is not None and run.status == "success"


def test_the_cli_lists_a_killed_owners_run_as_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    process = slow_owner(db, 60)
    assert cli(["runs", "list", "--store", str(db)]) == 0
    assert "running" in capsys.readouterr().out
    process.kill()
    process.wait()
    assert cli(["runs", "list", "--status", "interrupted", "--store", str(db)]) == 0
    listed = capsys.readouterr().out
    assert "interrupted" in listed
    assert "s " in listed
