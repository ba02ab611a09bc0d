"""Run limits and rate limits across worker processes on one PostgreSQL store, checked from
the nodes' own logs (spans on the database's clock): no two runs of a key overlap under load; a
SIGKILLed holder keeps its key until its run is resumed and ends; each strategy across two
worker processes; four processes sharing one rate limit stay within it."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest

psycopg = pytest.importorskip("psycopg")

from test_worker_kills import stop, wait_until  # noqa: E402

from flowrt import RunLimit, Workflow  # noqa: E402
from flowrt.postgres import PostgresStore  # noqa: E402

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.timeout(240)


def tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            "CREATE TABLE spans (run_id TEXT, k INTEGER, pid INTEGER, "
            "started DOUBLE PRECISION DEFAULT extract(epoch from clock_timestamp()), "
            "ended TIMESTAMPTZ)"
        )


def start(url: str, mode: str, strategy: str, concurrency: int, *more: str) -> Any:
    command = [sys.executable, str(HERE / "limit_app.py"), url, mode, strategy, str(concurrency)]
    return subprocess.Popen([*command, *more], stderr=subprocess.DEVNULL)


def submit(url: str, strategy: str, runs: list[tuple[str, int, float]]) -> None:
    async def enqueue() -> None:
        wf = Workflow("limited", run_limit=RunLimit("$.input.k", strategy=strategy))  # type: ignore[arg-type]
        async with PostgresStore(url) as store:
            for run_id, k, pause in runs:
                await wf.submit({"k": k, "pause": pause}, store=store, run_id=run_id)

    anyio.run(enqueue)


def spans(url: str) -> list[tuple[str, int, int, float, float | None]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT run_id, k, pid, started, extract(epoch from ended)::float8 FROM spans "
            "ORDER BY started"
        ).fetchall()


def runs(url: str) -> dict[str, tuple[str, Any]]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT run_id, status, error FROM flowrt_runs").fetchall()
    return {run_id: (status, error) for run_id, status, error in rows}


def ended(url: str, count: int) -> bool:
    done = [s for s, _ in runs(url).values() if s in ("success", "failure", "cancelled")]
    return len(done) >= count


def assert_no_overlap(found: list[tuple[str, int, int, float, float | None]]) -> None:
    by_key: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for _, k, _, began, end in found:
        by_key[k].append((began, end if end is not None else float("inf")))
    for k, intervals in by_key.items():
        intervals.sort()
        for (_, first_end), (second_start, _) in itertools.pairwise(intervals):
            assert second_start >= first_end, f"key {k}: two runs overlapped"


def test_no_two_runs_of_a_key_overlap_across_three_worker_processes(postgres_url: str) -> None:
    tables(postgres_url)
    submit(postgres_url, "queue", [(f"r{i}", i % 8, 0.02 + (i % 5) * 0.02) for i in range(80)])
    workers = [start(postgres_url, "worker", "queue", 4) for _ in range(3)]
    try:
        wait_until(lambda: ended(postgres_url, 80), 120, "80 runs ended")
    finally:
        stop(workers)
    assert {status for status, _ in runs(postgres_url).values()} == {"success"}
    found = spans(postgres_url)
    assert sorted(run_id for run_id, *_ in found) == sorted(f"r{i}" for i in range(80))
    assert len({pid for _, _, pid, _, _ in found}) > 1  # the work was shared
    assert_no_overlap(found)


def test_a_killed_holder_keeps_its_key_until_it_is_resumed_and_ends(postgres_url: str) -> None:
    tables(postgres_url)
    first = start(postgres_url, "worker", "queue", 2)
    others = []
    try:
        submit(postgres_url, "queue", [("holder", 1, 1.5)])
        wait_until(lambda: bool(spans(postgres_url)), 30, "the holder started")
        first.kill()
        first.wait()
        submit(postgres_url, "queue", [("next", 1, 0.01), ("free", 2, 0.01)])
        others = [start(postgres_url, "worker", "queue", 4) for _ in range(2)]
        wait_until(lambda: ended(postgres_url, 3), 60, "three runs ended")
    finally:
        stop([first, *others])
    assert {status for status, _ in runs(postgres_url).values()} == {"success"}
    found = spans(postgres_url)
    holder = [span for span in found if span[0] == "holder"]
    (nxt,) = [span for span in found if span[0] == "next"]
    assert len(holder) == 2  # killed once, executed again
    assert holder[0][4] is None  # its first execution never ended: its process was killed
    assert nxt[3] >= holder[1][4]  # "next" started after the resumed holder ended


def test_cancel_newest_across_two_worker_processes(postgres_url: str) -> None:
    tables(postgres_url)
    workers = [start(postgres_url, "worker", "cancel_newest", 2) for _ in range(2)]
    try:
        submit(postgres_url, "cancel_newest", [("holder", 1, 1.0)])
        wait_until(lambda: bool(spans(postgres_url)), 30, "the holder started")
        submit(postgres_url, "cancel_newest", [("extra", 1, 0.01), ("free", 2, 0.01)])
        wait_until(lambda: ended(postgres_url, 3), 60, "three runs ended")
    finally:
        stop(workers)
    stored = runs(postgres_url)
    assert stored["holder"][0] == stored["free"][0] == "success"
    assert stored["extra"][0] == "cancelled"
    assert '"LimitReached"' in stored["extra"][1]
    assert [span[0] for span in spans(postgres_url)] == ["holder", "free"]


def test_cancel_in_progress_across_two_worker_processes(postgres_url: str) -> None:
    tables(postgres_url)
    workers = [start(postgres_url, "worker", "cancel_in_progress", 2) for _ in range(2)]
    try:
        submit(postgres_url, "cancel_in_progress", [("old", 1, 30.0)])
        wait_until(lambda: bool(spans(postgres_url)), 30, "the old run started")
        asked = time.time()
        submit(postgres_url, "cancel_in_progress", [("new", 1, 0.01)])
        wait_until(lambda: ended(postgres_url, 2), 60, "both runs ended")
    finally:
        stop(workers)
    stored = runs(postgres_url)
    assert stored["old"][0] == "cancelled"
    assert '"Superseded"' in stored["old"][1]
    assert stored["new"][0] == "success"
    old, new = spans(postgres_url)
    assert new[3] >= old[4]  # the new run started after the old one's node ended
    assert old[4] - asked < 0.2 + 1 + 5.0  # heartbeat + 1 s + a loaded machine's slack (not 30 s)


def test_four_processes_share_one_rate_limit(postgres_url: str) -> None:
    """Each of 4 processes runs 8 runs at a time of a node under 50 permits a second for 4 s,
    recording the turn of each permit it is granted (the database's clock) and each attempt's
    start (logged by the node, a little later: by as much as a busy machine adds, so starts are
    checked against turns, not against a window of their own)."""
    from benchmarks.s15_limits import rate_accuracy

    found = rate_accuracy(postgres_url, 4.0)
    assert found["most_turns_in_1s"] <= 50  # limit 50, burst 0
    assert found["starts_before_their_turn"] == 0  # each attempt waited for its turn
    assert found["use"] >= 0.95
    assert found["permits"] >= 0.95 * 50 * 3.5
