"""Run semantics: skip cascades, raise vs return, triggers, concurrency, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from flowrt import ErrorHandling, Workflow

pytestmark = pytest.mark.anyio


async def fail() -> None:
    raise RuntimeError("upstream broke")


async def ok() -> str:
    return "fine"


async def test_raise_failure_skips_dependents_transitively() -> None:
    wf = Workflow("cascade")
    a = wf.node(fail, name="a")
    b = wf.node(ok, name="b", depends=[a])
    c = wf.node(ok, name="c", depends=[b])
    wf.node(ok, name="d", depends=[c])
    x = wf.node(ok, name="x")
    wf.node(ok, name="y", depends=[x])
    result = await wf.run()
    assert result.status == "failure"
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("RuntimeError", "upstream broke")
    assert [result[n].status for n in "abcd"] == ["failure", "skip", "skip", "skip"]
    assert [result[n].attempts for n in "bcd"] == [0, 0, 0]
    assert result["b"].reason == "'a' failed"
    assert result["c"].reason == "'b' was skipped ('a' failed)"
    assert result["d"].reason == "'c' was skipped ('a' failed)"
    assert (result["x"].status, result["y"].status) == ("success", "success")


async def test_return_failure_is_readable_downstream_and_the_run_succeeds() -> None:
    wf = Workflow("ret")
    wf.node(fail, name="scraper", error_handling=ErrorHandling.ignore())

    @wf.node(
        inputs={
            "status": "$.scraper.status",
            "why": "$.scraper.error.message",
            "kind": "$.scraper.error.type",
        }
    )
    async def report(status: str, why: str, kind: str) -> str:
        return f"{status}: {kind}: {why}"

    result = await wf.run()
    assert result.status == "success"
    assert result.error is None
    assert result["report"].output == "failure: RuntimeError: upstream broke"


async def test_a_skipped_return_node_does_not_block_its_dependents() -> None:
    wf = Workflow("seed")
    a = wf.node(fail, name="a")
    b = wf.node(ok, name="b", depends=[a], error_handling=ErrorHandling.ignore())

    @wf.node(depends=[b], inputs={"seen": "$.b.status"})
    async def c(seen: str) -> str:
        return seen

    result = await wf.run()
    assert (result["b"].status, result["c"].status, result["c"].output) == (
        "skip",
        "success",
        "skip",
    )
    assert result.status == "failure"  # a's raise failure still fails the run


async def test_trigger_any_runs_when_one_dependency_succeeded() -> None:
    wf = Workflow("any")
    a = wf.node(fail, name="a")
    b = wf.node(ok, name="b")
    wf.node(ok, name="join", depends=[a, b], trigger="any")
    wf.node(ok, name="nothing", depends=[a], trigger="any")
    result = await wf.run()
    assert result["join"].status == "success"
    assert result["nothing"].status == "skip"


async def test_trigger_always_runs_after_failures_and_sees_them() -> None:
    wf = Workflow("always")
    a = wf.node(fail, name="a")
    b = wf.node(ok, name="b", depends=[a])

    @wf.node(depends=[a, b], trigger="always", inputs={"a": "$.a.status", "b": "$.b.status"})
    async def cleanup(a: str, b: str) -> str:
        return f"{a},{b}"

    result = await wf.run()
    assert result["cleanup"].output == "failure,skip"
    assert result.status == "failure"


async def test_on_failure_handler_takes_the_failure_but_other_dependents_still_skip() -> None:
    wf = Workflow("handled")
    a = wf.node(fail, name="a")
    wf.node(ok, name="b", depends=[a])

    @wf.node(depends=[a], trigger="on_failure", inputs={"why": "$.a.error.message"})
    async def alert(why: str) -> str:
        return f"alerted: {why}"

    result = await wf.run()
    assert result["alert"].output == "alerted: upstream broke"
    assert result["b"].status == "skip"
    assert result.status == "success"
    assert result.error is None


async def test_on_failure_handler_skips_when_nothing_failed() -> None:
    wf = Workflow("quiet")
    a = wf.node(ok, name="a")
    wf.node(ok, name="alert", depends=[a], trigger="on_failure")
    result = await wf.run()
    assert result["alert"].status == "skip"
    assert result.status == "success"


async def test_a_failing_handler_fails_the_run() -> None:
    wf = Workflow("bad-handler")
    a = wf.node(fail, name="a")
    wf.node(fail, name="alert", depends=[a], trigger="on_failure")
    result = await wf.run()
    assert result.status == "failure"


async def test_sync_node_does_not_block_a_concurrent_async_node() -> None:
    release = threading.Event()

    def blocking() -> str:
        release.wait(5)  # blocks its worker thread until the async node has run
        return "sync done"

    async def ticking() -> int:
        for _ in range(5):
            await anyio.sleep(0.001)
        release.set()
        return 5

    wf = Workflow("mixed")
    wf.node(blocking)
    wf.node(ticking)
    with anyio.fail_after(3):
        result = await wf.run()
    assert result["ticking"].output == 5
    assert result["blocking"].output == "sync done"


async def test_a_fast_branch_is_not_held_back_by_a_slow_sibling() -> None:
    gate = anyio.Event()

    async def slow() -> str:
        await gate.wait()  # only the fast branch's child can open this
        return "slow"

    async def fast() -> str:
        return "fast"

    async def fast_child() -> str:
        gate.set()
        return "child"

    wf = Workflow("waves")
    root = wf.node(ok, name="root")
    wf.node(slow, depends=[root])
    f = wf.node(fast, depends=[root])
    wf.node(fast_child, depends=[f])
    with anyio.fail_after(3):  # wave scheduling would deadlock here
        result = await wf.run()
    assert result.status == "success"


async def test_max_concurrency_caps_nodes_running_at_once() -> None:
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1

    wf = Workflow("capped", max_concurrency=3)
    for i in range(10):
        wf.node(work, name=f"n{i}")
    result = await wf.run()
    assert result.status == "success"
    assert peak == 3


VIRTUAL = [("trio", {"clock": MockClock(autojump_threshold=0)})]


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_run_timeout_cancels_running_nodes_and_skips_unstarted_ones() -> None:
    stopped: list[float] = []

    async def hang() -> None:
        try:
            await anyio.sleep(100)
        finally:
            stopped.append(anyio.current_time())

    wf = Workflow("deadline")
    h = wf.node(hang)
    wf.node(ok, name="after", depends=[h])
    wf.node(ok, name="quick")
    start = anyio.current_time()
    result = await wf.run(timeout=0.1)
    assert anyio.current_time() - start == pytest.approx(0.1, abs=1e-9)  # exactly at the deadline
    assert [t - start for t in stopped] == [pytest.approx(0.1, abs=1e-9)]
    assert result.status == "failure"
    assert result.error is not None
    assert result.error.type == "TimeoutError"
    assert "timed out after 0.1s" in result.error.message
    assert result["hang"].status == "failure"
    assert result["hang"].error is not None
    assert result["hang"].error.type == "TimeoutError"
    assert result["after"].status == "skip"
    assert result["quick"].status == "success"


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
@pytest.mark.parametrize("seconds", [0.05, 0.099, 0.0999, 0.1001, 0.101, 0.5])
async def test_a_node_finishing_before_the_deadline_succeeds_and_after_it_times_out(
    seconds: float,
) -> None:
    wf = Workflow("sweep")

    @wf.node
    async def work() -> float:
        await anyio.sleep(seconds)
        return seconds

    start = anyio.current_time()
    result = await wf.run(timeout=0.1)
    took = anyio.current_time() - start
    if seconds < 0.1:
        assert (result.status, result["work"].output) == ("success", seconds)
        assert took == pytest.approx(seconds, abs=1e-9)
    else:
        assert result["work"].error is not None
        assert (result.status, result["work"].error.type) == ("failure", "TimeoutError")
        assert took == pytest.approx(0.1, abs=1e-9)


async def test_cancelling_the_caller_cancels_every_node_and_propagates() -> None:
    started = anyio.Event()
    witness: list[str] = []

    async def long() -> None:
        started.set()
        try:
            await anyio.sleep(100)
        finally:
            witness.append("long stopped")

    async def downstream() -> None:
        witness.append("downstream ran")

    wf = Workflow("cancel")
    first = wf.node(long)
    wf.node(downstream, depends=[first])
    returned: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def caller() -> None:
            returned.append(await wf.run())

        tg.start_soon(caller)
        await started.wait()
        tg.cancel_scope.cancel()
    assert witness == ["long stopped"]
    assert returned == []
    await anyio.sleep(0.01)
    assert witness == ["long stopped"]


async def test_a_node_sees_only_its_dependencies() -> None:
    wf = Workflow("view")
    wf.node(ok, name="unrelated")

    async def dep() -> str:
        await anyio.sleep(0.01)  # unrelated has finished by now
        return "mine"

    d = wf.node(dep)

    @wf.node(depends=[d], inputs={"statuses": "$..status"})
    async def peek(statuses: Any) -> Any:
        return statuses

    result = await wf.run()
    assert result["peek"].output == "success"  # one match: dep's, not unrelated's


async def test_unmapped_parameters_come_from_the_run_input_or_their_default() -> None:
    wf = Workflow("params")

    @wf.node
    async def greet(name: str, greeting: str = "hello") -> str:
        return f"{greeting} {name}"

    assert (await wf.run({"name": "ada"}))["greet"].output == "hello ada"
    assert (await wf.run({"name": "ada", "greeting": "hi"}))["greet"].output == "hi ada"


async def test_a_parameter_without_a_value_fails_the_node_with_input_error() -> None:
    calls: list[str] = []
    wf = Workflow("missing")

    @wf.node(error_handling=ErrorHandling(max_retries=3, retry_interval_seconds=0))
    async def needs(url: str) -> str:
        calls.append(url)
        return url

    result = await wf.run({"other": 1})
    assert result["needs"].status == "failure"
    assert result["needs"].attempts == 1
    assert calls == []
    assert result["needs"].error is not None
    assert result["needs"].error.type == "InputError"
    assert "'url'" in result["needs"].error.message
    assert "needs" in result["needs"].error.message


@pytest.mark.parametrize("bad_input", [5, "text", [1, 2], None])
async def test_bad_run_input_becomes_the_failing_nodes_envelope(bad_input: Any) -> None:
    wf = Workflow("bad-input")

    @wf.node
    async def needs(url: str) -> str:
        return url

    result = await wf.run(bad_input)
    assert result["needs"].error is not None
    assert result["needs"].error.type == "InputError"


async def test_an_exception_whose_str_raises_still_becomes_an_envelope() -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    async def nasty() -> None:
        raise Nasty

    wf = Workflow("nasty")
    wf.node(nasty, error_handling=ErrorHandling.ignore())
    result = await wf.run()
    assert result["nasty"].error is not None
    assert result["nasty"].error.type == "Nasty"
    assert "str()" in result["nasty"].error.message


async def test_base_exceptions_are_never_swallowed() -> None:
    class Abort(BaseException):
        pass

    async def abort() -> None:
        raise Abort

    wf = Workflow("abort")
    wf.node(abort, error_handling=ErrorHandling(behavior="return", max_retries=3))
    with pytest.raises(Abort):
        await wf.run()


async def test_a_long_skip_cascade_does_not_recurse() -> None:
    wf = Workflow("chain")
    previous = wf.node(fail, name="n0")
    for i in range(1, 3000):
        previous = wf.node(ok, name=f"n{i}", depends=[previous])
    result = await wf.run()
    assert result["n2999"].status == "skip"


async def test_sync_functions_run_in_worker_threads() -> None:
    loop_thread = threading.get_ident()

    def where() -> bool:
        return threading.get_ident() != loop_thread

    wf = Workflow("threads")
    wf.node(where)
    assert (await wf.run())["where"].output is True


async def test_a_cancelled_error_no_cancellation_explains_fails_its_node() -> None:
    async def stray() -> None:
        raise asyncio.CancelledError  # its own code raised it; nothing cancels the run

    wf = Workflow("stray")
    first = wf.node(stray, name="first")
    wf.node(ok, name="after", depends=[first])
    wf.node(ok, name="beside")
    result = await wf.run()
    assert result.status == "failure"
    assert result["first"].error is not None
    assert result["first"].error.type == "StrayCancellation"
    assert "nothing was cancelling it" in result["first"].error.message
    assert (result["after"].status, result["beside"].status) == ("skip", "success")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_awaiting_a_future_cancelled_elsewhere_fails_the_node_not_the_run() -> None:
    elsewhere = asyncio.get_running_loop().create_future()

    async def waits() -> None:
        await elsewhere

    wf = Workflow("elsewhere")
    wf.node(waits, name="waits", error_handling=ErrorHandling.ignore())
    wf.node(ok, name="beside")
    async with anyio.create_task_group() as tg:
        results: list[Any] = []

        async def caller() -> None:
            results.append(await wf.run())

        tg.start_soon(caller)
        await anyio.sleep(0.01)
        elsewhere.cancel()
    (result,) = results
    assert result.status == "success"
    assert result["waits"].error is not None
    assert result["waits"].error.type == "StrayCancellation"
    assert result["beside"].status == "success"


async def test_a_map_item_raising_a_stray_cancelled_error_fails_only_that_item() -> None:
    async def item(x: int) -> int:
        if x == 1:
            raise asyncio.CancelledError
        return x

    wf = Workflow("items")
    wf.map(item, name="each", items="$.input.xs", error_handling=ErrorHandling.ignore())
    result = await wf.run({"xs": [0, 1, 2]})
    envelopes = result["each"].output
    assert [e["status"] for e in envelopes] == ["success", "failure", "success"]
    assert envelopes[1]["error"]["type"] == "StrayCancellation"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_chain_of_nodes_that_never_await_still_lets_other_tasks_run() -> None:
    def busy() -> None:  # 0.1 ms of work without an await
        until = time.perf_counter() + 0.0001
        while time.perf_counter() < until:
            pass

    async def step(x: int) -> int:
        busy()
        return x + 1

    wf = Workflow("chain")
    wf.node(step, name="n0", inputs={"x": "$.input.x"})
    for i in range(1, 300):
        wf.node(step, name=f"n{i}", inputs={"x": f"$.n{i - 1}.output"})
    wf.validate()  # compiled before the clock starts
    turns: list[float] = []
    finished = False

    async def other() -> None:
        while not finished:
            turns.append(time.perf_counter())
            await asyncio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await asyncio.sleep(0)
        result = await wf.run({"x": 0})
        finished = True
    assert result["n299"].output == 300
    # The chain takes 30 ms or more and yields after each 0.2 ms: about a hundred turns for
    # the other task (a chain yielding never would give it one or two).
    assert len(turns) >= 20


def fail_fast_workflow(fail_fast: bool, behavior: str = "raise") -> Workflow:
    wf = Workflow("stop", fail_fast=fail_fast)

    @wf.node(
        error_handling=ErrorHandling(behavior=behavior, max_retries=1, retry_interval_seconds=2)
    )  # type: ignore[arg-type]
    async def breaks() -> None:
        await anyio.sleep(1)
        raise RuntimeError("broken")

    @wf.node
    async def slow() -> str:
        await anyio.sleep(10)
        return "slow"

    @wf.node(depends=[slow])
    async def after_slow() -> str:
        return "after"

    return wf


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_fail_fast_stops_the_run_at_the_first_raise_failure() -> None:
    start = anyio.current_time()
    result = await fail_fast_workflow(True).run()
    assert anyio.current_time() - start == pytest.approx(4, abs=1e-9)  # 1 + wait 2 + 1: retried
    assert result.status == "failure"
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("RuntimeError", "broken")
    slow, after = result["slow"], result["after_slow"]
    assert slow.error is not None
    assert (slow.status, slow.error.type, slow.reason) == (
        "failure", "Cancelled", "'breaks' failed (fail_fast)",
    )  # fmt: skip
    assert "node 'breaks' failed" in slow.error.message
    assert (after.status, after.reason) == ("skip", "'breaks' failed (fail_fast)")


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
@pytest.mark.parametrize(("fail_fast", "behavior"), [(False, "raise"), (True, "return")])
async def test_without_fail_fast_or_with_a_return_failure_the_rest_runs_on(
    fail_fast: bool, behavior: str
) -> None:
    start = anyio.current_time()
    result = await fail_fast_workflow(fail_fast, behavior).run()
    assert anyio.current_time() - start == pytest.approx(10, abs=1e-9)
    assert (result["slow"].status, result["after_slow"].status) == ("success", "success")


def test_fail_fast_round_trips_through_data() -> None:
    wf = Workflow.from_dict({"name": "w", "fail_fast": True, "nodes": [
        {"name": "a", "call": "json:dumps", "inputs": {"obj": 1}}]})  # fmt: skip
    assert wf.fail_fast
    assert wf.to_dict()["fail_fast"] is True
    assert wf.compiled().fail_fast
