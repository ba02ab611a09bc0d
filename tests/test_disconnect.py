"""The disconnect watcher of ``POST /run`` (flowrt._web.disconnect): stepping ``receive()`` by
hand notices what a task awaiting it notices, at the same message, and leaves nothing behind;
against real uvicorn servers (h11 and httptools, asyncio and uvloop), a client that goes away
cancels its run and the others are answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fastapi import uvicorn_server

from flowrt import Workflow
from flowrt._web import disconnect
from flowrt._web.disconnect import Watch, steppable
from flowrt.fastapi import workflow_router

Step = tuple[str, Any]  # ("message", type) | ("yield", None) | ("error", None)


class Cycle:
    """A request cycle as uvicorn's HTTP protocols make it: ``receive()`` waits on an asyncio
    Event until the server has a message (``push``), then returns it. ``script`` may also make
    ``receive()`` yield to the loop first, or raise."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.queue: list[Step] = []
        self.received: list[str] = []

    def push(self, step: Step) -> None:
        self.queue.append(step)
        self.event.set()

    async def receive(self) -> dict[str, Any]:
        while not self.queue:
            self.event.clear()
            await self.event.wait()
        kind, value = self.queue.pop(0)
        if kind == "yield":
            await asyncio.sleep(0)
            return await self.receive()
        if kind == "error":
            raise ConnectionError("the transport broke")
        self.received.append(value)
        return {"type": value}


Cycle.__module__ = "uvicorn.protocols.http.fake"  # what ``steppable`` lets through


async def by_task(cycle: Cycle, gone: Callable[[], None]) -> BaseException | None:
    """The reference: what the task beside a run did (``_beside_watcher``)."""
    try:
        while (await cycle.receive())["type"] != "http.disconnect":
            pass
    except Exception as exc:
        gone()
        return exc
    gone()
    return None


async def settle() -> None:
    """Let the loop go round until every step a script can make has been made (a script has
    at most 7 steps, each at most two loop turns: far fewer than these)."""
    for _ in range(50):
        await asyncio.sleep(0)


scripts = st.lists(
    st.one_of(
        st.just(("message", "http.request")),
        st.just(("yield", None)),
    ),
    max_size=6,
).flatmap(
    lambda head: st.sampled_from(
        [("message", "http.disconnect"), ("error", None), None]  # None: the client stays
    ).map(lambda end: head + ([end] if end is not None else []))
)


@settings(max_examples=150, deadline=None)
@given(script=scripts, early=st.booleans())
def test_stepping_by_hand_notices_what_a_task_notices(script: list[Step], early: bool) -> None:
    async def hand() -> tuple[list[str], bool, type | None, int]:
        cycle, fired = Cycle(), []
        if early:  # messages already there when the watch starts
            for step in script:
                cycle.push(step)
        watch = Watch(cycle.receive, lambda: fired.append(1))
        assert watch.start()
        if not early:
            for step in script:
                cycle.push(step)
                await settle()
        await settle()
        watch.close()
        error = None if watch.error is None else type(watch.error)
        return cycle.received, watch.fired, error, len(fired)

    async def task() -> tuple[list[str], bool, type | None, int]:
        cycle, fired = Cycle(), []
        for step in script:
            cycle.push(step)
        runner = asyncio.ensure_future(by_task(cycle, lambda: fired.append(1)))
        await settle()
        error = None
        if runner.done():
            found = runner.result()
            error = None if found is None else type(found)
        else:
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner
        return cycle.received, bool(fired), error, len(fired)

    assert asyncio.run(hand()) == asyncio.run(task())


def test_closing_withdraws_the_wait_and_nothing_fires_later() -> None:
    async def main() -> None:
        cycle, fired = Cycle(), []
        watch = Watch(cycle.receive, lambda: fired.append(1))
        assert watch.start()
        assert len(cycle.event._waiters) == 1  # type: ignore[attr-defined]
        watch.close()
        assert not cycle.event._waiters  # type: ignore[attr-defined]
        cycle.push(("message", "http.disconnect"))
        await settle()
        assert fired == []
        assert cycle.received == []  # nobody read it

    asyncio.run(main())


def test_only_a_known_server_receive_is_stepped_by_hand() -> None:
    class Other:
        async def receive(self) -> dict[str, Any]:
            return {"type": "http.disconnect"}

    async def plain() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert steppable(Cycle().receive)
    assert not steppable(Other().receive)
    assert not steppable(plain)

    async def main() -> None:
        fired: list[int] = []
        watch = Watch(Other().receive, lambda: fired.append(1))
        assert not watch.start()  # the caller watches with a task
        assert fired == []

    asyncio.run(main())


def test_a_receive_that_waits_on_something_else_is_left_to_a_task() -> None:
    class Odd:
        def __init__(self) -> None:
            self.closed = False

        async def receive(self) -> dict[str, Any]:
            try:
                await Strange()
            finally:
                self.closed = True
            return {"type": "http.disconnect"}

    class Strange:
        def __await__(self) -> Any:
            yield "not a future"

    Odd.__module__ = "uvicorn.protocols.http.odd"
    odd = Odd()

    async def main() -> None:
        fired: list[int] = []
        watch = Watch(odd.receive, lambda: fired.append(1))
        assert not watch.start()
        assert odd.closed  # its coroutine was closed, not left suspended
        assert fired == []

    asyncio.run(main())


def test_on_trio_the_watch_says_no() -> None:
    async def main() -> bool:
        return Watch(Cycle().receive, lambda: None).start()

    assert anyio.run(main, backend="trio") is False


# Against real servers ---------------------------------------------------------------------


def held_workflow(release: anyio.Event, started: list[int], stopped: list[int]) -> Workflow:
    wf = Workflow("held")

    @wf.node
    async def hold(n: int) -> int:
        started.append(n)
        try:
            if n % 2:  # odd requests wait until their client has gone
                await release.wait()
            return n
        finally:
            stopped.append(n)

    return wf


async def requests(url: str, started: list[int], stopped: list[int], n: int) -> dict[int, int]:
    """``n`` requests at once; the odd ones' clients go away once every request has started."""
    answers: dict[int, int] = {}
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def post(i: int) -> None:
            answers[i] = (await client.post("/run", json={"n": i})).status_code

        async with anyio.create_task_group() as leaving:
            async with anyio.create_task_group() as staying:
                for i in range(n):
                    (leaving if i % 2 else staying).start_soon(post, i)
            with anyio.fail_after(30):  # the even ones answered; the odd ones are held
                while len(started) < n:
                    await anyio.sleep(0.01)
            leaving.cancel_scope.cancel()  # their clients go away
    with anyio.fail_after(30):
        while len(stopped) < n:
            await anyio.sleep(0.01)
    return answers


@pytest.mark.parametrize(("http", "loop"), [("h11", "asyncio"), ("httptools", "uvloop")])
def test_clients_that_go_away_cancel_their_runs_and_the_others_are_answered(
    http: str, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_hand: list[bool] = []
    start = Watch.start

    def spied(watch: Watch) -> bool:
        by_hand.append(start(watch))
        return by_hand[-1]

    monkeypatch.setattr(disconnect.Watch, "start", spied)
    n = 40

    async def main() -> tuple[dict[int, int], list[int], anyio.Event]:
        release, started, stopped = anyio.Event(), [], []
        app = FastAPI()
        app.include_router(workflow_router(held_workflow(release, started, stopped)))
        async with uvicorn_server(app, http=http) as (url, _):
            answers = await requests(url, started, stopped, n)
        return answers, stopped, release

    runner = asyncio.Runner(loop_factory=_factory(loop))
    with runner:
        answers, stopped, release = runner.run(main())
    assert answers == dict.fromkeys(range(0, n, 2), 200)  # the odd ones never got an answer
    assert sorted(stopped) == list(range(n))  # every run ended: the odd ones cancelled
    assert not release.is_set()
    assert by_hand == [True] * n  # every request was watched by hand, none by a task


def _factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None
