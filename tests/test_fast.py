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
from hypothesis import given, settings
from hypothesis import strategies as st

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


# result_text: a fresh result's JSON, written without building its nodes ----------------------


def _shapes() -> dict[str, Workflow]:
    """Workflows whose results hold every part a NodeResult has: retries with waits, final
    failures with tracebacks, skips with reasons, handlers, Choice, map, loop, sync nodes in
    threads, a sub-workflow's child run id, outputs of every JSON kind."""
    from flowrt import Condition, ErrorHandling, Final

    flaky_calls: list[int] = []

    async def flaky() -> float:
        flaky_calls.append(1)
        if len(flaky_calls) % 3:
            raise ConnectionError("again")
        return 5.29790049768053e-05

    def boom(x: Any) -> None:
        raise ValueError(f"bad {x!r} ünïcödé \n\t \u2028 \x1f")

    def values() -> dict[str, Any]:
        return {"big": 2**80, "neg": -0.0, "tiny": 1e-7, "s": 'é"\\', "l": [None, True]}

    retried = ErrorHandling(max_retries=3, retry_interval_seconds=0)
    wf = Workflow("shapes")
    wf.node(flaky, name="flaky", error_handling=retried)
    wf.node(values, name="values")
    wf.node(boom, name="boom", inputs={"x": "$.values.output"})
    wf.node(lambda: "never", name="after", depends=["boom"])
    wf.node(lambda: "handled", name="handler", depends=["boom"], trigger="on_failure")
    pick = wf.choice("pick", options={"high": Condition("$.flaky.status", "==", "success")})
    wf.node(lambda: "high!", name="high", depends=[pick["high"]])
    wf.map(lambda item: item * 2, name="doubled", items=[1, 2, 3])

    async def step(state: dict[str, Any]) -> Any:
        n = state.get("n", 0) + 1
        return Final(n) if n >= 3 else {"n": n}

    wf.loop(step, name="looped")
    child = Workflow("child")
    child.node(lambda: 1.5, name="inner")
    wf.subworkflow(child, name="sub")
    failing = Workflow("failing")
    failing.node(boom, name="boom", inputs={"x": 1})
    return {"shapes": wf, "failing": failing}


@pytest.mark.parametrize("name", ["shapes", "failing"])
def test_result_text_is_the_result_json(name: str) -> None:
    from flowrt._fast import result_text

    for _ in range(3):  # the flaky node fails a different number of times each run
        result = _shapes()[name].run_sync()
        text = result_text(result)  # before anything reads the nodes
        assert text is not None
        assert text == result.model_dump_json()
        assert result_text(result) is None  # nodes built: the plain way from now on


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values, fails=st.booleans())
def test_result_text_writes_any_output_as_pydantic_does(value: Any, fails: bool) -> None:
    from flowrt._fast import result_text

    def node() -> Any:
        if fails:
            raise RuntimeError(repr(value)[:200])
        return value

    wf = Workflow("any-output")
    wf.node(node, name="node", error_handling={"behavior": "return"})
    result = wf.run_sync()
    assert result_text(result) == result.model_dump_json()


odd_outputs = (
    json_values
    | st.floats()  # inf and nan: written null
    | st.sets(st.integers(), max_size=3)
    | st.binary(max_size=8)
    | st.tuples(st.integers(), st.text(max_size=3))
    | st.builds(object)  # JSON cannot hold it: both raise
)


@settings(max_examples=300, deadline=None)
@given(
    output=odd_outputs,
    error=st.none() | st.builds(dict, type=st.text(), message=st.text()),
    status=st.sampled_from(["success", "failure"]),
)
def test_answer_text_is_the_run_answer_json(output: Any, error: Any, status: str) -> None:
    """``_fast.answer_text`` (``POST /run`` with ``response="output"``) writes what the
    ``RunAnswer`` model writes, for any output; where the model cannot write it, neither
    can it."""
    from flowrt._fast import answer_text, as_error_info
    from flowrt.fastapi import RunAnswer

    info = as_error_info(error)
    model = RunAnswer.model_construct(run_id="r", status=status, output=output, error=info)
    try:
        expected = model.model_dump_json()
    except Exception as exc:
        with pytest.raises(type(exc)):
            answer_text("r", status, output, info)
        return
    assert answer_text("r", status, output, info) == expected


# the times of a fresh result: made from two clock readings when first read --------------------


@pytest.mark.parametrize(
    "first",
    ["duration", "started_at", "finished_at", "nodes", "json", "dump", "repr", "pickle"],
)
def test_a_results_times_are_the_same_whichever_part_is_read_first(first: str) -> None:
    from datetime import UTC

    result = _wide_run()
    reads = {
        "duration": lambda: result.duration,
        "started_at": lambda: result.started_at,
        "finished_at": lambda: result.finished_at,
        "nodes": lambda: result.nodes,
        "json": result.model_dump_json,
        "dump": result.model_dump,
        "repr": lambda: repr(result),
        "pickle": lambda: pickle.dumps(result),
    }
    reads[first]()
    assert result.started_at.tzinfo is UTC
    assert result.started_at <= result.finished_at
    assert result.duration == (result.finished_at - result.started_at).total_seconds()
    # the fields in one order whatever was read first: the JSON of a result read another way
    plain = RunResult.model_validate_json(result.model_dump_json())
    assert list(json.loads(result.model_dump_json())) == list(
        json.loads(_wide_run().model_dump_json())
    )
    assert plain == result
    assert plain.duration == result.duration
    assert plain.started_at == result.started_at


def test_a_results_times_are_read_from_the_wall_clock_around_the_run() -> None:
    from datetime import UTC, datetime

    before = datetime.now(UTC)
    result = _wide_run()
    after = datetime.now(UTC)
    assert before <= result.started_at <= result.finished_at <= after
    assert vars(result)["duration"] == result.duration  # made once, then kept


def test_result_text_writes_the_times_as_the_result_json_does() -> None:
    from flowrt._fast import result_text

    fresh, read = _wide_run(), _wide_run()
    assert read.duration >= 0  # its times made before its JSON is written
    for result in (fresh, read):
        text = result_text(result)
        assert text is not None
        assert text == result.model_dump_json()
