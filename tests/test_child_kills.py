"""SIGKILL of a parent's process at seeded moments around its children's start and end
(both stores): after a restart the run finishes with exactly one child run per child id (no
second child), each child's successes are never run again once stored, and every node's
keyed effect happens once."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import anyio
import pytest
from wait_app import open_store

pytestmark = pytest.mark.anyio
APP = str(Path(__file__).with_name("child_app.py"))
SEEDS = 16
CHILDREN = ["k:kyc", "k:each[0]", "k:each[1]", "k:each[2]"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


async def killed_then_finished(tmp_path: Path, seed: int, url: str | None) -> None:
    rng = random.Random(seed)
    folder = tmp_path / str(seed)
    effects = folder / "effects"
    effects.mkdir(parents=True)
    calls = folder / "calls"
    store = url or str(folder / "runs.db")
    command = [sys.executable, APP, store, str(calls), str(effects), "k"]
    target = rng.randrange(1, 12)  # kill once this many node calls have been made
    async with await anyio.open_process(command) as process:
        with anyio.move_on_after(30):
            while process.returncode is None and len(lines(calls)) < target:
                await anyio.sleep(0.002)
        await anyio.sleep(rng.uniform(0, 0.03))
        if process.returncode is None:
            process.kill()
        await process.wait()
    finished = await anyio.run_process(command)
    result = json.loads(finished.stdout)
    assert result["status"] == "success", (seed, result["error"])
    async with open_store(store) as opened:
        children = await opened.list_runs(parent="k", limit=100)
    assert sorted(run.run_id for run in children) == sorted(CHILDREN), seed
    assert {run.status for run in children} == {"success"}, seed
    keys = {f"{child}:{node}" for child in CHILDREN for node in ("check", "score")}
    assert {p.name for p in effects.iterdir()} == keys | {"k:prepare"}, seed


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_parent_killed_around_its_children_makes_each_child_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    limiter = anyio.CapacityLimiter(3)
    server = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None

    async def one(seed: int) -> None:
        url = None
        if server is not None:
            from pg_server import fresh_database

            url = fresh_database(server, f"kill{seed}")
        async with limiter:
            await killed_then_finished(tmp_path, seed, url)

    async with anyio.create_task_group() as group:
        for seed in range(SEEDS):
            group.start_soon(one, seed)
