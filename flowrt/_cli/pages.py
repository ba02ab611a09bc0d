"""``flowrt ui --store URL --port N``: the run viewer over every workflow in a store, served by
uvicorn on 127.0.0.1 (``--host`` to change it) until Ctrl-C. Read-only: it never changes a run.
Needs ``flowrt[fastapi]``."""

from __future__ import annotations

import argparse
import signal
import sys

from .errors import UsageError
from .runs import open_store, store_option, where


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ui`` to the command line."""
    ui = commands.add_parser("ui", help="serve the run viewer: runs, graphs, timelines")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    ui.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    store_option(ui)


def main(args: argparse.Namespace) -> int:
    """Serve the viewer until interrupted; returns the exit code (0)."""
    try:
        # optional: FastAPI and uvicorn come with flowrt[fastapi], needed only by this command
        import uvicorn
        from fastapi import FastAPI

        # optional: the viewer's module imports FastAPI
        from .._web.pages import viewer_router
    except ImportError as exc:
        raise UsageError(f"flowrt ui needs flowrt[fastapi] ({exc})") from None
    with open_store(args.store, existing=True) as store:
        app = FastAPI(title="flowrt runs", docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(viewer_router(store))
        url = f"http://{args.host}:{args.port}/ui"
        print(f"flowrt ui: runs in {where(store)} at {url}", file=sys.stderr, flush=True)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
        # it found: a handler that does nothing makes that a clean exit (0), not a kill.
        previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        finally:
            signal.signal(signal.SIGTERM, previous)
    print("flowrt ui: stopped", file=sys.stderr)
    return 0


def _stopped(signum: int, frame: object) -> None:
    """SIGTERM after uvicorn's graceful shutdown: nothing more to do."""
