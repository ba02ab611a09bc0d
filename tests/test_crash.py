"""The crash harness: a process running a 30-node workflow against a SQLite store is SIGKILLed
at seeded random moments, then the run is finished by a fresh process (some seeds kill that
one too). Whatever the moment: the run succeeds with the output of an uninterrupted run, no
success stored before a kill ever runs again, every node is recorded, and the stored outputs
and attempt counts of those successes do not change."""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash_app import INPUT, Calls, build

from flowrt import SQLiteStore

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]
APP = Path(__file__).resolve().parent / "crash_app.py"
KILLS = 32
CALLS = 35  # node and map-item calls in an uninterrupted run (3 flaky nodes call twice)


def stored(path: Path) -> dict[str, tuple[str, Any, int]]:
    """Each node's last stored record: (status, output, attempts)."""
    if not path.exists():
        return {}
    with closing(sqlite3.connect(path)) as db:
        try:
            rows = db.execute("SELECT name, status, output, attempts FROM nodes").fetchall()
        except sqlite3.OperationalError:  # killed before it made its tables
            return {}
    return {name: (status, output, attempts) for name, status, output, attempts in rows}


def calls(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


async def owner(
    store: Path,
    calls_file: Path,
    run_id: str,
    kill: tuple[int, float] | None,
    lease: float | None = None,
) -> str:
    """Run crash_app in a fresh process; with ``kill = (n, delay)``, SIGKILL it ``delay``
    seconds after it has made ``n`` more node calls (unless it ends first). With ``lease``,
    the store's lease is that long and the process must take the run at once."""
    command = [sys.executable, str(APP), str(store), str(calls_file), run_id]
    command += [] if lease is None else [str(lease)]
    target = None if kill is None else sum(calls(calls_file).values()) + kill[0]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        if kill is not None:
            with anyio.move_on_after(30):
                while process.returncode is None and sum(calls(calls_file).values()) < target:
                    await anyio.sleep(0.003)
            await anyio.sleep(kill[1])
            if process.returncode is None:
                process.kill()
                await process.wait()
                return ""
        text = b"".join([chunk async for chunk in process.stdout]).decode()
        assert await process.wait() == 0
        return text


async def reference_output(tmp_path: Path) -> Any:
    with SQLiteStore(tmp_path / "reference.db") as store:
        result = await build(store, Calls(str(tmp_path / "reference.calls"))).run(INPUT)
    assert result.status == "success"
    return result.output


async def crash_and_finish(tmp_path: Path, seed: int, expected: Any) -> None:
    rng = random.Random(seed)
    store, calls_file = tmp_path / f"s{seed}.db", tmp_path / f"s{seed}.calls"
    await owner(store, calls_file, "run", (rng.randrange(CALLS), rng.uniform(0, 0.03)))
    if seed % 4 == 3:  # the first process to finish it is killed as well
        await owner(store, calls_file, "run", (rng.randrange(1, 12), rng.uniform(0, 0.03)))
    at_kill = stored(store)
    kept = {name: row for name, row in at_kill.items() if row[0] == "success"}
    parked = {name: row[2] for name, row in at_kill.items() if row[0] == "waiting"}
    before = calls(calls_file)
    result = json.loads(await owner(store, calls_file, "run", None))
    after = calls(calls_file)
    assert (result["status"], result["output"]) == ("success", expected), seed
    final = stored(store)
    assert len(final) == 30, (seed, sorted(final))
    assert {row[0] for row in final.values()} == {"success", "skip"}
    for name, row in kept.items():
        assert after[name] == before[name], (seed, name)  # a stored success never ran again
        assert final[name] == row, (seed, name)  # its output and attempts are unchanged
    for name, attempts in parked.items():  # in a retry wait at the kill: the next attempt
        assert final[name][2] > attempts, (seed, name)


@pytest.mark.timeout(240)
async def test_killed_at_random_moments_a_run_finishes_without_rerunning_successes(
    tmp_path: Path,
) -> None:
    expected = await reference_output(tmp_path)
    limiter = anyio.CapacityLimiter(3)

    async def one(seed: int) -> None:
        async with limiter:
            await crash_and_finish(tmp_path, seed, expected)

    async with anyio.create_task_group() as tg:
        for seed in range(KILLS):
            tg.start_soon(one, seed)
