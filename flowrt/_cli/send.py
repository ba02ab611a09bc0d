"""``flowrt signal RUN_ID SIGNAL [--payload JSON] [--key K] --store URL``: send a signal to a
stored run. Prints the ``SignalSent`` as JSON; exits 0 (sent, or a duplicate of a keyed send),
1 (no such run), 2 (the run ended, the key was used with another payload, or bad arguments), 3
(a bad payload: not JSON, failing the wait's schema, or a signal no wait takes). One line on
stderr when it fails, no traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from .._catalog import LoadError, send_signal
from .._errors import InputError, RunEnded, RunNotFound, SignalConflict
from .errors import UsageError
from .load import importable
from .runs import open_store, store_option, where

SENT, NO_RUN, REFUSED, BAD_PAYLOAD = 0, 1, 2, 3


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``signal`` to the command line."""
    command = commands.add_parser("signal", help="send a signal to a stored run")
    command.add_argument("run_id")
    command.add_argument("signal", help="the signal's name (a wait of the run takes it)")
    command.add_argument(
        "--payload", default=None, help="the payload: JSON text, or @path to a JSON file"
    )
    command.add_argument("--key", default=None, help="an idempotency key: sent once per key")
    store_option(command)


def _payload(text: str | None) -> Any:
    """The ``--payload`` value as JSON (absent: None).

    Raises:
        InputError: it is not JSON, or its file cannot be read.
    """
    if text is None:
        return None
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise InputError(f"--payload {text}: {exc.strerror}", field="payload") from None
    except ValueError as exc:
        raise InputError(f"--payload is not JSON: {exc}", field="payload") from None


def main(args: argparse.Namespace) -> int:
    """Send the signal; returns the exit code."""
    try:
        payload = _payload(args.payload)
    except InputError as exc:
        return _failed(str(exc), BAD_PAYLOAD)
    importable(os.getcwd())  # the run's workflow imports as when it was run
    with open_store(args.store, existing=True) as store:
        try:
            sent = anyio.run(
                lambda: send_signal(store, args.run_id, args.signal, payload, key=args.key)
            )
        except RunNotFound as exc:
            return _failed(f"{exc} in {where(store)}", NO_RUN)
        except (RunEnded, SignalConflict) as exc:
            return _failed(str(exc), REFUSED)
        except InputError as exc:
            return _failed(str(exc), BAD_PAYLOAD)
        except LoadError as exc:
            raise UsageError(f"run {args.run_id!r}: {exc}") from None
    print(sent.model_dump_json())
    return SENT


def _failed(message: str, code: int) -> int:
    print(f"flowrt: error: {message.splitlines()[0]}", file=sys.stderr)
    return code
