from __future__ import annotations

import json

import pytest

from flowrt import (
    DefinitionError,
    ErrorHandling,
    NodeResult,
    Workflow,
    WorkflowFailed,
    WorkflowRetry,
)


def test_error_handling_defaults_match_the_contract() -> None:
    policy = ErrorHandling()
    assert policy.behavior == "raise"
    assert policy.max_retries == 0
    assert policy.retry_interval_seconds == 1
    assert policy.backoff_rate == 1
    assert policy.timeout_seconds is None
    assert policy.max_interval_seconds is None
    assert policy.jitter == 0.0
    assert policy.retry_on == (Exception,)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("retry_interval_seconds", -0.5),
        ("backoff_rate", 0.5),
        ("timeout_seconds", 0),
        ("timeout_seconds", -3),
        ("max_interval_seconds", -1),
        ("jitter", 1.5),
        ("jitter", -0.1),
        ("behavior", "explode"),
    ],
)
def test_bad_error_handling_values_raise_definition_error_naming_the_field(
    field: str, value: object
) -> None:
    with pytest.raises(DefinitionError, match=field) as info:
        ErrorHandling(**{field: value})
    assert info.value.field == f"ErrorHandling.{field}"
    assert isinstance(info.value, ValueError)


def test_unknown_error_handling_field_is_refused() -> None:
    with pytest.raises(DefinitionError, match="max_retry"):
        ErrorHandling(max_retry=3)  # type: ignore[call-arg]


def test_shortcuts() -> None:
    assert ErrorHandling.fail() == ErrorHandling(behavior="raise")
    assert ErrorHandling.ignore() == ErrorHandling(behavior="return")
    retry = ErrorHandling.retry(attempts=3, seconds=10)
    assert (retry.behavior, retry.max_retries, retry.retry_interval_seconds) == ("raise", 3, 10)
    assert ErrorHandling.retry(attempts=1, seconds=0, ignore_final_error=True).behavior == "return"


def test_retry_on_accepts_one_class_a_tuple_or_a_predicate() -> None:
    assert ErrorHandling(retry_on=KeyError).retries(KeyError("k"))
    assert not ErrorHandling(retry_on=KeyError).retries(ValueError())
    assert ErrorHandling(retry_on=(KeyError, ValueError)).retries(ValueError())
    assert ErrorHandling(retry_on=lambda exc: "again" in str(exc)).retries(RuntimeError("again"))


def test_workflow_retry_validates() -> None:
    with pytest.raises(DefinitionError, match="backoff_rate"):
        WorkflowRetry(backoff_rate=0)


def test_envelope_shape_and_json_round_trip() -> None:
    wf = Workflow("shape")

    @wf.node(error_handling=ErrorHandling.ignore())
    async def bad() -> None:
        raise KeyError("missing")

    @wf.node
    async def good() -> dict[str, int]:
        return {"n": 1}

    result = wf.run_sync()
    assert result["good"].model_dump(include={"status", "output", "error"}) == {
        "status": "success",
        "output": {"n": 1},
        "error": None,
    }
    assert result["bad"].status == "failure"
    assert result["bad"].output is None
    assert result["bad"].error is not None
    assert (result["bad"].error.type, result["bad"].error.message) == ("KeyError", "'missing'")
    data = json.loads(result.model_dump_json())
    error = data["nodes"]["bad"]["error"]
    assert (error["type"], error["message"]) == ("KeyError", "'missing'")
    assert error["traceback"].endswith("KeyError: 'missing'\n")
    assert NodeResult.model_validate(data["nodes"]["good"]).output == {"n": 1}
    assert type(result).model_validate_json(result.model_dump_json()) == result


def test_raise_for_status() -> None:
    wf = Workflow("fails")

    @wf.node
    async def boom() -> None:
        raise RuntimeError("nope")

    result = wf.run_sync()
    with pytest.raises(WorkflowFailed, match="RuntimeError: nope") as info:
        result.raise_for_status()
    assert info.value.run_id == result.run_id
    ok = Workflow("ok")
    ok.node(lambda: 1, name="one")
    done = ok.run_sync()
    assert done.raise_for_status() is done


def test_a_final_failure_keeps_its_last_20_frames_and_retried_attempts_none() -> None:
    from flowrt import ErrorHandling, Workflow

    wf = Workflow("deep-failure")

    def dig(depth: int) -> None:
        if depth == 0:
            raise LookupError("bottom")
        dig(depth - 1)

    @wf.node(error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=0))
    async def digger() -> None:
        dig(50)

    node = wf.run_sync()["digger"]
    assert node.error is not None
    text = node.error.traceback
    assert text is not None
    # the last 20 frames of 50+: 3 shown + 16 repeated recursive frames, and the raising one
    assert text.count('  File "') == 4
    assert "[Previous line repeated 16 more times]" in text
    assert 'raise LookupError("bottom")' in text
    assert text.endswith("LookupError: bottom\n")
    assert [a.error.traceback for a in node.trace if a.error] == [None, None]


def test_raise_for_status_chains_the_exception_that_failed_the_run() -> None:
    from flowrt import Workflow, WorkflowFailed

    class Declined(Exception):
        pass

    wf = Workflow("declined")
    raised: list[BaseException] = []

    @wf.node
    async def charge() -> None:
        exc = Declined("card declined")
        raised.append(exc)
        raise exc

    result = wf.run_sync()
    with pytest.raises(WorkflowFailed) as failed:
        result.raise_for_status()
    assert failed.value.__cause__ is raised[0]
    assert type(result).model_validate_json(result.model_dump_json()) == result


def test_repr_is_one_short_line_whatever_the_runs_size() -> None:
    wf = Workflow("wide")
    wf.node(lambda: "x" * 1000, name="root")
    for i in range(10_000):
        wf.node(lambda value: value, name=f"n{i}", inputs={"value": "$.root.output"})
    result = wf.run_sync()
    text = repr(result)
    assert text == (
        f"RunResult(run_id={result.run_id!r}, status='success', nodes=10001, "
        f"duration={round(result.duration, 2)!r})"
    )
    assert str(result) == text.removeprefix("RunResult(").removesuffix(")").replace(", ", " ")
    assert repr(result["n5"]) == (
        f"NodeResult(status='success', attempts=1, duration={round(result['n5'].duration, 2)!r})"
    )
    assert len(result.model_dump_json()) > 1_000_000  # the whole result is still there


def test_a_failed_nodes_repr_names_its_error_type_not_its_message() -> None:
    wf = Workflow("fails")

    @wf.node
    def boom() -> None:
        raise KeyError("x" * 10_000)

    text = repr(wf.run_sync()["boom"])
    assert text.startswith("NodeResult(status='failure', error='KeyError', attempts=1, duration=")
    assert len(text) < 100
