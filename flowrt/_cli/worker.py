"""``flowrt worker FILE... --store URL --concurrency N``: a worker process executing the stored
runs of the given workflows until SIGTERM or Ctrl-C, which hand its runs in progress back to
the other workers (stored ``interrupted``; the next worker continues them)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import anyio

from .._worker import Worker
from .load import load
from .runs import open_store, store_option, where


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``worker`` to the command line."""
    worker = commands.add_parser("worker", help="execute submitted and interrupted runs")
    worker.add_argument("files", nargs="+", metavar="FILE", help="workflow files it executes")
    worker.add_argument("--concurrency", type=int, default=100, help="runs at once (100)")
    worker.add_argument("--poll", type=float, default=1.0, help="seconds between polls (1)")
    worker.add_argument(
        "--timeout", type=float, default=None, help="deadline of runs stored without one (s)"
    )
    store_option(worker)


def main(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code (0). A store outage is one line on
    stderr when it starts and one when it ends (the worker keeps trying meanwhile)."""
    workflows = [load(file) for file in args.files]
    outages = logging.StreamHandler(sys.stderr)
    outages.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("flowrt.store").addHandler(outages)
    # one line per outage, not psycopg_pool's line per reconnection attempt
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    with open_store(args.store) as store:
        worker = Worker(
            store,
            workflows,
            concurrency=args.concurrency,
            poll_seconds=args.poll,
            timeout=args.timeout,
        )
        names = ", ".join(wf.name for wf in workflows)
        print(f"flowrt worker: {names} from {where(store)}", file=sys.stderr, flush=True)
        anyio.run(_serve, worker)
    print(f"flowrt worker: stopped after {worker.executed} run(s)", file=sys.stderr)
    return 0


async def _serve(worker: Worker) -> None:
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        await worker.serve()
