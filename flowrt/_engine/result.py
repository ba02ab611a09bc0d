"""Where results are built: the ``RunResult`` of a run that finished here (each node's
``NodeResult``, the output mapping resolved against the results, the run's status and error),
and one rebuilt from a stored run."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from .._errors import InputError
from .._fast import as_error_info, construct, lazy_result
from .._models import ErrorInfo, NodeResult, RunResult
from .._store.records import RunRow, trace_of
from .planned import Plan
from .scheduler import Scheduler
from .states import NodeState


def run_result(
    plan: Plan,
    scheduler: Scheduler,
    *,
    run_id: str,
    error: dict[str, str] | None,
    attempts: int,
    started_at: float,
    children: dict[str, str] | None = None,
) -> RunResult:
    """The RunResult of ``plan``'s run ``run_id`` that ``scheduler`` just finished: failed
    with ``error`` (the deadline's or a node's; None: see the output mapping), after
    ``attempts`` workflow-level attempts, started at ``started_at`` (``time.time()``);
    ``children`` are the run ids its sub-workflow nodes gave their children."""
    output, output_error = output_of(plan, scheduler.results)
    error = error or output_error
    values = {
        "workflow": plan.name,
        "run_id": run_id,
        "status": "failure" if error else "success",
        "output": output,
        "error": as_error_info(error),
        "attempts": attempts,
    }
    cause = None
    if error is not None:  # the exception that failed the run, for raise_for_status
        failure = scheduler.first_failure()
        cause = failure.exception if failure is not None and failure.error is error else None
    nodes = NodeResults(plan, scheduler.states)
    if plan.children:
        nodes.children = (run_id, children or {})
    return lazy_result(values, cause, nodes, (started_at, time.time()))


class NodeResults:
    """A run's node results, built when called: every finished node's NodeResult, by name, in
    the plan's order."""

    __slots__ = ("children", "plan", "states")

    def __init__(self, plan: Plan, states: list[NodeState | None]) -> None:
        self.plan, self.states = plan, states
        self.children: tuple[str, dict[str, str]] | None = None  # (run id, node -> child)

    def __len__(self) -> int:
        return sum(state is not None for state in self.states)

    def __call__(self) -> dict[str, NodeResult]:
        results = {
            pn.name: node_result(state)
            for pn, state in zip(self.plan.nodes, self.states, strict=True)
            if state is not None
        }
        for name, child in self._child_runs().items():
            results[name].child_run_id = child
        return results

    def plain(self) -> dict[str, dict[str, Any]]:
        """What ``__call__`` builds, as plain dicts in the same order (``_fast.result_text``
        writes a result's JSON from them)."""
        results = {
            pn.name: plain_node(state)
            for pn, state in zip(self.plan.nodes, self.states, strict=True)
            if state is not None
        }
        for name, child in self._child_runs().items():
            results[name]["child_run_id"] = child
        return results

    def _child_runs(self) -> dict[str, str]:
        """The run id of the child each sub-workflow node that started one gave it."""
        if self.children is None:
            return {}
        run_id, given = self.children
        return {
            pn.name: given.get(pn.name, f"{run_id}:{pn.name}")
            for pn, state in zip(self.plan.nodes, self.states, strict=True)
            if pn.kind == "subworkflow" and state is not None and state.attempts
        }


def output_of(plan: Plan, results: dict[str, Any]) -> tuple[Any, dict[str, str] | None]:
    """The run's output, and the error that fails the run when an output value could not be
    resolved (its key is then None)."""
    if plan.output is None:
        leaves = {}
        for name in plan.leaf_names:  # (a loop: no comprehension's function per run)
            leaves[name] = results[name]["output"]
        return leaves, None
    output, error = {}, None
    for key, value in plan.output.items():
        try:
            output[key] = value(results)
        except InputError as exc:
            output[key] = None
            error = error or {"type": "InputError", "message": f"output {key!r}: {exc}"}
    return output, error


def node_result(state: NodeState) -> NodeResult:
    error = state["error"]  # the record's keys and slots, read directly: this runs once per node
    return construct(
        NodeResult,
        {
            "status": state["status"],
            "output": state["output"],
            "error": None if error is None else as_error_info(error),
            "attempts": state.attempts,
            "duration": state.duration,
            "reason": state.reason,
            "trace": state.trace,  # the record's own list: runs are not copied
            "child_run_id": None,
        },
    )


def plain_node(state: NodeState) -> dict[str, Any]:
    """``node_result(state)`` as a plain dict (its trace records too)."""
    error = state["error"]
    if state.untraced:  # one attempt, succeeded: its record, without making it
        assert state.first is not None
        trace = [_plain_attempt(1, state.first, state.duration, None, None, None)]
    else:
        trace = [
            _plain_attempt(a.attempt, a.started, a.duration, a.error, a.wait, a.held)
            for a in state.trace
        ]
    return {
        "status": state["status"],
        "output": state["output"],
        "error": None if error is None else _plain_error(error),
        "attempts": state.attempts,
        "duration": state.duration,
        "reason": state.reason,
        "trace": trace,
        "child_run_id": None,
    }


def _plain_attempt(
    attempt: int,
    started: float,
    duration: float,
    error: ErrorInfo | None,
    wait: float | None,
    held: float | None,
) -> dict[str, Any]:
    info = None if error is None else _plain_error(error.model_dump())
    return {
        "attempt": attempt,
        "started": started,
        "duration": duration,
        "error": info,
        "wait": wait,
        "held": held,
    }


def _plain_error(error: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": error["type"],
        "message": error["message"],
        "traceback": error.get("traceback"),
    }


def stored_result(run: RunRow) -> RunResult:
    """A RunResult rebuilt from a stored run (an ended run asked for again, ``runs show``)."""
    nodes = {
        row.name: NodeResult(
            status="failure" if row.status == "waiting" else row.status,
            output=json.loads(row.output) if row.output else None,
            error=ErrorInfo(**row.error) if row.error else None,
            attempts=row.attempts,
            duration=row.duration,
            reason=row.reason,
            trace=trace_of(row.trace, row.duration),
        )
        for row in run.nodes
    }
    started = datetime.fromisoformat(run.started_at)
    finished = datetime.fromisoformat(run.finished_at) if run.finished_at else started
    return RunResult.model_construct(
        workflow=run.workflow,
        run_id=run.run_id,
        status="success" if run.status == "success" else "failure",
        output=json.loads(run.output) if run.output else None,
        error=ErrorInfo(**run.error) if run.error else None,
        nodes=nodes,
        attempts=run.attempts,
        started_at=started,
        finished_at=finished,
        duration=(finished - started).total_seconds(),
    )
