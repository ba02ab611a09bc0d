"""Durable runs on a ``RunStore``: recording nodes as they finish (batched), resuming a run from
its stored successes, and starting workflow-level retries that came due while nobody waited."""

from __future__ import annotations

import dataclasses
import json
import json.encoder
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

import anyio

from ._attempt import Done
from ._errors import DefinitionError, FlowError, InputError, OutputError
from ._models import AttemptRecord, ErrorInfo, NodeResult, RunResult, construct
from ._store import RunRow, RunStore, record

if TYPE_CHECKING:
    from ._graph import Workflow
    from ._plan import Plan


def _raise_unencodable(value: object) -> None:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# json's C encoder, built once (json.dumps builds one per call); None without the C accelerator.
_encode = _c_make_encoder and _c_make_encoder(
    None,
    _raise_unencodable,
    encode_basestring_ascii,
    None,
    ": ",
    ", ",
    False,
    False,
    True,
)


def to_json(value: Any) -> str:
    """``json.dumps(value)``, faster.

    Raises:
        TypeError, ValueError, RecursionError: as ``json.dumps`` does (RecursionError for a
            circular value).
    """
    kind = type(value)  # exact types: bool, an int subclass, goes through the encoder
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if _encode is None:  # pragma: no cover
        return json.dumps(value)
    return "".join(_encode(value, 0))


def _trace_json(trace: list[AttemptRecord]) -> str:
    if len(trace) == 1 and trace[0].error is None:  # one clean attempt: the node's own figures
        return "null"
    return json.dumps(
        [
            [a.attempt, a.started, a.duration, a.error and [a.error.type, a.error.message], a.wait]
            for a in trace
        ]
    )


def _trace(text: str, duration: float) -> list[AttemptRecord]:
    if text == "null":  # stored without a trace: one clean attempt, as long as the node took
        return [AttemptRecord(1, 0.0, duration)]
    return [
        AttemptRecord(
            n, s, d, construct(ErrorInfo, {"type": e[0], "message": e[1]}) if e else None, w
        )
        for n, s, d, e, w in json.loads(text)
    ]


COMMIT_DELAY = 0.01  # seconds a finished node may wait before its batch is written


class Recorder:
    """Queues a run's finished nodes (and its run row, when it changed) for the store, and
    writes them by group commit with a bounded delay: the run's writer task waits
    ``COMMIT_DELAY`` after the first queued record, then writes everything queued as one
    transaction. The loop never waits on disk; a short run is written once, at its end,
    together with its run row."""

    __slots__ = ("lock", "pending", "queued", "run", "run_id", "signalled", "store")

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.pending: list[str] = []
        self.run: RunRow | None = None
        self.lock = anyio.Lock()
        self.queued = anyio.Event()
        self.signalled = False

    def add(self, name: str, done: Done) -> None:
        """Queue node ``name``; a success whose output is not JSON becomes an ``OutputError``
        failure first."""
        status, output = done["status"], None
        if status == "success":
            try:
                output = to_json(done["output"])
            except (TypeError, ValueError, RecursionError) as exc:
                done.fail(OutputError(f"node {name!r}: its output cannot be stored as JSON: {exc}"))
                status = "failure"
        trace = done.trace
        if status == "success" and len(trace) == 1:  # the common record, built directly:
            # what record() makes of it (tests/test_store.py checks), at half the cost
            text = f'["{name}", "success", {output}, null, 1, {done.duration:.6f}, null, null]'
        else:
            text = record(
                name, status or "failure", output, done["error"], done.attempts, done.duration,
                done.reason, _trace_json(trace),
            )  # fmt: skip
        self.pending.append(text)
        if not self.signalled:  # wake the writer (once per batch)
            self.signalled = True
            self.queued.set()

    async def writer(self) -> None:
        """The run's writer task (cancelled when the run's nodes are done): wait for a record,
        let others join it for ``COMMIT_DELAY``, write the batch; again."""
        while True:
            await self.queued.wait()
            await anyio.sleep(COMMIT_DELAY)
            self.queued, self.signalled = anyio.Event(), False
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued (and the run row, if it changed) now, in one transaction."""
        async with self.lock:
            if not self.pending and self.run is None:
                return
            batch, self.pending = self.pending, []
            run, self.run = self.run, None
            await self.store.write(self.run_id, batch, run)


def input_json(input: Any) -> str:
    """The run input as JSON text.

    Raises:
        InputError: it is not JSON-serialisable (a durable run must store it).
    """
    try:
        return json.dumps(input)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the run input cannot be stored as JSON: {exc}") from None


def definition_json(wf: Workflow) -> str | None:
    """The workflow as JSON data, when it has a data form (for ``resume`` from the CLI)."""
    try:
        return json.dumps(wf.to_dict())
    except (DefinitionError, TypeError, ValueError):
        return None


class Durable:
    """One run's life in the store: started, nodes recorded as they finish, retrying (with a
    due time), finished or cancelled."""

    def __init__(
        self,
        store: RunStore,
        wf: Workflow,
        run_id: str,
        input: Any,
        started: datetime,
    ) -> None:
        self.store = store
        self.recorder = Recorder(store, run_id)
        definition = wf.compiled().cache
        if "definition" not in definition:
            definition["definition"] = definition_json(wf)
        self.row = RunRow(
            run_id, wf.name, input_json(input), "running", started.isoformat(),
            definition["definition"],
        )  # fmt: skip

    def start(self, attempt: int) -> None:
        """Workflow-level attempt ``attempt`` is running: recorded with the first nodes that
        finish."""
        self.row.status, self.row.attempts, self.row.retry_due = "running", attempt, None
        self.recorder.run = dataclasses.replace(self.row, nodes=[])

    async def _save(self) -> None:
        self.recorder.run = dataclasses.replace(self.row, nodes=[])
        await self.recorder.flush()

    async def retrying(self, attempts: int, error: dict[str, str], wait: float) -> None:
        """A failed attempt will run again after ``wait``: record when, so that it survives a
        restart (``resume_due``)."""
        row = self.row
        row.status, row.attempts, row.error, row.retry_due = (
            "retrying",
            attempts,
            error,
            time.time() + wait,
        )
        await self._save()

    async def finish(self, result: RunResult) -> None:
        """The run ended."""
        row = self.row
        row.status, row.attempts, row.retry_due = result.status, result.attempts, None
        row.error = result.error.model_dump() if result.error else None
        row.finished_at = result.finished_at.isoformat()
        try:
            row.output = to_json(result.output)
        except (TypeError, ValueError, RecursionError):
            row.output = None
        await self._save()

    async def cancelled(self) -> None:
        """The caller cancelled the run: keep what finished and mark it cancelled (resumable).
        Cancelled while waiting for a workflow-level retry, it stays ``retrying`` with its due
        time, for ``resume_due``."""
        with anyio.CancelScope(shield=True):
            if self.row.status == "retrying":
                await self.recorder.flush()
                return
            self.row.status, self.row.retry_due = "cancelled", None
            self.row.finished_at = datetime.now(UTC).isoformat()
            await self._save()


def seeded(plan: Plan, run: RunRow) -> dict[int, Done]:
    """Records of the stored run's successful nodes, by plan index: a resumed run keeps them."""
    records: dict[int, Done] = {}
    for row in run.nodes:
        index = plan.index.get(row.name)
        if row.status != "success" or index is None:
            continue
        # A success stored without output text returned None (JSON null): keep it all the same.
        done = Done().succeed(None if row.output is None else json.loads(row.output))
        done.attempts, done.duration = row.attempts, row.duration
        done.trace = _trace(row.trace, row.duration)
        records[index] = done
    return records


async def load(store: RunStore, run_id: str, workflow: str | None = None) -> RunRow:
    """The stored run ``run_id``.

    Raises:
        FlowError: no such run, or it belongs to another workflow.
    """
    run = await store.load_run(run_id)
    if run is None:
        raise FlowError(f"no run {run_id!r} in {store!r}")
    if workflow is not None and run.workflow != workflow:
        raise FlowError(f"run {run_id!r} belongs to workflow {run.workflow!r}, not {workflow!r}")
    return run


def stored_result(run: RunRow) -> RunResult:
    """A RunResult rebuilt from a stored run (for ``flowrt runs show``)."""
    nodes = {
        row.name: NodeResult(
            status=row.status,  # type: ignore[arg-type]
            output=json.loads(row.output) if row.output else None,
            error=ErrorInfo(**row.error) if row.error else None,
            attempts=row.attempts,
            duration=row.duration,
            reason=row.reason,
            trace=_trace(row.trace, row.duration),
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


async def resume_due(
    store: RunStore, workflows: Iterable[Workflow] = (), *, now: float | None = None
) -> list[RunResult]:
    """Start every workflow-level retry whose due time has come, concurrently; return their
    results. Each runs again from its first node with its stored input, with the retries it has
    left. A workflow is taken from ``workflows`` by name, else rebuilt from its stored definition.

    Raises:
        FlowError: a due run's workflow is neither given nor stored as data.
    """
    from ._graph import Workflow
    from ._run import run as run_workflow

    by_name = {wf.name: wf for wf in workflows}
    due = await store.due_runs(time.time() if now is None else now)
    plans: list[tuple[Workflow, RunRow]] = []
    for row in due:
        wf = by_name.get(row.workflow)
        if wf is None and row.definition is None:
            raise FlowError(f"run {row.run_id!r}: workflow {row.workflow!r} was not given")
        plans.append((wf or Workflow.from_dict(json.loads(row.definition or "{}")), row))
    results: list[RunResult] = []

    async def again(wf: Workflow, row: RunRow) -> None:
        results.append(
            await run_workflow(
                wf, json.loads(row.input), timeout=None, run_id=row.run_id, store=store,
                after_attempts=row.attempts,
            )
        )  # fmt: skip

    async with anyio.create_task_group() as tg:
        for wf, row in plans:
            tg.start_soon(again, wf, row)
    return results


__all__: Sequence[str] = ["Recorder", "resume_due", "seeded", "stored_result"]
