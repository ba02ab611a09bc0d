"""Shared fixtures: every async test runs on asyncio and trio; timing tests opt into trio's
MockClock (``mock_clock`` marker-free: they override ``anyio_backend``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL server for the whole session (see tests/pg_server.py)."""
    from pg_server import postgres_server

    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def postgres_url(postgres_dsn: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on that server, for one test."""
    from pg_server import fresh_database

    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    return fresh_database(postgres_dsn, name)


@pytest.fixture
def vanishing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A durable run cancelled in this test writes nothing more, as if its process had died at
    that moment (a caller's cancellation would store it ``cancelled``); expire its lease to
    let others take it (``expire_leases``)."""
    from flowrt._engine.durable import DurableRun

    async def vanish(self: DurableRun) -> None:
        return None

    monkeypatch.setattr(DurableRun, "cancelled", vanish)


def expire_leases(path: object) -> None:
    """Expire every lease in SQLite file ``path``: the owners are presumed dead."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(str(path))) as db, db:
        db.execute("UPDATE runs SET lease_until = 1 WHERE owner IS NOT NULL")


async def until(check: object, *, timeout: float = 20.0, what: str = "the condition") -> None:
    """Wait (polling every 10 ms) until ``check()`` (sync or async) is true, at most
    ``timeout`` seconds: a test waits for a condition, never for a fixed time."""
    import inspect

    import anyio

    assert callable(check)
    with anyio.fail_after(timeout):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return
            await anyio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")  # pragma: no cover


def open_store(
    kind: str, request: pytest.FixtureRequest, path: object, **settings: object
) -> object:
    """A new store of ``kind`` (``sqlite``: the file ``path``; ``postgres``: a fresh database on
    the session's server), with ``settings`` (lease, heartbeat...)."""
    from flowrt import SQLiteStore

    if kind == "sqlite":
        return SQLiteStore(path, **settings)  # type: ignore[arg-type]
    from flowrt.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_url"), **settings)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: object) -> object:
    """Each test once on SQLite and once on PostgreSQL."""
    from pathlib import Path

    async with open_store(request.param, request, Path(str(tmp_path)) / "runs.db") as opened:  # type: ignore[attr-defined]
        yield opened


# The fast loop (``make test-fast``: ``pytest -m "not slow"``, under a minute) leaves out what
# needs a service or a process of its own and the tests that take about 0.3 s or more each.
# ``make test`` runs everything.
SLOW_MODULES = frozenset(
    {
        "test_benchmarks",
        "test_child_kills",
        "test_cli_send",
        "test_cli_signals",
        "test_crash",
        "test_examples",
        "test_limit_processes",
        "test_owners",
        "test_pg_restart",
        "test_poison",
        "test_process",
        "test_ray",
        "test_docs",
        "test_docs_site",
        "test_ui_browser",
        "test_wait_kills",
        "test_worker_kills",
    }
)
SLOW_TESTS = frozenset(
    {
        "test_a_broken_workflow_file_is_exit_2_with_one_line",
        "test_a_cancelled_run_leaves_no_cyclic_garbage",
        "test_a_durable_failing_run_leaves_no_cyclic_garbage",
        "test_a_follower_open_at_shutdown_gets_the_cancelled_run_finished",
        "test_a_hundred_concurrent_runs_share_one_file",
        "test_a_live_run_streams_changes_then_its_end",
        "test_a_node_parked_in_a_retry_wait_continues_at_its_next_attempt",
        "test_a_parked_retry_frees_the_workers_slot_and_continues_at_attempt_2",
        "test_a_pending_workflow_retry_survives_and_resume_due_runs_it",
        "test_a_python_file_run_is_resumed_and_drawn_from_another_folder",
        "test_a_resume_applies_the_stored_deadline_from_the_resume",
        "test_a_run_cancelled_in_a_parked_retry_wait_is_never_continued",
        "test_a_run_leaves_no_cyclic_garbage",
        "test_a_run_on_a_worker_is_cancelled_and_not_taken_again",
        "test_a_run_past_its_deadline_leaves_no_cyclic_garbage",
        "test_a_run_started_on_one_instance_is_read_and_followed_on_the_other",
        "test_a_run_that_ran_out_of_time_marks_its_deadline",
        "test_a_run_whose_owner_died_is_taken_over",
        "test_a_stored_run_resumes_from_another_folder",
        "test_a_submitted_runs_deadline_is_applied_by_the_worker",
        "test_a_timed_out_thread_never_overlaps_its_retry",
        "test_a_workers_timeout_is_the_default_and_a_runs_own_wins",
        "test_an_idle_worker_starts_a_submitted_run_soon",
        "test_an_interrupted_run_is_reported_and_resumed_once_by_two_resumers",
        "test_an_old_database_is_migrated_and_upgrades_are_idempotent",
        "test_an_owner_whose_lease_was_taken_over_is_refused_and_drops_the_run",
        "test_events_carry_ids_resume_after_last_event_id_and_ping_when_idle",
        "test_flowrt_worker_timeout",
        "test_four_processes_share_one_file_and_keep_every_node",
        "test_from_dict_raises_only_definition_errors",
        "test_no_run_input_makes_run_raise",
        "test_opening_a_file_another_process_is_writing_waits_for_it",
        "test_opening_gives_up_after_its_busy_timeout",
        "test_plain_json_comes_back_equal",
        "test_read_commands_on_a_missing_sqlite_file_create_nothing",
        "test_repr_is_one_short_line_whatever_the_runs_size",
        "test_run_prints_progress_and_a_table_and_exits_1_on_failure",
        "test_sequential_runs_sweeping_the_commit_delay_keep_every_node",
        "test_stored_runs_list_show_and_resume",
        "test_the_collector_case_is_real",
        "test_the_deadline_is_drawn_on_the_timeline",
        "test_timeout_on_a_real_clock_for_a_sync_node",
        "test_two_resumers_at_once_run_the_unfinished_node_once",
        "test_without_a_worker_a_submitted_run_waits_queued",
        "test_workers_sharing_a_store_execute_each_run_once",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what the fast loop leaves out (see ``SLOW_MODULES``)."""
    for item in items:
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        name = getattr(item, "originalname", item.name)
        uses_postgres = "postgres" in item.nodeid or "postgres_dsn" in getattr(
            item, "fixturenames", ()
        )
        if module in SLOW_MODULES or name in SLOW_TESTS or uses_postgres:
            item.add_marker(pytest.mark.slow)
