"""Sending a signal to a stored run with no Workflow object at hand: the run's workflow is
looked up in a catalog (``flowrt.send_signal``, the HTTP router's and the CLI's sends)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ._catalog import Catalog
from ._control import deliver
from ._errors import RunNotFound
from ._models import SignalSent
from ._store.protocol import RunStore
from ._workflow import Workflow


async def send_signal(
    store: RunStore,
    run_id: str,
    signal: str,
    payload: Any = None,
    *,
    key: str | None = None,
    workflows: Iterable[Workflow] = (),
) -> SignalSent:
    """Send ``signal`` with ``payload`` to stored run ``run_id``, whoever executes it (or
    nobody yet): it is kept in the run's mailbox, in send order, until a wait of the run takes
    it; a ``waiting`` run with a wait for it is made due at once (workers are woken). The
    payload is checked against the schema of the wait that takes ``signal``, in the run's
    workflow (from ``workflows`` by name, else where the run says its code lives, else its
    stored definition). ``key`` makes the send idempotent: sent again with an equal payload
    it is a no-op (``duplicate=True``). Nothing is stored when it raises.

    Raises:
        RunNotFound: no such run (also a ``LookupError``).
        RunEnded: the run ended ``success`` or ``failure``.
        SignalConflict: ``key`` was used before with another payload.
        InputError: no wait of the run's workflow takes ``signal``, or the payload is not JSON
            or fails the wait's schema (the message names the field).
    """
    run = await store.load_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    declared = Catalog(workflows)(run).compiled().signals or {}
    return await deliver(store, declared, run_id, (signal, payload, key))


__all__: Sequence[str] = ["send_signal"]
