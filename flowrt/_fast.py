"""flowrt's speed tricks on its public models, kept out of them: each has its equivalence test
beside it (tests/test_fast.py). The models themselves (``_models``) read like ordinary pydantic
models.

- ``construct``: a model built from values known to be valid, through BaseModel's own slot
  descriptors (one C call each), instead of ``model_construct``'s per-field default handling.
  Equivalent to ``model_validate`` of the same values.
- ``LazyRunResult``: the RunResult the engine returns, whose ``nodes`` are built when first
  read (a caller that reads only the status and the output never pays for a NodeResult per
  node), and whose ``started_at``, ``finished_at`` and ``duration`` are made from two clock
  readings when first read. Equal to, serialised as, copied and pickled as the RunResult with
  its nodes built.
- ``answer_text``: ``RunAnswer``'s JSON (``POST /run`` with ``response="output"``) written
  from a dict, without the model. The same text as ``model_dump_json()``.
- ``result_text``: such a result's JSON text written from plain dicts of the run's records,
  without a NodeResult or an AttemptRecord per node (a third of the time for ten nodes).
  The same text as ``model_dump_json()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, PrivateAttr
from pydantic_core import to_json

from ._models import ErrorInfo, NodeResult, RunResult
from ._report import jsonable

M = TypeVar("M", bound=BaseModel)

# BaseModel's own slots, set through their descriptors: one C call each, no __setattr__ hooks.
_set_values = BaseModel.__dict__["__dict__"].__set__
_get_values = BaseModel.__dict__["__dict__"].__get__
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_all_fields: dict[type[BaseModel], set[str]] = {}
_PRIVATE: dict[type[BaseModel], dict[str, Any]] = {}  # models with private attributes: defaults


def construct(cls: type[M], values: dict[str, Any]) -> M:
    """Build ``cls`` from ``values`` that name every field and are known to be valid: what
    ``model_construct`` does, without its per-field default handling, and with one fields-set
    shared by every instance (all fields are set, so adding to it changes nothing)."""
    obj = _shell(cls, values)
    private = _PRIVATE.get(cls)
    _set_private(obj, None if private is None else dict(private))
    return obj


def _shell(cls: type[M], values: dict[str, Any]) -> M:
    """``construct`` but for the private attributes, left for the caller to set."""
    obj = object.__new__(cls)
    _set_values(obj, values)
    fields = _all_fields.get(cls)
    if fields is None:
        fields = _all_fields[cls] = set(cls.model_fields)
    _set_fields(obj, fields)
    _set_extra(obj, None)
    return obj


def error_of(kind: str, message: str, traceback: str | None = None) -> ErrorInfo:
    """An ErrorInfo, built without validation (flowrt made its parts)."""
    return construct(ErrorInfo, {"type": kind, "message": message, "traceback": traceback})


def as_error_info(error: dict[str, str] | None) -> ErrorInfo | None:
    """The ErrorInfo of a plain ``{type, message[, traceback]}`` dict (flowrt built it)."""
    if error is None:
        return None
    return error_of(error["type"], error["message"], error.get("traceback"))


class LazyNodes(Protocol):
    """A run's node results, built when called (``_engine.result.NodeResults``)."""

    def __call__(self) -> dict[str, NodeResult]: ...

    def __len__(self) -> int: ...

    def plain(self) -> dict[str, dict[str, Any]]:
        """Each node's NodeResult as the plain dicts its JSON form is written from."""


_TIMES = frozenset({"started_at", "finished_at", "duration"})


class LazyRunResult(RunResult):
    """A RunResult whose ``nodes`` are built when first read, and whose times are made from
    ``_times`` (the run's start and end, ``time.time()``) when first read. Everything that
    reads the fields goes through ``__dict__`` (pydantic's serializer, ``==``, copies,
    pickling) or, for a field not made yet, through ``__getattr__``: both make it first (the
    times before the nodes, so the fields keep one order). It shows itself as a RunResult."""

    _nodes_from: LazyNodes | None = PrivateAttr(default=None)
    _times: tuple[float, float] | None = PrivateAttr(default=None)

    @property
    def __dict__(self) -> dict[str, Any]:
        values: dict[str, Any] = _get_values(self)
        if "nodes" not in values:
            self._build_nodes(values)
        return values

    @__dict__.setter
    def __dict__(self, values: dict[str, Any]) -> None:
        _set_values(self, values)

    def __getattr__(self, name: str) -> Any:
        if name == "nodes":
            values = _get_values(self)
            if "nodes" not in values:
                self._build_nodes(values)
            return values["nodes"]
        if name in _TIMES:
            values = _get_values(self)
            self._fill_times(values)
            return values[name]
        return super().__getattr__(name)  # type: ignore[misc]

    def __getstate__(self) -> dict[Any, Any]:
        self.__dict__  # noqa: B018  (build the nodes: the builder holds the run's plan)
        return super().__getstate__()

    def _fill_times(self, values: dict[str, Any]) -> None:
        times = self._times
        if times is None:  # made already
            return
        started, finished = (datetime.fromtimestamp(t, UTC) for t in times)
        values["started_at"], values["finished_at"] = started, finished
        values["duration"] = (finished - started).total_seconds()
        self._times = None

    def _build_nodes(self, values: dict[str, Any]) -> None:
        self._fill_times(values)
        build = self._nodes_from
        values["nodes"] = {} if build is None else build()
        self._nodes_from = None  # the run's records can go

    def __repr_name__(self) -> str:
        return "RunResult"

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        # RunResult's short line, counting the nodes without building them.
        values, lazy = _get_values(self), self._nodes_from
        yield "run_id", self.run_id
        yield "status", self.status
        yield "nodes", len(values["nodes"] if lazy is None or "nodes" in values else lazy)
        yield "duration", round(self.duration, 2)


# each result gets a copy
_PRIVATE[LazyRunResult] = {"_cause": None, "_nodes_from": None, "_times": None}


def lazy_result(
    values: dict[str, Any],
    cause: BaseException | None,
    nodes: LazyNodes,
    times: tuple[float, float],
) -> LazyRunResult:
    """A RunResult of ``values`` (every field but ``nodes`` and the times), whose
    ``raise_for_status`` chains ``cause``, whose nodes ``nodes()`` builds when first read,
    and whose ``started_at``, ``finished_at`` and ``duration`` are made from ``times`` (its
    start and end, ``time.time()``) when first read."""
    result = _shell(LazyRunResult, values)
    _set_private(result, {"_cause": cause, "_nodes_from": nodes, "_times": times})
    return result


def answer_text(run_id: str, status: str, output: Any, error: ErrorInfo | None) -> str:
    """``RunAnswer(run_id=..., status=..., output=..., error=...).model_dump_json()``, written
    from a dict (no model built: a fifth of the time).

    Raises:
        PydanticSerializationError: the output JSON cannot hold (as ``model_dump_json``).
    """
    answer = {"run_id": run_id, "status": status, "output": output, "error": error}
    return to_json(answer, inf_nan_mode="null").decode()


def result_text(result: RunResult) -> str | None:
    """``result.model_dump_json()``, written without building its nodes when they have not
    been (a ``LazyRunResult`` fresh from a run); None for any other result.

    Raises:
        PydanticSerializationError: an output JSON cannot hold (as ``model_dump_json``).
    """
    if not isinstance(result, LazyRunResult):
        return None
    values: dict[str, Any] = _get_values(result)
    build = result._nodes_from
    if build is None or "nodes" in values:
        return None
    result._fill_times(values)
    plain = dict(values)  # the fields in their order, as pydantic writes them, nodes last
    plain["nodes"] = build.plain()
    return to_json(plain, inf_nan_mode="null").decode()


def result_json(result: Any) -> str:
    """A RunResult as JSON text: ``model_dump_json()``, or, when an output cannot be encoded,
    the same with the outputs in their JSON-safe form."""
    try:
        return result_text(result) or str(result.model_dump_json())
    except Exception:  # pydantic's serialization error: some output JSON cannot hold
        return str(safe_result(result).model_dump_json())


def safe_result(result: Any) -> Any:
    """A copy of a RunResult whose run output and node outputs are JSON-safe."""
    nodes = {
        name: node.model_copy(update={"output": jsonable(node.output)})
        for name, node in result.nodes.items()
    }
    return result.model_copy(update={"output": jsonable(result.output), "nodes": nodes})
