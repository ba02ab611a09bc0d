"""flowrt.ray.RayExecutor against one local Ray per module (``num_cpus=2``): spread over worker
processes, timeouts and cancellation that kill the task before anything else happens (a
Python loop and a long C call), a killed worker as ``WorkerCrashed`` with no hidden retries,
unserialisable arguments and results named, a 1,000-item map, definitions as data; the timing
and cancellation tests on asyncio and trio."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

ray = pytest.importorskip("ray")

from ray import cloudpickle  # noqa: E402

from flowrt import ErrorHandling, WorkerCrashed, Workflow, current  # noqa: E402
from flowrt.ray import RayExecutor  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/
# On a loaded machine a fresh Ray worker (started after a kill) takes tens of seconds to be ready.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def warm_workers(local_ray: None) -> None:
    """Two idle worker processes, with flowrt imported, before each test: a killed task
    (force-cancel, SIGKILL) takes its worker with it, and a cold one takes a second or more to
    start and several to import flowrt (``current()``) on a loaded machine."""
    ray.get([_warm.remote() for _ in range(2)])


@ray.remote
def _warm() -> int:
    import flowrt  # noqa: F401  (what the tests' functions import: done before their clocks)

    time.sleep(0.3)
    return os.getpid()


def busy(seconds: float) -> tuple[int, float, float]:
    """CPU-bound for ``seconds``; returns the worker's pid and when it started and ended (the
    host's wall clock, which every worker process shares)."""
    began = time.time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))
    return os.getpid(), began, time.time()


def marks(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    return [
        (int(attempt), float(at))
        for attempt, at in (line.split() for line in path.read_text().splitlines() if line)
    ]


def marking(path: Path, how: str) -> Any:
    """A function that runs for a minute: a Python loop writing a mark every 0.05 s, or one
    long C call after a single mark."""

    def forever() -> None:
        attempt = current().attempt
        with path.open("a") as out:
            out.write(f"{attempt} {time.time()}\n")
        if how == "c":
            time.sleep(60)
        end = time.time() + 60
        while time.time() < end:
            with path.open("a") as out:
                out.write(f"{attempt} {time.time()}\n")
            time.sleep(0.05)

    return forever


def test_nodes_spread_over_ray_worker_processes() -> None:
    wf = Workflow("spread", executor=RayExecutor())
    for i in range(4):
        wf.node(lambda: busy(1.0), name=f"n{i}")
    result = wf.run_sync()
    assert result.status == "success"
    runs = [node.output for node in result.nodes.values()]
    pids = {pid for pid, _, _ in runs}
    assert len(pids) >= 2
    assert os.getpid() not in pids
    # two ran at once, in two processes (told by when they ran, not by how long the run took)
    assert any(
        a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in runs for b in runs if a is not b
    )


@pytest.mark.parametrize("how", ["python-loop", "c"])
async def test_a_timed_out_attempt_is_killed_before_its_retry(how: str, tmp_path: Path) -> None:
    path = tmp_path / "marks"
    wf = Workflow("timeouts")
    # 2 s: long enough for Ray to start the first attempt on a warm worker on a loaded host
    policy = ErrorHandling(timeout_seconds=2, max_retries=1, retry_interval_seconds=0)
    wf.node(marking(path, how), name="forever", error_handling=policy, executor=RayExecutor())
    start = time.monotonic()
    result = await wf.run()
    ended = time.time()
    assert time.monotonic() - start < 30  # the function runs for a minute: the timeouts cut it
    node = result["forever"]
    assert node.attempts == 2
    assert [a.error.type for a in node.trace] == ["TimeoutError", "TimeoutError"]  # type: ignore[union-attr]
    await anyio.sleep(1.0)
    written = marks(path)
    assert written  # an attempt ran
    # attempt 1 was killed before attempt 2 began (its first mark), when Ray started it in time
    second = min((at for attempt, at in written if attempt == 2), default=ended)
    assert all(at < second for attempt, at in written if attempt == 1)
    assert all(at <= ended for _, at in written)


@pytest.mark.parametrize("stop", ["caller", "deadline"])
async def test_cancelling_the_caller_or_a_deadline_leaves_no_task_running(
    stop: str, tmp_path: Path
) -> None:
    path = tmp_path / "marks"
    wf = Workflow("cancelled", executor=RayExecutor())
    wf.node(marking(path, "python-loop"), name="forever")
    if stop == "caller":
        async with anyio.create_task_group() as tg:
            tg.start_soon(wf.run)
            with anyio.fail_after(30):
                while not marks(path):  # the task is running (Ray may take a while to start it)
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    else:
        result = await wf.run(timeout=5.0)
        assert result.status == "failure"
    returned = time.time()
    await anyio.sleep(3.0)
    assert marks(path)
    assert max(at for _, at in marks(path)) < returned + 0.5


def test_a_killed_worker_fails_the_attempt_with_worker_crashed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    def doomed() -> None:
        with pids.open("a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(30)

    wf = Workflow("crashes")
    policy = ErrorHandling(max_retries=1, retry_interval_seconds=0)
    wf.node(doomed, name="doomed", error_handling=policy, executor=RayExecutor())

    async def kill_each_attempt() -> None:
        killed: set[int] = set()
        while len(killed) < 2:
            for line in pids.read_text().split() if pids.exists() else []:
                if int(line) not in killed:
                    os.kill(int(line), signal.SIGKILL)
                    killed.add(int(line))
            await anyio.sleep(0.05)

    async def main() -> Any:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_each_attempt)
            return await wf.run()

    result = anyio.run(main)
    node = result["doomed"]
    assert node.status == "failure"
    assert node.error.type == WorkerCrashed.__name__  # type: ignore[union-attr]
    assert node.attempts == 2
    assert len(pids.read_text().split()) == 2  # exactly max_retries + 1 runs: no hidden retry


def test_unserialisable_arguments_and_results_are_named() -> None:
    import threading

    wf = Workflow("unsendable", executor=RayExecutor())

    # An argument from the run input (in memory it may hold any object; node outputs are JSON)
    @wf.node(inputs={"handle": "$.input.handle"}, error_handling={"behavior": "return"})
    def takes_a_lock(handle: Any) -> int:
        return 1

    @wf.node(error_handling={"behavior": "return"})
    def returns_a_lock() -> Any:
        return threading.Lock()

    result = wf.run_sync({"handle": threading.Lock()})
    assert result["takes_a_lock"].error.type == "TypeError"  # type: ignore[union-attr]
    assert "argument 'handle' cannot be sent to Ray" in result["takes_a_lock"].error.message  # type: ignore[union-attr]
    assert "node 'takes_a_lock'" in result["takes_a_lock"].error.message  # type: ignore[union-attr]
    message = result["returns_a_lock"].error.message  # type: ignore[union-attr]
    assert message.startswith("node 'returns_a_lock': its result cannot be sent back from Ray")


def test_a_failure_in_the_function_is_its_own_exception() -> None:
    wf = Workflow("raises", executor=RayExecutor())

    @wf.node(error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0))
    def flaky() -> int:
        if current().attempt < 3:
            raise ConnectionError(f"attempt {current().attempt}")
        return current().attempt

    result = wf.run_sync()
    assert result["flaky"].output == 3
    assert [a.error.type for a in result["flaky"].trace[:2]] == ["ConnectionError"] * 2  # type: ignore[union-attr]


@pytest.mark.timeout(180)  # about 1 s here (benchmarks/s11_ray.py), far longer on a loaded host
def test_a_thousand_item_map_on_ray() -> None:
    wf = Workflow("map", executor=RayExecutor())
    wf.map(lambda x: x * 2, items="$.input.items", name="double", concurrency=100)
    result = wf.run_sync({"items": list(range(1000))})
    assert [item["output"] for item in result.output["double"]] == [x * 2 for x in range(1000)]


def test_ray_by_name_in_a_workflow_file_and_back() -> None:
    wf = Workflow.from_dict(
        {
            "name": "from-data",
            "executor": "ray",
            "nodes": [
                {"name": "a", "call": "operator:add", "inputs": {"a": 1, "b": 2}},
                {"name": "b", "call": "operator:mul", "inputs": {"a": 2, "b": 3},
                 "executor": {"ray": {"num_cpus": 1}}},
                {"name": "c", "call": "operator:sub", "inputs": {"a": 5, "b": 3},
                 "executor": "thread"},
            ],
        }
    )  # fmt: skip
    assert isinstance(wf.executor, RayExecutor)
    assert wf.nodes["b"].executor.remote_options == {"num_cpus": 1}  # type: ignore[union-attr]
    assert wf.run_sync().output == {"a": 3, "b": 6, "c": 2}
    data = wf.to_dict()
    assert data["executor"] == "ray"
    assert data["nodes"][1]["executor"] == {"ray": {"num_cpus": 1}}
    assert data["nodes"][2]["executor"] == "thread"


def test_the_workflow_executor_is_for_sync_nodes_only() -> None:
    wf = Workflow("mixed", executor=RayExecutor())

    @wf.node
    async def on_the_loop() -> int:
        return os.getpid()

    @wf.node
    def on_ray() -> int:
        return os.getpid()

    result = wf.run_sync()
    assert result["on_the_loop"].output == os.getpid()
    assert result["on_ray"].output != os.getpid()


MANY_RUNS = """
import anyio
from flowrt import Workflow
from flowrt.ray import RayExecutor

def double(x: int = 0) -> int:
    return x * 2

wf = Workflow("again", executor=RayExecutor(num_cpus=0.5))
wf.node(double, name="d")
outputs = [wf.run_sync({"x": i}, timeout=60)["d"].output for i in range(3)]
for backend in ("trio", "asyncio", "trio"):
    result = anyio.run(lambda: wf.run({"x": 5}, timeout=60), backend=backend)
    outputs.append(result["d"].output)
print(outputs)
"""


@pytest.mark.timeout(240)
def test_any_number_of_runs_in_one_process_on_asyncio_and_trio(tmp_path: Path) -> None:
    # A fresh process, where flowrt starts Ray itself (this module's Ray runs in its own).
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", MANY_RUNS],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[0, 2, 4, 10, 10, 10]"
