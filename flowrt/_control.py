"""Acting on a stored run from outside the process that executes it: cancelling it, and
sending it signals."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from ._engine.signals import checked_payload, mailbox_of
from ._engine.stored_signals import StoredMailbox
from ._models import SignalSent
from ._store.claims import CancelOutcome
from ._store.protocol import RunStore


def here() -> str:
    """Who asks, when the caller does not say: this host and process."""
    return f"{socket.gethostname()} pid {os.getpid()}"


async def cancel_run(
    store: RunStore, run_id: str, *, reason: str | None = None, by: str | None = None
) -> CancelOutcome:
    """Cancel stored run ``run_id``, whoever executes it.

    A ``queued``, parked (``waiting``, ``retrying``) or ``interrupted`` run is stored
    ``cancelled`` at once, in one transaction (no worker will take it). A ``running`` run's
    owner sees the request at its next write or heartbeat (within ``heartbeat_seconds`` + 1 s),
    cancels its running nodes (their ``finally`` blocks run), and stores the run ``cancelled``;
    the ``wf.run`` executing it raises ``RunCancelled``. The stored error is of type
    ``Cancelled`` with ``reason`` as its message, and names who asked (``by``; default: this
    host and process). A cancelled run is resumable by hand (``wf.resume``,
    ``wf.run(run_id=...)``) and by nothing else. Cancelling twice is not an error.

    Returns:
        ``"cancelled"`` (it is stored cancelled now) or ``"requested"`` (its owner will).

    Raises:
        RunNotFound: no such run (also a ``LookupError``).
        RunEnded: the run ended ``success`` or ``failure``.
    """
    return await store.cancel(run_id, reason=reason, by=by or here())


async def deliver(
    store: RunStore,
    declared: Mapping[str, Any],
    run_id: str,
    signal: tuple[str, Any, str | None],
) -> SignalSent:
    """Check ``signal`` (name, payload, key) against the ``declared`` signals and their
    schemas, keep it in the store, and wake the run's waits in this process.

    Raises:
        InputError, RunNotFound, RunEnded, SignalConflict: see ``flowrt.send_signal``.
    """
    name, payload, key = signal
    text = json.dumps(checked_payload(declared, name, payload), separators=(",", ":"))
    seq, duplicate = await store.send_signal(run_id, name, text, key)
    box = mailbox_of(run_id)
    if isinstance(box, StoredMailbox):
        box.poke()
    return SignalSent(run_id=run_id, signal=name, seq=seq, duplicate=duplicate)


__all__: Sequence[str] = ["cancel_run", "deliver", "here"]
