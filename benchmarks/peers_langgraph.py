"""The same shapes in LangGraph, each beside flowrt in the same process: ``make bench-peers``
installs LangGraph into .venv-peers (never into the project's own environment) and runs this.
Reports flowrt's speed-up over LangGraph (``langgraph / flowrt``)."""

from __future__ import annotations

import asyncio
import functools
import operator
import sys
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send

from benchmarks import s1_fanout, s2_chain, s3_concurrency, s5_map
from benchmarks._harness import compare
from benchmarks.s4_retries import flaky_nodes
from flowrt import ErrorHandling, Workflow


def merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class Results(TypedDict, total=False):
    results: Annotated[dict[str, Any], merge]
    x: int


class Items(TypedDict, total=False):
    items: list[int]
    results: Annotated[list[Any], operator.add]


def fanout_graph(n: int) -> Any:
    graph = StateGraph(Results)

    async def noop(state: Results, name: str) -> Results:
        return {"results": {name: 1}}

    async def join(state: Results) -> Results:
        return {"x": len(state["results"])}

    graph.add_node("root", functools.partial(noop, name="root"))
    names = [f"n{i}" for i in range(n)]
    for name in names:
        graph.add_node(name, functools.partial(noop, name=name))
        graph.add_edge("root", name)
    graph.add_node("join", join)
    graph.add_edge(START, "root")
    graph.add_edge(names, "join")  # waits for all of them
    graph.add_edge("join", END)
    return graph.compile()


def chain_graph(n: int) -> Any:
    graph = StateGraph(Results)

    async def inc(state: Results) -> Results:
        return {"x": state["x"] + 1}

    for i in range(n):
        graph.add_node(f"n{i}", inc)
        graph.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    graph.add_edge(f"n{n - 1}", END)
    return graph.compile()


def concurrency_graph(n: int) -> Any:
    graph = StateGraph(Results)

    async def sleeper(state: Results, name: str) -> Results:
        await asyncio.sleep(s3_concurrency.SLEEP)
        return {"results": {name: None}}

    for i in range(n):
        graph.add_node(f"n{i}", functools.partial(sleeper, name=f"n{i}"))
        graph.add_edge(START, f"n{i}")
        graph.add_edge(f"n{i}", END)
    return graph.compile()


def retries_graph(fns: list[Any]) -> Any:
    graph = StateGraph(Results)
    policy = RetryPolicy(max_attempts=3, initial_interval=0, jitter=False)

    async def node(state: Results, fn: Any, name: str) -> Results:
        return {"results": {name: await fn()}}

    for i, fn in enumerate(fns):
        graph.add_node(f"n{i}", functools.partial(node, fn=fn, name=f"n{i}"), retry_policy=policy)
        graph.add_edge(START, f"n{i}")
        graph.add_edge(f"n{i}", END)
    return graph.compile()


def map_graph() -> Any:
    graph = StateGraph(Items)

    async def item(state: dict[str, int]) -> Items:
        return {
            "results": [
                {"status": "success", "output": await s5_map.double(state["item"]), "error": None}
            ]
        }

    graph.add_node("item", item)
    graph.add_conditional_edges(
        START, lambda state: [Send("item", {"item": i}) for i in state["items"]]
    )
    graph.add_edge("item", END)
    return graph.compile()


def main(n: int = 1000, big: int = 10_000) -> list[dict[str, Any]]:
    """Every shape; ``n`` nodes for the DAG shapes, ``big`` for S3 and S5."""
    records = []
    limit = {"recursion_limit": n + 10}

    fan = s1_fanout.flowrt_case(n)
    lg_fan = fanout_graph(n)
    records.append(
        compare(
            "P1",
            "fan-out/fan-in vs LangGraph",
            n,
            lambda: fan.run(),
            lambda: lg_fan.ainvoke({"results": {}}),
            against="langgraph",
        )
    )

    chain = s2_chain.flowrt_case(n)
    lg_chain = chain_graph(n)
    records.append(
        compare(
            "P2",
            "chain vs LangGraph",
            n,
            lambda: chain.run({"x": 0}),
            lambda: lg_chain.ainvoke({"x": 0}, config=limit),
            against="langgraph",
        )
    )

    sleepy = s3_concurrency.flowrt_case(big)
    lg_sleepy = concurrency_graph(big)
    records.append(
        compare(
            "P3",
            f"concurrency, {s3_concurrency.SLEEP:g} s sleeps, vs LangGraph",
            big,
            lambda: sleepy.run(),
            lambda: lg_sleepy.ainvoke({"results": {}}),
            repeats=3,
            against="langgraph",
        )
    )

    fns, calls = flaky_nodes(n)
    retried = Workflow("p4")
    for i, fn in enumerate(fns):
        retried.node(
            fn, name=f"n{i}", error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0)
        )
    lg_retried = retries_graph(fns)

    async def ours() -> None:
        calls.clear()
        await retried.run()

    async def theirs() -> None:
        calls.clear()
        await lg_retried.ainvoke({"results": {}})

    records.append(compare("P4", "retries vs LangGraph", n, ours, theirs, against="langgraph"))

    mapped = Workflow("p5")
    mapped.map(
        s5_map.double,
        items="$.input.items",
        concurrency=s5_map.CONCURRENCY,
        error_handling=ErrorHandling.ignore(),
    )
    lg_map = map_graph()
    items = list(range(big))
    config = {"max_concurrency": s5_map.CONCURRENCY, "recursion_limit": 10}
    records.append(
        compare(
            "P5",
            f"map, concurrency {s5_map.CONCURRENCY}, vs LangGraph",
            big,
            lambda: mapped.run({"items": items}),
            lambda: lg_map.ainvoke({"items": items, "results": []}, config=config),
            repeats=3,
            against="langgraph",
        )
    )

    print("\nflowrt speed-up over LangGraph (langgraph time / flowrt time):")
    for record in records:
        print(f"  {record['shape']} {record['title']:52} {1 / record['ratio']:7.1f}x")
    return records


if __name__ == "__main__":
    sizes = [int(arg) for arg in sys.argv[1:]] or [1000, 10_000]
    main(*sizes)
