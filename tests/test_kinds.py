"""Choice, map and loop nodes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from flowrt import Condition, ErrorHandling, Final, Workflow

pytestmark = pytest.mark.anyio


def fallback_workflow(scraper_fails: bool) -> Workflow:
    wf = Workflow("fallback")

    @wf.node(error_handling=ErrorHandling.ignore())
    async def scraper() -> str:
        if scraper_fails:
            raise ConnectionError("site down")
        return "page"

    route = wf.choice(
        "route", {"ok": Condition("$.scraper.status", "==", "success"), "fallback": None}
    )

    @wf.node(depends=[route["ok"]], inputs={"page": "$.scraper.output"})
    async def summarize(page: str) -> str:
        return f"summary of {page}"

    @wf.node(depends=[summarize])
    async def publish() -> str:
        return "published"

    @wf.node(depends=[route["fallback"]], inputs={"why": "$.scraper.error.message"})
    async def apologize(why: str) -> str:
        return f"sorry: {why}"

    @wf.node(
        depends=[summarize, apologize],
        trigger="any",
        inputs={"answer": "$.summarize.output || $.apologize.output"},
    )
    async def respond(answer: str) -> str:
        return answer

    return wf


async def test_choice_takes_the_first_option_that_holds() -> None:
    result = await fallback_workflow(scraper_fails=False).run()
    assert result["route"].output == "ok"
    assert (result["summarize"].status, result["apologize"].status) == ("success", "skip")
    assert result["apologize"].reason == "branch 'route.fallback' was not taken"
    assert result["respond"].output == "summary of page"
    assert result.status == "success"


async def test_choice_falls_back_and_the_skip_cascades() -> None:
    result = await fallback_workflow(scraper_fails=True).run()
    assert result["route"].output == "fallback"
    assert [result[n].status for n in ("summarize", "publish")] == ["skip", "skip"]
    assert result["respond"].output == "sorry: site down"
    assert result.status == "success"


async def test_no_matching_option_and_no_default_is_a_no_match_failure() -> None:
    wf = Workflow("nomatch")
    wf.node(lambda: 5, name="n")
    route = wf.choice("route", {"big": Condition("$.n.output", ">", 10)})
    wf.node(lambda: 1, name="after", depends=[route["big"]])
    result = await wf.run()
    assert result["route"].status == "failure"
    assert result["route"].error is not None
    assert result["route"].error.type == "NoMatch"
    assert result["after"].status == "skip"
    assert result.status == "failure"


async def test_a_callable_condition_sees_plain_data_of_its_dependencies_only() -> None:
    seen: list[Any] = []
    wf = Workflow("callable")
    a = wf.node(lambda: {"n": 3}, name="a")
    wf.node(lambda: "noise", name="unrelated")

    def big(store: Any) -> bool:
        seen.append(store)
        return bool(store["a"]["output"]["n"] > 2)

    route = wf.choice("route", {"big": big, "small": None}, depends=[a])
    wf.node(lambda: "B", name="on_big", depends=[route["big"]])
    result = await wf.run({"k": 1})
    assert result["on_big"].output == "B"
    assert set(seen[0]) == {"input", "a"}
    assert seen[0]["a"] == {"status": "success", "output": {"n": 3}, "error": None}


async def test_map_keeps_going_when_one_item_of_a_hundred_fails() -> None:
    wf = Workflow("map")

    @wf.map(items="$.input.orders", concurrency=10, error_handling=ErrorHandling.ignore())
    async def charge(item: int) -> int:
        if item == 42:
            raise ValueError(f"card declined for order {item}")
        return item * 2

    result = await wf.run({"orders": list(range(100))})
    items = result["charge"].output
    assert result["charge"].status == "success"
    assert len(items) == 100
    assert [item["status"] for item in items].count("failure") == 1
    assert items[42] == {
        "status": "failure",
        "output": None,
        "error": {"type": "ValueError", "message": "card declined for order 42"},
    }
    assert items[7] == {"status": "success", "output": 14, "error": None}


async def test_map_concurrency_peak_equals_the_bound() -> None:
    running = peak = 0
    wf = Workflow("peak")

    @wf.map(items="$.input.items", concurrency=7)
    async def work(item: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.001)
        running -= 1
        return item

    result = await wf.run({"items": list(range(50))})
    assert [item["output"] for item in result["work"].output] == list(range(50))
    assert peak == 7


async def test_map_raise_fails_on_the_first_item_failure_and_cancels_the_rest() -> None:
    cancelled: list[int] = []
    finished: list[int] = []
    wf = Workflow("strict")

    @wf.map(items="$.input.items", concurrency=5)
    async def work(item: int) -> int:
        if item == 0:
            await anyio.sleep(0.01)
            raise RuntimeError("bad item")
        try:
            await anyio.sleep(10)
        except BaseException:
            cancelled.append(item)
            raise
        finished.append(item)
        return item

    with anyio.fail_after(5):
        result = await wf.run({"items": list(range(20))})
    assert result["work"].status == "failure"
    assert result["work"].error is not None
    assert result["work"].error.type == "RuntimeError"
    assert result["work"].error.message == "item 0: bad item"
    assert sorted(cancelled) == [1, 2, 3, 4]
    assert finished == []
    assert result.status == "failure"


async def test_map_items_get_their_own_retries_and_timeouts() -> None:
    attempts: dict[int, int] = {}
    wf = Workflow("per-item")

    @wf.map(
        items=[1, 2, 3],
        error_handling=ErrorHandling(
            behavior="return", max_retries=2, retry_interval_seconds=0, timeout_seconds=0.05
        ),
    )
    async def work(item: int) -> int:
        attempts[item] = attempts.get(item, 0) + 1
        if item == 2 and attempts[item] == 1:
            raise ConnectionError("flaky")
        if item == 3:
            await anyio.sleep(10)
        return item

    result = await wf.run()
    statuses = [item["status"] for item in result["work"].output]
    assert statuses == ["success", "success", "failure"]
    assert attempts == {1: 1, 2: 2, 3: 3}
    assert result["work"].output[2]["error"]["type"] == "TimeoutError"


@pytest.mark.parametrize(
    ("tolerated", "failing", "status"),
    [(3, 3, "success"), (3, 4, "failure"), (0.25, 5, "success"), (0.25, 6, "failure")],
)
async def test_tolerated_failures_bounds_a_return_map(
    tolerated: float, failing: int, status: str
) -> None:
    wf = Workflow("tolerant")

    @wf.map(
        items="$.input.items",
        concurrency=1,
        tolerated_failures=tolerated,
        error_handling=ErrorHandling.ignore(),
    )
    async def work(item: int) -> int:
        if item < failing:
            raise ValueError(str(item))
        return item

    result = await wf.run({"items": list(range(20))})
    assert result["work"].status == status
    if status == "failure":
        assert result["work"].error is not None
        assert result["work"].error.type == "TooManyFailures"
        assert f"{failing} of 20 items failed" in result["work"].error.message


async def test_map_items_that_are_not_a_list_fail_with_input_error() -> None:
    wf = Workflow("not-a-list")

    @wf.map(items="$.input.items", error_handling=ErrorHandling.ignore())
    async def work(item: int) -> int:
        return item

    result = await wf.run({"items": {"a": 1}})
    assert result["work"].error is not None
    assert result["work"].error.type == "InputError"
    assert "not a list" in result["work"].error.message


async def test_map_passes_other_parameters_and_its_output_is_selectable() -> None:
    wf = Workflow("rates")

    @wf.map(
        items="$.input.amounts",
        inputs={"rate": "$.input.rate"},
        error_handling=ErrorHandling.ignore(),
    )
    def convert(item: float, rate: float) -> float:
        if item < 0:
            raise ValueError("negative")
        return item * rate

    @wf.node(
        inputs={
            "failed": "$.convert.output[?(@.status=='failure')].error.message",
            "ok": "$.convert.output[?(@.status=='success')].output",
        }
    )
    async def report(failed: Any, ok: Any) -> dict[str, Any]:
        return {"failed": failed, "ok": ok}

    result = await wf.run({"amounts": [1, -1, 3], "rate": 2})
    assert result["report"].output == {"failed": "negative", "ok": [2, 6]}


async def test_loop_runs_until_final_starting_from_its_inputs() -> None:
    states: list[Any] = []
    wf = Workflow("loop")

    @wf.loop(max_loops=10, inputs={"goal": "$.input.goal"})
    async def agent(state: dict[str, Any]) -> Any:
        states.append(dict(state))
        count = state.get("count", 0) + 1
        if count == 3:
            return Final(f"reached {state['goal']} in {count}")
        return {**state, "count": count}

    result = await wf.run({"goal": "answer"})
    assert result["agent"].output == "reached answer in 3"
    assert states[0] == {"goal": "answer"}
    assert len(states) == 3


async def test_loop_raise_reports_the_exact_limit_message() -> None:
    wf = Workflow("forever")

    @wf.loop(max_loops=15)
    async def researcher(state: Any) -> Any:
        return state

    result = await wf.run()
    assert result["researcher"].status == "failure"
    assert result["researcher"].error is not None
    assert result["researcher"].error.type == "MaxLoopsExceeded"
    assert result["researcher"].error.message == (
        "Agent 'researcher' has reached the maximum loop limit of 15 without finding a final answer"
    )


async def test_loop_return_calls_finalize_with_the_last_state() -> None:
    wf = Workflow("best-effort")

    def best_effort(state: dict[str, int]) -> str:
        return f"best guess after {state['n']}"

    @wf.loop(max_loops=4, on_max_loops="return", finalize=best_effort)
    def step(state: dict[str, int]) -> dict[str, int]:
        return {"n": state.get("n", 0) + 1}

    result = await wf.run()
    assert (result["step"].status, result["step"].output) == ("success", "best guess after 4")
