"""Store hygiene: passwords never appear in messages; read-only commands on a missing SQLite
file fail with one line and create nothing; a store whose schema is newer than this flowrt's
is refused, naming both versions; ``runs prune`` gives SQLite's space back."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from flowrt import SQLiteStore, StoreTooNew, Workflow
from flowrt._store.mask import masked
from flowrt._store.sqlite import SCHEMA_VERSION
from flowrt.cli import main as cli

FLOWRT = str(Path(sys.executable).parent / "flowrt")


def test_passwords_are_masked_in_urls_and_key_values() -> None:
    assert masked("postgresql://app:s3cr%40t@db:5432/x failed") == (
        "postgresql://app:***@db:5432/x failed"
    )
    assert masked("host=db password=hunter2 user=app") == "host=db password=*** user=app"
    assert masked("password='a b c' x") == "password=*** x"
    assert masked("postgresql://app@db/x") == "postgresql://app@db/x"  # nothing to hide


def test_a_cli_error_never_shows_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/nowhere?connect_timeout=2"
    assert cli(["runs", "list", "--store", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "hunter2" not in err
    assert err.startswith("flowrt: error: store postgresql://app:***@127.0.0.1:1/nowhere")


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["runs", "show", "x"],
        ["runs", "cancel", "x"],
        ["resume", "x"],
        ["ui", "--port", "0"],
    ],
)
def test_read_commands_on_a_missing_sqlite_file_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "typo.db"
    done = subprocess.run(
        [FLOWRT, *command, "--store", str(missing)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert (
        done.stderr
        == f"flowrt: error: no store at {missing}: no such file (check --store or $FLOWRT_STORE)\n"
    )
    assert not missing.exists()


def test_a_newer_schema_is_refused_naming_both_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "future.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreTooNew) as refused, SQLiteStore(path) as store:
        anyio.run(store.list_runs)
    assert (refused.value.found, refused.value.known) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this flowrt's {SCHEMA_VERSION}" in (
        str(refused.value)
    )
    assert cli(["runs", "list", "--store", str(path)]) == 2
    assert "newer than this flowrt's" in capsys.readouterr().err


def test_a_newer_postgres_schema_is_refused(postgres_url: str) -> None:
    import psycopg

    from flowrt.postgres import SCHEMA_VERSION as PG_VERSION
    from flowrt.postgres import PostgresStore

    with PostgresStore(postgres_url) as store:
        anyio.run(store.upgrade)
    with psycopg.connect(postgres_url) as db:
        db.execute("INSERT INTO flowrt_schema (version) VALUES (%s)", (PG_VERSION + 5,))
    with (
        pytest.raises(StoreTooNew, match="newer than this flowrt's"),
        PostgresStore(postgres_url) as store,
    ):
        anyio.run(store.list_runs)


@pytest.mark.parametrize("old_file", [False, True])
def test_prune_gives_the_space_back(tmp_path: Path, old_file: bool) -> None:
    path = tmp_path / "big.db"
    if old_file:  # made by a flowrt without incremental vacuum
        with closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA auto_vacuum = NONE")
            db.execute("CREATE TABLE keep (x)")

    async def fill() -> None:
        with SQLiteStore(path) as store:
            wf = Workflow("big", store=store)
            wf.node(lambda: "x" * 20_000, name="bulky")
            for _ in range(200):
                await wf.run()

    anyio.run(fill)
    before = path.stat().st_size
    assert before > 4_000_000
    assert cli(["runs", "prune", "--older-than", "0s", "--store", str(path)]) == 0
    after = path.stat().st_size
    assert after < before / 10, (before, after)
