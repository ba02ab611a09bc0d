"""A node's output in its one JSON form, with or without a store and over HTTP: whatever
pydantic's JSON mode encodes (datetime, date, Decimal, UUID, enums, sets, dataclasses, models)
becomes that form (``pydantic_core.to_jsonable_python``) as the node finishes, so dependents,
the result and the store all see the same value; anything else (an object, bytes that are not
UTF-8, NaN or Infinity, a value nested too deep) fails the node with ``OutputError``.

Plain JSON (the common case) is left as it is: it is checked by json's C encoder, whose text a
durable run then stores without encoding it again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic_core import PydanticSerializationError, to_jsonable_python

from .._errors import OutputError
from .._store.records import to_json, unencodable


class NodeState(Protocol):
    """What settling reads and writes of a node's record (``_attempt.NodeState``)."""

    text: str | None

    def __getitem__(self, key: str) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def fail(self, exc: BaseException) -> Any: ...


PLAIN = frozenset({str, int, bool, type(None)})
"""The types whose values are JSON as they are (an int subclass, an enum, goes the long way)."""


def settle_output(name: str, state: NodeState) -> None:
    """Put succeeded node ``name``'s output in its JSON form (keeping its text on
    ``state.text``), or fail the node with ``OutputError``."""
    value = state["output"]
    kind = type(value)
    if kind in PLAIN:
        return
    try:
        state.text = to_json(value)
        return
    except TypeError:
        pass  # not plain JSON: pydantic's JSON form, below
    except (ValueError, RecursionError) as exc:
        state.fail(OutputError(name, unencodable(exc)))
        return
    try:
        value = to_jsonable_python(value)
        state.text = to_json(value)
    except (PydanticSerializationError, TypeError, ValueError, RecursionError) as exc:
        state.fail(OutputError(name, f"a {kind.__name__}: {_why(exc)}"))
        return
    state["output"] = value


def _why(exc: BaseException) -> str:
    if isinstance(exc, PydanticSerializationError):
        return f"pydantic's JSON mode cannot encode it ({exc})"
    return unencodable(exc)


__all__: Sequence[str] = ["settle_output"]
