"""flowrt against a small reference model of the contract's rules, on random DAGs: every
node's status (success, failure or skip) and the run's status must match."""

from __future__ import annotations

import random
from typing import Any

import pytest

from flowrt import ErrorHandling, Workflow

pytestmark = pytest.mark.anyio

TRIGGERS = ["all", "all", "all", "any", "always", "on_failure"]


def random_dag(rng: random.Random, size: int) -> list[dict[str, Any]]:
    nodes = []
    for i in range(size):
        deps = sorted(rng.sample(range(i), k=min(i, rng.choice([0, 1, 1, 2, 3]))))
        nodes.append(
            {
                "deps": deps,
                "raises": rng.random() < 0.6,
                "fails": rng.random() < 0.3,
                "trigger": rng.choice(TRIGGERS) if deps else "all",
            }
        )
    return nodes


def reference(nodes: list[dict[str, Any]]) -> tuple[list[str], str]:
    """The contract's rules, written plainly, in topological (index) order."""
    status: list[str] = []
    handled: set[int] = set()
    for node in nodes:
        deps = node["deps"]
        blocks = any(status[d] in ("failure", "skip") and nodes[d]["raises"] for d in deps)
        succeeded = any(status[d] == "success" for d in deps)
        failed = [d for d in deps if status[d] == "failure"]
        runs = {
            "all": not blocks,
            "any": succeeded or not deps,
            "always": True,
            "on_failure": bool(failed),
        }[node["trigger"]]
        if runs and node["trigger"] == "on_failure":
            handled.update(failed)
        status.append(("failure" if node["fails"] else "success") if runs else "skip")
    run_failed = any(
        status[i] == "failure" and node["raises"] and i not in handled
        for i, node in enumerate(nodes)
    )
    return status, "failure" if run_failed else "success"


def build(nodes: list[dict[str, Any]], cap: int | None = None) -> Workflow:
    wf = Workflow("model", max_concurrency=cap)
    for i, node in enumerate(nodes):

        async def fn(fails: bool = node["fails"], i: int = i) -> int:
            if fails:
                raise RuntimeError(f"n{i} failed")
            return i

        wf.node(
            fn,
            name=f"n{i}",
            depends=[f"n{d}" for d in node["deps"]],
            trigger=node["trigger"],
            error_handling=ErrorHandling(behavior="raise" if node["raises"] else "return"),
        )
    return wf


@pytest.mark.parametrize("seed", range(40))
async def test_random_dags_follow_the_reference_rules(seed: int) -> None:
    rng = random.Random(seed)
    nodes = random_dag(rng, rng.randint(2, 30))
    expected, expected_run = reference(nodes)
    result = await build(nodes).run()
    assert [result[f"n{i}"].status for i in range(len(nodes))] == expected
    assert result.status == expected_run


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("cap", [1, 2, 3])
async def test_the_concurrency_cap_does_not_change_outcomes(seed: int, cap: int) -> None:
    rng = random.Random(1000 + seed)
    nodes = random_dag(rng, rng.randint(2, 30))
    expected, expected_run = reference(nodes)
    result = await build(nodes, cap).run()
    assert [result[f"n{i}"].status for i in range(len(nodes))] == expected
    assert result.status == expected_run
