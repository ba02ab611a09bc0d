"""A store that cannot be reached, seen from a process that keeps using it (a worker, a run's
writer): one log line when the outage starts and one when it ends, never a traceback per try,
and the wait before the next try growing from 0.1 s to 5 s."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from .mask import masked

_log = logging.getLogger("flowrt.store")  # ``flowrt worker`` prints it on stderr
FIRST, LONGEST = 0.1, 5.0  # seconds before the next try: doubling from FIRST up to LONGEST


class Outage:
    """Whether the store answers, as the last call told (``failed``/``answered``)."""

    __slots__ = ("_wait", "error", "since", "who")

    def __init__(self, who: str) -> None:
        self.who = who  # names the process in the log lines: "worker", "run 7f3..."
        self.error: str | None = None  # why the store does not answer (None: it does)
        self.since = 0.0
        self._wait = FIRST

    @property
    def down(self) -> bool:
        """Whether the last call failed."""
        return self.error is not None

    def failed(self, exc: BaseException) -> float:
        """A call failed with ``exc``: log it if the outage starts now; the seconds to wait
        before the next try."""
        why = masked(f"{type(exc).__name__}: {exc}".splitlines()[0])
        if self.error is None:
            self.since = time.monotonic()
            _log.warning("flowrt: %s cannot reach its store (%s); retrying", self.who, why)
        else:
            self._wait = min(self._wait * 2, LONGEST)
        self.error = why
        return self._wait

    def answered(self) -> None:
        """A call succeeded: log the end of an outage."""
        if self.error is not None:
            took = time.monotonic() - self.since
            _log.warning("flowrt: %s reached its store again after %.1fs", self.who, took)
        self.error, self._wait = None, FIRST


__all__: Sequence[str] = ["Outage"]
