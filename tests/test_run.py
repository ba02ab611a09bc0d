"""Running: the RunResult, the output mapping, workflow-level retry, run_sync."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from flowrt import ErrorHandling, Workflow, WorkflowRetry

pytestmark = pytest.mark.anyio


def retried_workflow(
    seen: list[tuple[float, Any]], fail_runs: int, retry: WorkflowRetry
) -> Workflow:
    wf = Workflow("retried", retry=retry)

    @wf.node
    async def first(order: int) -> int:
        seen.append((anyio.current_time(), order))
        return order

    @wf.node(inputs={"order": "$.first.output"})
    async def second(order: int) -> int:
        if len(seen) <= fail_runs:
            raise ConnectionError(f"run {len(seen)} failed")
        return order * 2

    return wf


async def test_workflow_retry_reruns_from_the_first_node_with_the_same_input() -> None:
    seen: list[tuple[float, Any]] = []
    wf = retried_workflow(seen, fail_runs=2, retry=WorkflowRetry(max_retries=3, delay_seconds=0))
    result = await wf.run({"order": 21})
    assert result.status == "success"
    assert result.attempts == 3
    assert [order for _, order in seen] == [21, 21, 21]
    assert result["second"].output == 42


async def test_workflow_retry_gives_up_after_max_retries() -> None:
    seen: list[tuple[float, Any]] = []
    wf = retried_workflow(seen, fail_runs=10, retry=WorkflowRetry(max_retries=2, delay_seconds=0))
    result = await wf.run({"order": 1})
    assert (result.status, result.attempts, len(seen)) == ("failure", 3, 3)
    assert result.error is not None
    assert result.error.message == "run 3 failed"


@pytest.mark.parametrize("anyio_backend", [("trio", {"clock": MockClock(autojump_threshold=0)})])
async def test_workflow_retry_waits_delay_times_rate_to_the_k() -> None:
    seen: list[tuple[float, Any]] = []
    wf = retried_workflow(
        seen, fail_runs=3, retry=WorkflowRetry(max_retries=3, delay_seconds=60, backoff_rate=2)
    )
    result = await wf.run({"order": 1})
    assert result.attempts == 4
    starts = [t - seen[0][0] for t, _ in seen]
    assert starts == [0, 60, 180, 420]


async def test_run_result_fields() -> None:
    wf = Workflow("fields")

    @wf.node
    async def a() -> int:
        return 1

    result = await wf.run()
    assert result.workflow == "fields"
    assert len(result.run_id) == 32
    int(result.run_id, 16)
    assert result.started_at <= result.finished_at
    assert result.duration >= 0
    assert result["a"] is result.nodes["a"]
    assert result.attempts == 1
    other = await wf.run()
    assert other.run_id != result.run_id


async def test_output_defaults_to_the_sink_nodes_outputs() -> None:
    wf = Workflow("sinks")

    @wf.node
    async def a() -> int:
        return 1

    @wf.node(inputs={"x": "$.a.output"})
    async def b(x: int) -> int:
        return x + 1

    @wf.node
    async def c() -> str:
        return "c"

    assert (await wf.run()).output == {"b": 2, "c": "c"}


async def test_output_mapping_resolves_like_inputs() -> None:
    wf = Workflow(
        "mapped",
        output={
            "summary": "$.summarizer.output",
            "why": "$.scraper.error.message",
            "fallback": "$.missing_output.output || no answer",
            "note": "scraped: {{ scraper.status }}",
            "constant": 7,
        },
    )

    @wf.node(error_handling=ErrorHandling.ignore())
    async def scraper() -> None:
        raise TimeoutError("site down")

    @wf.node(inputs={"page": "$.scraper.output"})
    async def summarizer(page: str | None) -> str:
        return f"summary of {page}"

    @wf.node
    async def missing_output() -> None:
        return None

    result = await wf.run()
    assert result.output == {
        "summary": "summary of None",
        "why": "site down",
        "fallback": "no answer",
        "note": "scraped: failure",
        "constant": 7,
    }


def test_run_sync_runs_outside_an_event_loop() -> None:
    wf = Workflow("sync")
    wf.node(lambda x: x * 2, name="double")
    assert wf.run_sync({"x": 4})["double"].output == 8


async def test_a_pydantic_model_input_is_taken_as_its_data() -> None:
    from pydantic import BaseModel

    class Order(BaseModel):
        order_id: int
        items: list[str]

    wf = Workflow("typed-input")

    @wf.node
    async def count(order_id: int, items: list[str]) -> str:
        return f"{order_id}: {len(items)}"

    result = await wf.run(Order(order_id=3, items=["a", "b"]))
    assert result["count"].output == "3: 2"
