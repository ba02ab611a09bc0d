"""The command line's durable-run commands: ``runs list``, ``runs show RUN_ID``,
``runs prune --older-than 7d``, ``resume RUN_ID [FILE]`` and ``db upgrade``. The store is
``--store``, else ``$FLOWRT_STORE``, else ./flowrt.db."""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
from typing import TYPE_CHECKING, TypeAlias

import anyio

from .._catalog import Catalog, LoadError
from .._control import cancel_run, here
from .._engine.result import stored_result
from .._errors import RunEnded, RunNotFound
from .._store.records import RunRow
from .._store.sqlite import SQLiteStore
from .._workflow import Workflow
from .errors import UsageError
from .load import importable, load

if TYPE_CHECKING:
    from ..postgres import PostgresStore

AnyStore: TypeAlias = "SQLiteStore | PostgresStore"
DEFAULT_STORE = "flowrt.db"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``runs`` and ``resume`` to the command line."""
    runs = commands.add_parser("runs", help="list or show stored runs")
    which = runs.add_subparsers(dest="runs_command", required=True)
    listing = which.add_parser("list", help="the most recent runs")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--status", help="only runs of this status (e.g. interrupted)")
    show = which.add_parser("show", help="one run's trace table")
    show.add_argument("run_id")
    cancel = which.add_parser("cancel", help="cancel a run, wherever it is executed")
    cancel.add_argument("run_id")
    cancel.add_argument("--reason", default=None, help="kept as the run's error message")
    prune = which.add_parser("prune", help="delete runs that ended before a given age")
    prune.add_argument(
        "--older-than", required=True, type=duration, help="an age: 90s, 30m, 12h, 7d, 2w"
    )
    resume = commands.add_parser("resume", help="finish a stored run (failed or interrupted)")
    resume.add_argument("run_id")
    resume.add_argument("file", nargs="?", help="its workflow file (default: as stored)")
    resume.add_argument("--timeout", type=float, default=None)
    db = commands.add_parser("db", help="the store's schema")
    db_which = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_which.add_parser("upgrade", help="create or migrate the schema (idempotent)")
    for parser in (listing, show, cancel, prune, resume, upgrade):
        store_option(parser)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> float:
    """An age such as ``7d`` or ``90s`` in seconds (argparse type).

    Raises:
        argparse.ArgumentTypeError: not a number followed by s, m, h, d or w.
    """
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 90s, 30m, 12h, 7d or 2w")
    return float(found[1]) * _UNITS[found[2]]


def store_option(parser: argparse.ArgumentParser, text: str | None = None) -> None:
    """``--store PATH`` (for the stored-run commands: default $FLOWRT_STORE, else ./flowrt.db)."""
    text = text or (
        "the run store: a SQLite file or a postgresql:// URL "
        "(default: $FLOWRT_STORE, else ./flowrt.db)"
    )
    parser.add_argument("--store", default=None, help=text)


def open_store(where: str | None, *, existing: bool = False) -> AnyStore:
    """The store a ``--store`` option names: a ``postgresql://`` URL, else a SQLite file. With
    ``existing`` (commands that only read or act on stored runs), a SQLite file that does not
    exist is an error, and nothing is created.

    Raises:
        UsageError: ``existing`` and no such SQLite file.
    """
    where = where or os.environ.get("FLOWRT_STORE") or DEFAULT_STORE
    if where.startswith(("postgresql://", "postgres://")):
        # optional: psycopg comes with flowrt[postgres], needed only for such a URL
        from ..postgres import PostgresStore

        return PostgresStore(where)
    if existing and not os.path.exists(where):
        raise UsageError(f"no store at {where}: no such file (check --store or $FLOWRT_STORE)")
    return SQLiteStore(where)


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store that cannot be opened or read raises (psycopg's once it is loaded)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)


def where(store: AnyStore) -> str:
    """How messages name a store: its file, or its URL without the password."""
    return str(store.path) if isinstance(store, SQLiteStore) else repr(store)


def _line(run: RunRow) -> str:
    started = run.started_at[:19].replace("T", " ")
    return f"{run.run_id:32}  {run.workflow[:24]:24}  {run.status:9}  {run.attempts:8}  {started}"


async def _find(store: AnyStore, run_id: str) -> RunRow:
    run = await store.load_run(run_id)
    if run is None:
        raise UsageError(f"no run {run_id!r} in {where(store)}")
    return run


def _cancel(store: AnyStore, run_id: str, reason: str | None) -> int:
    """``runs cancel``: exit 0 (cancelled, or requested from its owner), 1 (no such run), 2
    (it has ended)."""
    by = f"flowrt runs cancel on {here()}"
    try:
        outcome = anyio.run(lambda: cancel_run(store, run_id, reason=reason, by=by))
    except RunNotFound as exc:
        print(f"flowrt: error: {exc} in {where(store)}", file=sys.stderr)
        return 1
    except RunEnded as exc:
        print(f"flowrt: error: {exc}: it cannot be cancelled", file=sys.stderr)
        return 2
    if outcome == "cancelled":
        print(f"run {run_id} cancelled")
    else:
        print(
            f"run {run_id}: cancel requested; its owner stops it within "
            f"{store.heartbeat_seconds + 1:g}s"
        )
    return 0


def _show(store: AnyStore, run: RunRow) -> None:
    """``runs show``: the run, its parent and its child runs, and its trace table."""
    print(f"run {run.run_id} of workflow {run.workflow!r}: {run.status}")
    if run.parent_run_id:
        print(f"child of run {run.parent_run_id} (node {run.parent_node})")
    children = anyio.run(lambda: store.list_runs(limit=500, parent=run.run_id))
    for child in sorted(children, key=lambda found: found.run_id):
        print(f"child run {child.run_id} (node {child.parent_node}): {child.status}")
    _blockers(store, run)
    print()
    print(stored_result(run).table())


def _blockers(store: AnyStore, run: RunRow) -> None:
    """A queued run's run-limit keys that keep it waiting, one line each."""
    if run.status == "queued":
        for blocker in anyio.run(store.blockers, run.run_id):
            print(f"    {blocker.describe()}")


def _workflow(run: RunRow, file: str | None) -> Workflow:
    """The run's workflow: from FILE, else as the run stored it (its definition, or where its
    code lives), importing from the current folder too."""
    if file is not None:
        return load(file)
    if run.definition is None and run.source is None:
        raise UsageError(
            f"run {run.run_id!r}: its workflow was stored neither as data nor with where its "
            "code lives; pass its FILE"
        )
    importable(os.getcwd())  # its ``call:`` references import as when it was run
    try:
        return Catalog()(run)
    except LoadError as exc:
        raise UsageError(f"run {run.run_id!r}: {exc}") from None


def main(args: argparse.Namespace) -> int:
    """Run ``runs list|show|cancel|prune``, ``resume`` or ``db upgrade``; returns the exit
    code."""
    creates = args.command == "db"
    with open_store(args.store, existing=not creates) as store:
        return _on(store, args)


def _on(store: AnyStore, args: argparse.Namespace) -> int:
    if args.command == "db":
        version = anyio.run(store.upgrade)
        print(f"{where(store)}: schema version {version}")
        return 0
    if args.command == "runs" and args.runs_command == "prune":
        deleted = anyio.run(store.prune, args.older_than)
        print(f"deleted {deleted} run(s) that ended more than {args.older_than:g}s ago")
        return 0
    if args.command == "runs" and args.runs_command == "list":
        runs = anyio.run(store.list_runs, args.limit, args.status)
        print(f"{'run':32}  {'workflow':24}  {'status':9}  {'attempts':8}  started (UTC)")
        for run in runs:
            print(_line(run))
            _blockers(store, run)
        return 0
    if args.command == "runs" and args.runs_command == "cancel":
        return _cancel(store, args.run_id, args.reason)
    run = anyio.run(_find, store, args.run_id)
    if args.command == "runs":
        _show(store, run)
        return 0
    wf = _workflow(run, args.file)
    result = anyio.run(lambda: wf.resume(run.run_id, store=store, timeout=args.timeout))
    print(result.table())
    return 0 if result.status == "success" else 1
