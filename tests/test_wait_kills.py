"""SIGKILL in the middle of a stored wait, at seeded moments, on both stores: the wait's due
time recorded when it started holds through the kill and the restart; a signal sent before
or after the kill (or racing it) is taken exactly once; without one the wait times out at its
original due time, not later by a restart's worth; ``draft``, done before the wait, never runs
again."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import until
from wait_app import open_store

pytestmark = pytest.mark.anyio
APP = str(Path(__file__).with_name("wait_app.py"))
TIMEOUT = 2.0
SEEDS = int(os.environ.get("WAIT_KILL_SEEDS", "30"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def where(kind: str, request: pytest.FixtureRequest, path: Path) -> str:
    return str(path) if kind == "sqlite" else str(request.getfixturevalue("postgres_url"))


async def due_of(store: Any, run_id: str) -> float | None:
    waits = await store.waits(run_id)
    return waits[0].due if waits else None


async def kill_in_the_wait(store: Any, command: list[str], rng: random.Random) -> float:
    """Start the run, SIGKILL it at a seeded moment of its wait (a signal racing the kill in
    half the seeds); return the due time recorded before the kill."""
    run_id = command[4]
    async with await anyio.open_process(command) as process:
        await until(lambda: due_of(store, run_id), what="the wait started", timeout=60)
        due = await due_of(store, run_id)
        if rng.random() < 0.5:
            await anyio.sleep(rng.uniform(0, 0.2))
            await store.send_signal(run_id, "approval", '{"by":"ana"}', None)
        await anyio.sleep(rng.uniform(0, 0.3))
        with contextlib.suppress(ProcessLookupError):  # it may have finished: the signal won
            process.kill()
        await process.wait()
    assert due is not None
    return due


async def one_kill(url: str, tmp_path: Path, seed: int) -> bool:
    """One seeded kill and restart; returns whether a signal was sent."""
    rng = random.Random(seed)
    calls, run_id = tmp_path / f"{seed}.calls", f"r{seed}"
    command = [sys.executable, APP, url, str(calls), run_id, str(TIMEOUT)]
    async with open_store(url) as store:
        due = await kill_in_the_wait(store, command, rng)
        assert await due_of(store, run_id) in (due, None), seed  # None: decided before the kill
        sent = bool(await store.signals(run_id))
        if not sent and rng.random() < 0.5:  # a signal while no process is alive
            await store.send_signal(run_id, "approval", '{"by":"ana"}', None)
            sent = True
        finished = await anyio.run_process(command)
        ended = time.time()
        signals = await store.signals(run_id)
    result = json.loads(finished.stdout)
    lines = calls.read_text(encoding="utf-8").split()
    assert lines.count("draft") == 1, seed
    assert result["status"] == "success", seed
    if sent:
        assert result["nodes"]["approve"]["output"] == {"by": "ana"}, seed
        assert [s.consumed_by for s in signals] == ["approve"], seed
        assert lines[-1] == "act:approved", seed
    else:
        assert result["nodes"]["approve"]["error"]["type"] == "SignalTimeout", seed
        assert [s.consumed_by for s in signals] == [], seed
        assert due - 0.05 <= ended, seed  # not before its due time
        assert lines[-1] == "act:timeout", seed
    return sent


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_wait_killed_at_seeded_moments_keeps_its_due_time_and_its_signal(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    limiter = anyio.CapacityLimiter(3)
    outcomes: list[bool] = []

    async def one(seed: int) -> None:
        url = where(kind, request, tmp_path / f"{seed}.db")
        async with limiter:
            outcomes.append(await one_kill(url, tmp_path, seed))

    async with anyio.create_task_group() as tg:
        for seed in range(SEEDS):
            tg.start_soon(one, seed)
    assert len(outcomes) == SEEDS
    assert 0 < sum(outcomes) < SEEDS  # both: signals taken, and waits timed out
