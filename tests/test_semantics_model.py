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


def random_dag_with_choices(rng: random.Random, size: int) -> list[dict[str, Any]]:
    """As ``random_dag``, plus Choice nodes routing on one dependency's status ("ok" if it
    succeeded, else the default "other"); later nodes depend on a branch or on the Choice."""
    nodes: list[dict[str, Any]] = []
    for i in range(size):
        if i and rng.random() < 0.25:
            nodes.append(
                {
                    "choice": True,
                    "deps": [rng.randrange(i)],
                    "edges": [],
                    "raises": rng.random() < 0.5,
                    "fails": False,
                    "trigger": "all",
                }
            )
            continue
        deps = sorted(rng.sample(range(i), k=min(i, rng.choice([0, 1, 1, 2, 3]))))
        edges = [
            (d, rng.choice(["ok", "other", None]) if nodes[d].get("choice") else None) for d in deps
        ]
        nodes.append(
            {
                "deps": deps,
                "edges": edges,
                "raises": rng.random() < 0.6,
                "fails": rng.random() < 0.3,
                "trigger": rng.choice(TRIGGERS) if deps else "all",
            }
        )
    for node in nodes:
        node.setdefault("edges", [(d, None) for d in node["deps"]])
        if node.get("choice"):
            node["edges"] = [(node["deps"][0], None)]
    return nodes


def reference_with_choices(nodes: list[dict[str, Any]]) -> tuple[list[str], str]:
    status: list[str] = []
    output: list[Any] = []
    handled: set[int] = set()
    for node in nodes:
        edges = []
        for d, option in node["edges"]:
            taken = option is None or (status[d] == "success" and output[d] == option)
            edge_status = status[d] if taken else "skip"
            blocks = not taken or (edge_status in ("failure", "skip") and nodes[d]["raises"])
            edges.append((d, edge_status, blocks))
        runs = {
            "all": not any(blocks for _, _, blocks in edges),
            "any": any(s == "success" for _, s, _ in edges) or not edges,
            "always": True,
            "on_failure": any(s == "failure" for _, s, _ in edges),
        }[node["trigger"]]
        if runs and node["trigger"] == "on_failure":
            handled.update(d for d, s, _ in edges if s == "failure")
        if not runs:
            status.append("skip")
            output.append(None)
        elif node.get("choice"):
            status.append("success")
            output.append("ok" if status[node["deps"][0]] == "success" else "other")
        else:
            status.append("failure" if node["fails"] else "success")
            output.append(None)
    run_failed = any(
        status[i] == "failure" and node["raises"] and i not in handled
        for i, node in enumerate(nodes)
    )
    return status, "failure" if run_failed else "success"


def build_with_choices(nodes: list[dict[str, Any]]) -> Workflow:
    from flowrt import Condition

    wf = Workflow("model-choices")
    handles: dict[int, Any] = {}
    for i, node in enumerate(nodes):
        policy = ErrorHandling(behavior="raise" if node["raises"] else "return")
        if node.get("choice"):
            d = node["deps"][0]
            options = {"ok": Condition(f"$.n{d}.status", "==", "success"), "other": None}
            handles[i] = wf.choice(f"n{i}", options, depends=[f"n{d}"], error_handling=policy)
            continue

        async def fn(fails: bool = node["fails"], i: int = i) -> int:
            if fails:
                raise RuntimeError(f"n{i} failed")
            return i

        depends = [handles[d][option] if option else f"n{d}" for d, option in node["edges"]]
        handles[i] = wf.node(
            fn, name=f"n{i}", depends=depends, trigger=node["trigger"], error_handling=policy
        )
    return wf


@pytest.mark.parametrize("seed", range(40))
async def test_random_dags_with_choices_follow_the_reference_rules(seed: int) -> None:
    rng = random.Random(5000 + seed)
    nodes = random_dag_with_choices(rng, rng.randint(3, 30))
    expected, expected_run = reference_with_choices(nodes)
    result = await build_with_choices(nodes).run()
    assert [result[f"n{i}"].status for i in range(len(nodes))] == expected
    assert result.status == expected_run
