"""The speed tricks of ``flowrt._fast``, each checked equal to the plain way: ``construct``
against ``model_validate``; the RunResult whose nodes are built when first read against one
with its nodes built, through every way of reading it."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from flowrt import Event, NodeResult, RunResult, Workflow


def test_fast_construction_equals_validation() -> None:
    from flowrt._fast import construct
    from flowrt._models import AttemptRecord, ErrorInfo

    error = {"type": "E", "message": "m", "traceback": None}
    values = {
        "status": "failure",
        "output": None,
        "error": construct(ErrorInfo, dict(error)),
        "attempts": 2,
        "duration": 0.5,
        "reason": None,
        "trace": [AttemptRecord(attempt=1, started=0.0, duration=0.1, error=None, wait=1.0)],
        "child_run_id": None,
    }
    built = construct(NodeResult, dict(values))
    record = {"attempt": 1, "started": 0.0, "duration": 0.1, "error": None, "wait": 1.0}
    validated = NodeResult.model_validate({**values, "error": error, "trace": [record]})
    assert built == validated
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_fields_set == validated.model_fields_set


def _wide_run() -> Any:
    wf = Workflow("lazy")
    wf.node(lambda: {"a": 1}, name="first")
    wf.node(lambda: 2, name="second", error_handling={"behavior": "return"})
    return wf.run_sync()


def test_node_results_are_built_only_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowrt._engine import result as _result

    built: list[str] = []
    real = _result.node_result
    monkeypatch.setattr(_result, "node_result", lambda done: built.append("x") or real(done))
    result = _wide_run()
    assert (result.status, result.output) == ("success", {"first": {"a": 1}, "second": 2})
    assert built == []  # status and output read: no NodeResult made
    assert result["second"].output == 2
    assert built == ["x", "x"]  # all of them, once
    assert result.nodes["first"].output == {"a": 1}
    assert built == ["x", "x"]


@pytest.mark.parametrize(
    "read",
    [
        lambda r: json.loads(r.model_dump_json())["nodes"]["first"]["output"],
        lambda r: r.model_dump()["nodes"]["first"]["output"],
        lambda r: pickle.loads(pickle.dumps(r)).nodes["first"].output,
        lambda r: copy.deepcopy(r).nodes["first"].output,
        lambda r: copy.copy(r).nodes["first"].output,
        lambda r: r.model_copy(update={"output": None}).nodes["first"].output,
        lambda r: json.loads(Event(kind="run.finished", run_id="x", result=r).model_dump_json())[
            "result"
        ]["nodes"]["first"]["output"],
        lambda r: RunResult.model_validate_json(r.model_dump_json()).nodes["first"].output,
        lambda r: vars(r)["nodes"]["first"].output,
    ],
    ids=[
        "json",
        "dump",
        "pickle",
        "deepcopy",
        "copy",
        "model_copy",
        "nested",
        "round-trip",
        "vars",
    ],
)
def test_every_way_of_reading_a_result_sees_its_nodes(read: Callable[[Any], Any]) -> None:
    assert read(_wide_run()) == {"a": 1}


def test_an_unread_result_equals_a_read_one_and_its_json_copy() -> None:
    result, again = _wide_run(), _wide_run()
    assert again.nodes  # read
    copied = RunResult.model_validate_json(result.model_dump_json())
    assert copied == result
    assert set(result.nodes) == set(again.nodes) == {"first", "second"}


def test_a_lazy_result_shows_itself_as_a_run_result() -> None:
    result = _wide_run()
    assert isinstance(result, RunResult)
    assert repr(result).startswith("RunResult(run_id=")
    assert "nodes=2" in repr(result)
    assert result.nodes["first"].output == {"a": 1}  # the repr built nothing it showed wrong
    assert "nodes=2" in repr(result)


def test_a_lazy_result_raises_for_status_with_its_cause() -> None:
    wf = Workflow("fails")

    def boom() -> None:
        raise RuntimeError("nope")

    wf.node(boom, name="boom")
    result = wf.run_sync()
    with pytest.raises(Exception, match="nope") as info:
        result.raise_for_status()
    assert isinstance(info.value.__cause__, RuntimeError)
    plain = RunResult.model_validate_json(result.model_dump_json())
    assert plain == result
    assert plain.nodes == result.nodes
