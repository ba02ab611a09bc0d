"""Run limits and rate limits, as a workflow defines them: ``RunLimit`` (how many runs of one
key hold it at once, and what an extra run does) and ``RateLimit`` (how many attempts may start
per window). Pure: checked here when built, resolved and enforced by ``_engine.limits`` and the
stores (``_store.limits``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

from ._errors import DefinitionError

Strategy = Literal["queue", "cancel_newest", "cancel_in_progress"]
STRATEGIES: tuple[Strategy, ...] = ("queue", "cancel_newest", "cancel_in_progress")


@dataclass(frozen=True, slots=True)
class RunLimit:
    """At most ``max_runs`` runs of a workflow hold one key at once.

    A run holds its key from its first claim until it ends (success, failure, cancelled),
    through parked waits, retries and interruptions. ``key`` is a selector over the run input
    (``"$.input.customer_id"``); None is one key for the whole workflow. An extra run:
    ``"queue"`` waits ``queued``, in submit order within its key; ``"cancel_newest"`` ends
    ``cancelled`` at once (``LimitReached``); ``"cancel_in_progress"`` takes the key, the oldest
    holder being cancelled (``Superseded``) and the new run starting after its final write.

    Raises:
        DefinitionError: a key that is not a selector over ``$.input``, ``max_runs < 1``, or
            an unknown strategy.
    """

    key: str | None = None
    max_runs: int = 1
    strategy: Strategy = "queue"

    def __post_init__(self) -> None:
        key = self.key
        if key is not None and (not isinstance(key, str) or not _over_input(key)):
            why = f"must be a selector over the run input ('$.input...'), got {key!r}"
            raise DefinitionError(why, field="run_limit.key")
        if not _count(self.max_runs, 1):
            why = f"must be an int of at least 1, got {self.max_runs!r}"
            raise DefinitionError(why, field="run_limit.max_runs")
        if self.strategy not in STRATEGIES:
            why = f"must be one of {', '.join(map(repr, STRATEGIES))}, got {self.strategy!r}"
            raise DefinitionError(why, field="run_limit.strategy")

    def to_dict(self) -> dict[str, Any]:
        """The limit as data (YAML's ``run_limit:``)."""
        return {"key": self.key, "max_runs": self.max_runs, "strategy": self.strategy}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` attempts per ``per_seconds`` (plus ``burst`` at once) start under
    ``name``, across every process sharing the store (GCRA on the store's clock; in memory,
    the process's).

    Each attempt of the node (a map's item, a sub-workflow node) takes a permit before it
    starts; retries too, and permits are never returned. Without one it waits its turn
    (``node.throttled``), outside its ``timeout_seconds``; a turn further away than
    ``max_wait_seconds`` fails the attempt with ``RateLimited`` (retryable), reserving nothing.
    ``key`` (a selector or template over what the node reads) gives each value its own limit.

    Raises:
        DefinitionError: ``limit`` not an int >= 1, ``per_seconds`` not > 0, ``burst`` not an
            int >= 0, ``max_wait_seconds`` below 0, or an empty ``name``.
    """

    name: str
    limit: int
    per_seconds: float = 1.0
    _: KW_ONLY
    key: str | None = None
    burst: int = 0
    max_wait_seconds: float | None = None

    def __post_init__(self) -> None:
        wait, per = self.max_wait_seconds, self.per_seconds
        checks = (
            ("name", isinstance(self.name, str) and bool(self.name), "a non-empty str"),
            ("limit", _count(self.limit, 1), "an int of at least 1"),
            ("per_seconds", _number(per) and per > 0, "a number of seconds above 0"),
            ("burst", _count(self.burst, 0), "an int of at least 0"),
            ("max_wait_seconds", wait is None or (_number(wait) and wait >= 0),
             "a number of seconds (at least 0) or None"),
            ("key", self.key is None or isinstance(self.key, str), "a selector or template"),
        )  # fmt: skip
        for field, ok, what in checks:
            if not ok:
                why = f"must be {what}, got {getattr(self, field)!r}"
                raise DefinitionError(why, field=f"rate_limit.{field}")

    @property
    def interval(self) -> float:
        """Seconds between two permits at the sustained rate (``per_seconds / limit``)."""
        return self.per_seconds / self.limit

    @property
    def shape(self) -> tuple[int, float, int]:
        """What one name must mean everywhere in a workflow: ``(limit, per_seconds, burst)``."""
        return (self.limit, float(self.per_seconds), self.burst)

    def to_dict(self) -> dict[str, Any]:
        """The limit as data (YAML's ``rate_limit:``), its defaults left out."""
        data: dict[str, Any] = {"name": self.name, "limit": self.limit}
        data["per_seconds"] = self.per_seconds
        for field, default in (("key", None), ("burst", 0), ("max_wait_seconds", None)):
            if getattr(self, field) != default:
                data[field] = getattr(self, field)
        return data


def _over_input(key: str) -> bool:
    return key == "$.input" or key.startswith(("$.input.", "$.input["))


def _count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_tuple(value: Any, kind: type, field: str) -> tuple[Any, ...]:
    """``run_limit=``/``rate_limit=`` as a tuple: None, one limit, or a sequence of them.

    Raises:
        DefinitionError: something else.
    """
    if value is None:
        return ()
    items = (value,) if isinstance(value, kind) else value
    if not isinstance(items, Sequence) or not all(isinstance(item, kind) for item in items):
        why = f"must be a {kind.__name__} or a list of them, got {value!r}"
        raise DefinitionError(why, field=field)
    return tuple(items)


__all__: Sequence[str] = ["STRATEGIES", "RateLimit", "RunLimit", "Strategy", "as_tuple"]
