"""The ``flowrt`` command line (also ``python -m flowrt``).

    flowrt run FILE [--input JSON|@file.json] [--timeout S] [--json] [--dry-run]
                    [--log console|json]
    flowrt validate FILE
    flowrt graph FILE
    flowrt schema
    flowrt runs list [--status S] | runs show RUN_ID | runs prune --older-than 7d
    flowrt resume RUN_ID [FILE] | flowrt db upgrade                        (stored runs)
    flowrt signal RUN_ID SIGNAL [--payload JSON] [--key K]    (exit 1/2/3: no run/refused/payload)

FILE is a workflow file (YAML or JSON, the format ``flowrt schema`` describes) or a Python
workflow object as ``path/to/file.py:name`` or ``package.module:name``. Exit codes: 0 success,
1 the run failed, 2 a bad file or bad usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from ._cli.errors import UsageError
from ._cli.load import load
from ._cli.pages import add_command as add_ui_command
from ._cli.pages import main as ui_main
from ._cli.progress import progress_for
from ._cli.runs import DEFAULT_STORE, add_commands, open_store, store_errors, store_option
from ._cli.runs import main as runs_main
from ._cli.send import add_command as add_send_command
from ._cli.send import main as send_main
from ._cli.signals import Stopped, until_signal
from ._cli.worker import add_command as add_worker_command
from ._cli.worker import main as worker_main
from ._engine.events import configure_logging
from ._engine.invoke import still_running
from ._errors import FlowError
from ._fast import result_json
from ._files import WorkflowFile
from ._models import RunResult
from ._report import jsonable
from ._store.mask import masked
from ._workflow import Workflow

OK, FAILED, USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowrt", description="Run and inspect flowrt workflows.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a workflow and show what happened")
    run.add_argument("file", help="workflow file (.yaml/.json), or file.py:name / module:name")
    run.add_argument("--input", default="{}", help="run input: JSON text, or @path to a JSON file")
    run.add_argument("--timeout", type=float, default=None, help="deadline for the run, seconds")
    run.add_argument("--json", action="store_true", help="print only the RunResult JSON")
    run.add_argument("--dry-run", action="store_true", help="print the plan; call no function")
    run.add_argument("--log", choices=["console", "json"], help="also log every event to stderr")
    for name, text in (
        ("validate", "check a workflow file"),
        ("graph", "print a Mermaid flowchart"),
    ):
        commands.add_parser(name, help=text).add_argument("file")
    commands.add_parser("schema", help="print the JSON Schema of workflow files")
    store_option(run, "keep the run durably in this store: a SQLite file or a postgresql:// URL")
    add_commands(commands)
    add_worker_command(commands)
    add_send_command(commands)
    add_ui_command(commands)
    return parser


def _input(text: str) -> Any:
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--input: cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--input is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise UsageError("--input is nested too deep") from None


async def _run_live(wf: Workflow, data: Any, timeout: float | None, run_id: str) -> RunResult:
    progress = progress_for(len(wf.nodes), sys.stderr)
    async with wf.stream(data, timeout=timeout, run_id=run_id) as events:
        async for event in events:
            progress(event)
            if event.result is not None:
                return event.result
    raise RuntimeError("the run ended without a result")  # pragma: no cover - stream always ends so


def _run(args: argparse.Namespace) -> int:
    wf = load(args.file)
    data = _input(args.input)
    if args.dry_run:
        stages = wf.stages()
        if args.json:
            print(json.dumps({"workflow": wf.name, "stages": stages}))
        else:
            print(
                f"workflow {wf.name!r}: {len(wf.nodes)} nodes in {len(stages)} stages "
                "(no function called)"
            )
            for number, names in enumerate(stages, 1):
                print(f"  stage {number}: {', '.join(names)}")
        return OK
    if args.store is None:
        return _execute(wf, data, args)
    with open_store(args.store) as store:
        anyio.run(store.upgrade)  # a store that cannot be used fails here, before the run
        wf.store = store
        return _execute(wf, data, args)


def _execute(wf: Workflow, data: Any, args: argparse.Namespace) -> int:
    if args.log:
        configure_logging(json=args.log == "json")
    run_id = args.run_id = uuid.uuid4().hex
    if wf.store is not None and not args.json:
        print(f"run {run_id} (stored in {masked(args.store)})", file=sys.stderr)
    if args.json:
        result = anyio.run(until_signal, lambda: wf.run(data, timeout=args.timeout, run_id=run_id))
        print(result_json(result))
    else:
        result = anyio.run(until_signal, lambda: _run_live(wf, data, args.timeout, run_id))
        print(f"output: {json.dumps(jsonable(result.output))}\n")
        print(result.table())
    return OK if result.status == "success" else FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _command(args)
    except (UsageError, FlowError) as exc:
        return _error(str(exc))
    except store_errors() as exc:  # a --store that cannot be opened or read
        return _error(f"store {getattr(args, 'store', None) or DEFAULT_STORE}: {exc}")
    except KeyboardInterrupt:
        print(f"flowrt: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130
    except Stopped as stopped:  # SIGINT or SIGTERM during a run: it is stored interrupted
        print(f"flowrt: interrupted ({stopped}){_resume_hint(args)}", file=sys.stderr)
        _exit_now_if_threads_linger(args, stopped.exit_code)
        return stopped.exit_code
    except BrokenPipeError:  # the reader went away (`flowrt schema | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def _exit_now_if_threads_linger(args: argparse.Namespace, code: int) -> None:
    """A sync node's thread that the stop abandoned (it cannot be killed) would keep the
    process alive until it returns: the run is stored, so the command exits now."""
    if still_running(getattr(args, "run_id", None) or ""):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _resume_hint(args: argparse.Namespace) -> str:
    run_id, store = getattr(args, "run_id", None), getattr(args, "store", None)
    if run_id is None or store is None:
        return ""
    return (
        f"; what finished is stored: resume with `flowrt resume {run_id} --store {masked(store)}`"
    )


def _error(message: str) -> int:
    line = masked(message.splitlines()[0]) if message else "failed"
    print(f"flowrt: error: {line}", file=sys.stderr)
    return USAGE


def _command(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command in ("runs", "resume", "db"):
        return runs_main(args)
    if args.command == "worker":
        return worker_main(args)
    if args.command == "signal":
        return send_main(args)
    if args.command == "ui":
        return ui_main(args)
    if args.command == "schema":
        print(json.dumps(WorkflowFile.model_json_schema(by_alias=True), indent=2))
        return OK
    wf = load(args.file)
    if args.command == "graph":
        print(wf.mermaid())
    else:
        print(f"ok: workflow {wf.name!r}, {len(wf.nodes)} nodes")
    return OK
