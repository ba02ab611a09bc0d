"""Fallback pattern 1: a Choice routes on a failed node's status to a fallback branch, and a
join with trigger "any" takes whichever branch ran."""

from __future__ import annotations

import sys

from flowrt import Condition, ErrorHandling, Workflow

wf = Workflow("fallback-choice", output={"answer": "$.answer.output", "route": "$.route.output"})


@wf.node(
    error_handling=ErrorHandling(behavior="return", max_retries=1, retry_interval_seconds=0.01)
)
async def primary_search(query: str, primary_down: bool = False) -> list[str]:
    if primary_down:
        raise ConnectionError("primary search index unavailable")
    return [f"primary hit for {query}"]


route = wf.choice(
    "route", {"primary": Condition("$.primary_search.status", "==", "success"), "backup": None}
)


@wf.node(depends=[route["backup"]])
def backup_search(query: str) -> list[str]:
    return [f"backup hit for {query}"]


@wf.node(
    depends=[route["primary"], backup_search],
    trigger="any",
    inputs={"hits": "$.primary_search.output || $.backup_search.output"},
)
async def answer(hits: list[str]) -> str:
    return hits[0]


def main(primary_down: bool) -> None:
    result = wf.run_sync({"query": "flowrt", "primary_down": primary_down})
    print(result.output)


if __name__ == "__main__":
    main(primary_down="--primary-down" in sys.argv)
