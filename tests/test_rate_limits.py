"""Rate limits: GCRA against a sliding-window reference (hypothesis), exact turns on trio's
MockClock (burst, retries take permits, map items, outside the attempt timeout, max_wait turned
into a retryable ``RateLimited`` that reserves nothing, ``node.throttled``), definitions, and on
both stores: concurrent runs within the limit, and a long wait that parks the run, frees its
slot and does not take a second permit when resumed."""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from flowrt import DefinitionError, ErrorHandling, RateLimit, Workflow
from flowrt._store.rates import turn

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 8),
    per=st.sampled_from([0.5, 1.0, 3.0]),
    burst=st.integers(0, 4),
    gaps=st.lists(st.floats(0, 1.5), min_size=1, max_size=60),
)
def test_gcra_never_grants_more_than_limit_plus_burst_in_any_window(
    limit: int, per: float, burst: int, gaps: list[float]
) -> None:
    interval, now, tat, turns = per / limit, 0.0, 0.0, []
    for gap in gaps:
        now += gap
        at, tat = turn(tat, now, interval, burst)
        assert at >= now - 1e-12  # never in the past
        turns.append(at)
    assert turns == sorted(turns)  # first come, first served
    for i, start in enumerate(turns):
        inside = [t for t in turns[i:] if t < start + per - 1e-9]
        assert len(inside) <= limit + burst


def test_gcra_grants_burst_plus_one_at_once_then_one_per_interval() -> None:
    tat, turns = 0.0, []
    for _ in range(6):
        at, tat = turn(tat, 0.0, 0.5, 2)
        turns.append(at)
    assert turns == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "rate_limit.limit"),
        ({"limit": 2.5}, "rate_limit.limit"),
        ({"per_seconds": 0}, "rate_limit.per_seconds"),
        ({"burst": -1}, "rate_limit.burst"),
        ({"max_wait_seconds": -1}, "rate_limit.max_wait_seconds"),
        ({"name": ""}, "rate_limit.name"),
    ],
)
def test_bad_rate_limits_are_definition_errors(kwargs: dict[str, Any], field: str) -> None:
    settings_ = {"name": "api", "limit": 5, **kwargs}
    with pytest.raises(DefinitionError) as caught:
        RateLimit(**settings_)
    assert caught.value.field == field


def test_one_name_with_two_limits_and_keys_over_unknown_nodes_are_refused() -> None:
    wf = Workflow("two-shapes")
    wf.node(lambda: 1, name="a", rate_limit=RateLimit("api", 5))
    wf.node(lambda: 2, name="b", rate_limit=RateLimit("api", 6))
    with pytest.raises(DefinitionError, match="one name, one limit") as caught:
        wf.validate()
    assert caught.value.node == "b"
    wf = Workflow("bad-key")
    wf.node(lambda: 1, name="a")
    wf.node(lambda: 2, name="b", rate_limit=RateLimit("api", 5, key="$.a.output"))
    with pytest.raises(DefinitionError, match="unknown node 'a'"):
        wf.validate()  # a key reads the input and the node's own dependencies only
    wf = Workflow("on-a-wait")
    wf.wait("approve")
    wf.nodes["approve"].rate_limit = RateLimit("api", 5)
    with pytest.raises(DefinitionError, match="takes a rate limit"):
        wf.validate()


def rated(name: str, starts: list[float], fail: int = 0, **rate: Any) -> Workflow:
    wf = Workflow(name)
    policy = ErrorHandling(max_retries=fail, retry_interval_seconds=0)

    @wf.node(rate_limit=RateLimit(name, **rate), error_handling=policy)
    async def call(n: int = 0) -> int:
        starts.append(anyio.current_time())
        if len(starts) <= fail:
            raise ConnectionError("flaky")
        return n

    return wf


async def test_in_memory_turns_are_exact_with_a_burst() -> None:
    starts: list[float] = []
    wf = rated("burst", starts, limit=2, per_seconds=1.0, burst=1)
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(wf.run, {"n": i})
    assert sorted(round(s - t0, 6) for s in starts) == [0, 0, 0.5, 1.0, 1.5, 2.0]


async def test_retries_take_permits_and_the_wait_is_outside_the_attempt_timeout() -> None:
    starts: list[float] = []
    events: list[Any] = []
    wf = rated("retries", starts, fail=2, limit=1, per_seconds=3.0)
    wf.nodes["call"].error_handling = ErrorHandling(
        max_retries=2, retry_interval_seconds=0, timeout_seconds=0.5
    )
    t0 = anyio.current_time()
    result = await wf.run(listener=events.append)
    assert result.status == "success"
    assert [round(s - t0, 6) for s in starts] == [0, 3.0, 6.0]
    throttled = [e for e in events if e.kind == "node.throttled"]
    assert [(e.attempt, e.wait, e.rate_limit) for e in throttled] == [
        (2, pytest.approx(3.0), "retries"),
        (3, pytest.approx(3.0), "retries"),
    ]


async def test_map_items_each_take_a_permit() -> None:
    wf = Workflow("items")
    seen: list[float] = []

    @wf.map(items="$.input.xs", rate_limit=RateLimit("items", limit=4, per_seconds=1.0))
    async def each(x: int) -> int:
        seen.append(anyio.current_time())
        return x

    t0 = anyio.current_time()
    result = await wf.run({"xs": list(range(8))})
    assert [item["output"] for item in result.output["each"]] == list(range(8))
    assert sorted(round(s - t0, 6) for s in seen) == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


async def test_a_turn_past_max_wait_fails_retryably_and_reserves_nothing() -> None:
    starts: list[float] = []
    wf = rated("max-wait", starts, limit=1, per_seconds=10.0, max_wait_seconds=1.0)
    t0 = anyio.current_time()
    assert (await wf.run()).status == "success"
    refused = await wf.run()
    assert refused.status == "failure"
    assert refused.error.type == "RateLimited"
    assert "max_wait_seconds=1" in refused.error.message
    assert refused.nodes["call"].attempts == 1
    await anyio.sleep(9.0 - (anyio.current_time() - t0))  # (MockClock) 1 s before its turn
    assert (await wf.run()).status == "success"  # the refusal took nothing: turn at 10 s
    assert [round(s - t0, 6) for s in starts] == [0, 10.0]
    wf.nodes["call"].error_handling = ErrorHandling(max_retries=1, retry_interval_seconds=9.5)
    assert (await wf.run()).nodes["call"].attempts == 2  # RateLimited is retried


async def test_keys_give_each_value_its_own_limit() -> None:
    starts: list[float] = []
    wf = rated("keyed", starts, limit=1, per_seconds=5.0, key="{{ input.n % 2 }}")
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(wf.run, {"n": i})
    assert sorted(round(s - t0, 6) for s in starts) == [0, 0, 5.0, 5.0]


async def test_each_start_of_a_sub_workflow_takes_a_permit() -> None:
    starts: list[float] = []
    child = Workflow("child")

    @child.node
    async def work() -> float:
        starts.append(anyio.current_time())
        return anyio.current_time()

    parent = Workflow("parent")
    parent.subworkflow(child, name="call", rate_limit=RateLimit("children", 1, per_seconds=2.0))
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(functools.partial(parent.run, run_id=f"p{i}"))
    assert sorted(round(s - t0, 6) for s in starts) == [0, 2.0, 4.0]


async def test_a_turn_counts_against_the_run_deadline_not_the_attempt_timeout() -> None:
    starts: list[float] = []
    wf = rated("deadline", starts, limit=1, per_seconds=5.0)
    wf.nodes["call"].error_handling = ErrorHandling(timeout_seconds=0.5)
    t0 = anyio.current_time()
    assert (await wf.run()).status == "success"
    late = await wf.run(timeout=1.0)  # its turn is 5 s away: the run's deadline comes first
    assert late.status == "failure"
    assert late.error.type == "TimeoutError"
    assert round(anyio.current_time() - t0, 6) == 1.0
    assert (await wf.run(timeout=10.0)).status == "success"  # a 9 s wait, 0.5 s attempt timeout
    assert [round(s - t0, 6) for s in starts] == [0, 10.0]  # the timed-out run's turn is spent
