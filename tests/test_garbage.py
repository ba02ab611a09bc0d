"""Runs leave no reference cycles: every object a run makes is freed by reference counting as
soon as the run's result is dropped. A failed attempt's exception holds its traceback, whose
frames held the node's record, which held the exception: at 10,000 retried nodes the cycle
collector took 186 ms of a 645 ms run. Each case runs once to warm up, then with the collector
off; ``gc.collect()`` must then find nothing of the run's: no object of flowrt's, and no frame,
coroutine or exception of flowrt's or this file's code (garbage that another thread of the test
process makes meanwhile, an idle worker thread exiting on a loaded machine, is not the run's)."""

from __future__ import annotations

import functools
import gc
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import flowrt
from flowrt import ErrorHandling, SQLiteStore, Workflow, WorkflowFailed, WorkflowRetry

pytestmark = pytest.mark.anyio
OURS = (str(Path(flowrt.__file__).parent), __file__)


def _code_of(thing: object) -> types.CodeType | None:
    if isinstance(thing, types.FrameType):
        return thing.f_code
    if isinstance(thing, types.CoroutineType):
        return thing.cr_code
    if isinstance(thing, types.FunctionType):
        return thing.__code__
    return None


def _of_a_run(thing: object) -> bool:
    """Whether a garbage object is flowrt's or ran flowrt's (or this file's) code."""
    if type(thing).__module__.startswith("flowrt"):
        return True
    if isinstance(thing, BaseException):
        tb = thing.__traceback__
        return tb is not None and tb.tb_frame.f_code.co_filename.startswith(OURS)
    code = _code_of(thing)
    return code is not None and code.co_filename.startswith(OURS)


def run_garbage() -> list[str]:
    """Collect; what the collector found that a run made (as reprs, for the message)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return [repr(thing)[:120] for thing in gc.garbage if _of_a_run(thing)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def retries() -> Workflow:
    wf = Workflow("retries")
    calls: dict[int, int] = {}

    async def flaky(i: int) -> int:
        calls[i] = calls.get(i, 0) + 1
        if calls[i] % 3:
            raise ConnectionError("transient")
        return i

    for i in range(20):
        policy = ErrorHandling(max_retries=2, retry_interval_seconds=0)
        wf.node(functools.partial(flaky, i), name=f"n{i}", error_handling=policy)
    return wf


async def fails() -> None:
    raise KeyError("missing")


def failures_returned() -> Workflow:
    wf = Workflow("returned")
    for i in range(20):
        wf.node(fails, name=f"n{i}", error_handling=ErrorHandling(behavior="return"))
    return wf


def failure_skips_downstream() -> Workflow:
    wf = Workflow("cascade")
    first = wf.node(fails, name="first")
    wf.node(lambda: 1, name="second", depends=[first])
    return wf


def timeouts() -> Workflow:
    wf = Workflow("timeouts")
    policy = ErrorHandling(timeout_seconds=0.001, max_retries=1, retry_interval_seconds=0)
    for i in range(10):
        wf.node(anyio.sleep_forever, name=f"n{i}", error_handling=policy)
    return wf


def sync_failures_in_threads() -> Workflow:
    wf = Workflow("threads")

    def broken() -> None:
        raise ValueError("bad")

    policy = ErrorHandling(max_retries=1, retry_interval_seconds=0, behavior="return")
    for i in range(5):
        wf.node(broken, name=f"n{i}", error_handling=policy)
    return wf


async def odd(x: int) -> int:
    if x % 2:
        raise ValueError(x)
    return x


def map_that_stops() -> Workflow:
    wf = Workflow("map-stops")
    wf.map(odd, items="$.input.xs", name="m")
    return wf


def map_with_retries() -> Workflow:
    wf = Workflow("map-retries")
    policy = ErrorHandling(max_retries=1, retry_interval_seconds=0)
    wf.map(odd, items="$.input.xs", name="m", tolerated_failures=0.9, error_handling=policy)
    return wf


def fail_fast() -> Workflow:
    wf = Workflow("fail-fast", fail_fast=True)
    wf.node(fails, name="fails")
    wf.node(anyio.sleep_forever, name="cancelled")
    return wf


def workflow_retry() -> Workflow:
    wf = Workflow("rerun", retry=WorkflowRetry(max_retries=2, delay_seconds=0))
    wf.node(fails, name="fails")
    return wf


CASES: dict[str, Callable[[], Workflow]] = {
    "retries": retries,
    "failures returned": failures_returned,
    "failure skips downstream": failure_skips_downstream,
    "timeouts": timeouts,
    "sync failures in threads": sync_failures_in_threads,
    "map that stops": map_that_stops,
    "map with retries": map_with_retries,
    "fail_fast": fail_fast,
    "workflow retry": workflow_retry,
}


# On trio, a cancellation delivered to a task, and a thread call that raises, leave cycles in
# trio's own machinery (its cancel delivery frames, its thread cache's outcome): not flowrt's.
TRIO_MAKES_CYCLES = {"sync failures in threads", "fail_fast", "deadline", "cancelled"}


def _not_on_trio(backend: str, case: str) -> None:
    if backend == "trio" and case in TRIO_MAKES_CYCLES:
        pytest.skip("trio's own cancellation and thread machinery keeps reference cycles")


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _twice(wf: Workflow, **options: Any) -> None:
    await wf.run({"xs": list(range(10))}, **options)  # warm-up: caches, plan, first imports
    gc.collect()
    await wf.run({"xs": list(range(10))}, **options)


@pytest.mark.parametrize("case", CASES)
async def test_a_run_leaves_no_cyclic_garbage(
    case: str, anyio_backend: str, collector_off: None
) -> None:
    _not_on_trio(anyio_backend, case)
    wf = CASES[case]()  # kept: a workflow and its nodes refer to each other, and that is fine
    await _twice(wf)
    assert run_garbage() == []


async def test_a_run_past_its_deadline_leaves_no_cyclic_garbage(
    anyio_backend: str, collector_off: None
) -> None:
    _not_on_trio(anyio_backend, "deadline")
    wf = Workflow("deadline")
    wf.node(anyio.sleep_forever, name="forever")
    await _twice(wf, timeout=0.01)
    assert run_garbage() == []


async def test_a_cancelled_run_leaves_no_cyclic_garbage(
    anyio_backend: str, collector_off: None
) -> None:
    _not_on_trio(anyio_backend, "cancelled")
    wf = Workflow("cancelled")
    wf.node(anyio.sleep_forever, name="forever")
    for _ in range(2):
        gc.collect()
        with anyio.move_on_after(0.01):
            await wf.run()
    assert run_garbage() == []


async def test_a_durable_failing_run_leaves_no_cyclic_garbage(
    tmp_path: Path, collector_off: None
) -> None:
    with SQLiteStore(tmp_path / "runs.db") as store:
        flaky, failing = retries(), failures_returned()
        await _twice(flaky, store=store)
        await _twice(failing, store=store)
        assert run_garbage() == []


def test_a_failing_run_keeps_its_traceback_and_its_cause() -> None:
    # Breaking the cycles must not lose what a user debugs with.
    result = failure_skips_downstream().run_sync()
    assert 'raise KeyError("missing")' in result["first"].error.traceback  # type: ignore[union-attr]
    with pytest.raises(WorkflowFailed) as raised:
        result.raise_for_status()
    cause = raised.value.__cause__
    assert isinstance(cause, KeyError)
    frames = [frame.f_code.co_name for frame, _ in _walk(cause.__traceback__)]
    assert frames[-1] == "fails"


def _a_frame_cycle() -> None:
    try:
        raise ValueError("kept")
    except ValueError as exc:
        kept = exc  # the frame holds the exception, whose traceback holds the frame
    assert kept


def _walk(tb: Any) -> Iterator[tuple[Any, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def test_the_collector_case_is_real() -> None:
    # The check itself can fail: reference cycles made on purpose, through a run's record
    # and through a frame of this file, are found.
    from flowrt._engine.states import NodeState

    gc.collect()
    gc.disable()
    try:
        record = NodeState()
        record["output"] = record
        del record
        start = time.perf_counter()
        assert len(run_garbage()) == 1
        assert time.perf_counter() - start < 1
        _a_frame_cycle()
        assert any("ValueError" in found for found in run_garbage())
    finally:
        gc.enable()
