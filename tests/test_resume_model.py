"""Resume against the reference model: random DAGs with Choice branches, maps and failures run
durably, are stopped after a random number of finished nodes (once or twice), and are resumed
to the end. The outcome must be what one uninterrupted run gives (the reference rules), no
node stored as a success may run again, and no node may start before its dependencies have
finished."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_semantics_model import random_dag_with_choices, reference_with_choices

from flowrt import Condition, ErrorHandling, SQLiteStore, Workflow
from flowrt._engine.resume import KEPT, counts

pytestmark = pytest.mark.anyio


class Watch:
    """Calls per node, the nodes finished in the current execution (plus those kept from
    before it), and the nodes that started before one of their dependencies had finished."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.finished: set[str] = set()
        self.early: list[str] = []


def build(nodes: list[dict[str, Any]], store: SQLiteStore, watch: Watch) -> Workflow:
    """The model's DAG; every third plain node is a map over three items (an item of a
    failing map fails, and a map always raises). Each node checks that its dependencies have
    finished (reading them through inputs would add edges, and change Choice branches)."""
    wf = Workflow("resume-model", store=store)
    handles: dict[int, Any] = {}
    for i, node in enumerate(nodes):
        policy = ErrorHandling(behavior="raise" if node["raises"] else "return")
        if node.get("choice"):
            d = node["deps"][0]
            options = {"ok": Condition(f"$.n{d}.status", "==", "success"), "other": None}
            handles[i] = wf.choice(f"n{i}", options, depends=[f"n{d}"], error_handling=policy)
            continue
        depends = [handles[d][option] if option else f"n{d}" for d, option in node["edges"]]
        options = {"name": f"n{i}", "depends": depends, "trigger": node["trigger"]}
        fn = _fn(i, node["fails"], [f"n{d}" for d in node["deps"]], watch, i % 3 == 2)
        if i % 3 == 2:
            node["raises"] = True
            handles[i] = wf.map(fn, items=[0, 1, 2], error_handling=ErrorHandling(), **options)
        else:
            handles[i] = wf.node(fn, error_handling=policy, **options)
    return wf


def _fn(i: int, fails: bool, deps: list[str], watch: Watch, mapped: bool) -> Any:
    async def fn() -> int:
        watch.calls[f"n{i}"] += 1
        if not watch.finished.issuperset(deps):
            watch.early.append(f"n{i}")
        await anyio.sleep(0)
        if fails:
            raise RuntimeError(f"n{i} failed")
        return i

    async def per_item(item: int) -> int:
        return await fn()

    return per_item if mapped else fn


async def run_until(
    wf: Workflow, watch: Watch, stop_after: int | None, run_id: str, resume: bool
) -> None:
    """Run (or resume) ``run_id``; with ``stop_after``, cancel it once that many nodes have
    finished (what was recorded stays: a cancelled run is resumable)."""
    finished = 0
    with anyio.CancelScope() as scope:

        def listener(event: Any) -> None:
            nonlocal finished
            if event.kind == "node.finished":
                watch.finished.add(event.node)
                finished += 1
                if stop_after is not None and finished >= stop_after:
                    scope.cancel()

        wf.add_listener(listener)
        try:
            if resume:
                await wf.resume(run_id)
            else:
                await wf.run(run_id=run_id)
        finally:
            wf.remove_listener(listener)


@pytest.mark.parametrize("seed", range(40))
async def test_stopped_and_resumed_runs_follow_the_reference_rules(
    seed: int, tmp_path: Path
) -> None:
    rng = random.Random(9000 + seed)
    nodes = random_dag_with_choices(rng, rng.randint(3, 25))
    watch = Watch()
    with SQLiteStore(tmp_path / "model.db") as store:
        wf = build(nodes, store, watch)
        expected, expected_run = reference_with_choices(nodes)
        stops = [rng.randint(1, len(nodes)) for _ in range(rng.choice([1, 2]))]
        kept: dict[str, int] = {}
        await run_until(wf, watch, stops[0], "m", resume=False)
        for stop in [*stops[1:], None]:
            stored = await store.load_run("m")
            assert stored is not None
            watch.finished = {row.name for row in stored.nodes if row.status == "success"}
            for name in watch.finished:
                kept.setdefault(name, watch.calls[name])
            await run_until(wf, watch, stop, "m", resume=True)
        result = await wf.resume("m")  # finished: as stored
    assert [result[f"n{i}"].status for i in range(len(nodes))] == expected
    assert result.status == expected_run
    assert {name: watch.calls[name] for name in kept} == kept  # kept successes never ran again
    assert watch.early == []


def test_kept_nodes_are_never_released_and_the_rest_wait_for_their_dependencies() -> None:
    wf = Workflow("counts")
    a = wf.node(lambda: 1, name="a")
    b = wf.node(lambda: 1, name="b")
    wf.node(lambda: 1, name="join", depends=[a, b], trigger="any")
    wf.node(lambda: 1, name="after", depends=["join"])
    plan = wf.compiled()
    pending, ready = counts(plan, [0, 2])  # a and join kept; b failed and runs again
    assert ready == [1, 3]  # b, and after (its only dependency, join, is kept)
    assert pending == [KEPT, 0, KEPT, 0]
    for dependent in plan.nodes[1].dependents:  # b finishes: join's count only goes down
        pending[dependent] -= 1
    assert pending[2] < 0
