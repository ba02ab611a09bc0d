"""The façade: ``Workflow``, a ``Definition`` that compiles itself into a ``Plan`` (cached until
the definition changes) and runs it; and ``resume_due``. Everything below it takes a Plan and an
Environment; nothing below imports it."""

from __future__ import annotations

import inspect
import json
import os
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio

from ._control import cancel_run, deliver
from ._definition import Definition
from ._diagram import mermaid, stages
from ._engine.observe import Instrument
from ._engine.plan import Plan, compile_plan
from ._engine.run import Environment, result_of, resume, run, seconds, submit
from ._engine.signals import send_here
from ._engine.stream import EventStream
from ._errors import DefinitionError, FlowError, RunNotFound
from ._executors import ExecutorSpec
from ._limits import RunLimit
from ._loader import from_dict, located, read_yaml, to_dict
from ._loader_children import loading
from ._models import Event, RunResult, SignalSent, WorkflowRetry
from ._source import defined_in
from ._store.claims import CancelOutcome
from ._store.protocol import RunStore

L = TypeVar("L", bound=Callable[[Event], None] | Instrument)


class Workflow(Definition):
    """A DAG of nodes; ``await wf.run(input)`` executes it.

    Args:
        name: the workflow's name (in results, events and logs).
        output: the run's output mapping, resolved like node inputs; without one the output is the
            dict of the leaf nodes' outputs.
        retry: workflow-level retry of a failed run.
        max_concurrency: how many nodes may run at once (None: no cap).
        fail_fast: stop the run at the first failure of a ``raise`` node (after its retries):
            running nodes are cancelled (error type ``Cancelled``), unstarted ones skip.
        rng: the random source for retry jitter (inject a seeded one for reproducible waits).
        store: where runs are kept durably (``flowrt.SQLiteStore(path)``); None: in memory only.
        executor: where sync nodes run unless they name their own: ``"thread"`` (the
            default), ``"process"``, or an ``Executor`` (``flowrt.ray.RayExecutor()``).
        run_limit: how many runs of one key run at once (``RunLimit``, or a list of them),
            across every process sharing ``store`` (without one, within this process).
    """

    def __init__(
        self,
        name: str,
        *,
        output: Mapping[str, Any] | None = None,
        retry: WorkflowRetry | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        rng: random.Random | None = None,
        store: RunStore | None = None,
        executor: ExecutorSpec = "thread",
        run_limit: RunLimit | Sequence[RunLimit] | None = None,
    ) -> None:
        self._plan: Plan | None = None
        self._data: list[str | None] = []  # the data form as JSON text, once computed
        super().__init__(
            name,
            output=output,
            retry=retry,
            max_concurrency=max_concurrency,
            fail_fast=fail_fast,
            executor=executor,
            run_limit=run_limit,
        )
        self.rng = rng or random.Random()
        self.store = store
        self.listeners: list[Callable[[Event], None] | Instrument] = []
        self._environment: tuple[tuple[Any, ...], Environment] | None = None
        # where its code lives, kept with its stored runs (``flowrt._source``)
        self.source: str | None = defined_in(sys._getframe(1))

    def _changed(self) -> None:
        self._plan = None
        self._data = []

    def add_listener(self, listener: L) -> L:
        """Call ``listener(event)`` for every event of every run of this workflow, synchronously,
        as it happens (usable as a decorator). A listener that raises is logged (stdlib logger
        ``flowrt``) and never breaks the run. (flowrt's own instruments, such as
        ``flowrt.otel``'s tracer, are added the same way: they observe each run's hooks.)

        Raises:
            TypeError: ``listener`` is an ``async def`` function (use ``wf.stream()`` to await).
        """
        if inspect.iscoroutinefunction(listener):
            raise TypeError(
                f"listener {listener!r} is async: listeners are called synchronously as events "
                "happen; use `async for event in wf.stream(...)` to await per event"
            )
        self.listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[[Event], None] | Instrument) -> None:
        """Stop calling ``listener``.

        Raises:
            ValueError: it was not added.
        """
        self.listeners.remove(listener)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        """Build a workflow from plain data (the format of ``flowrt schema``) and validate it.

        Raises:
            DefinitionError: names the place in the data (``nodes[2].error_handling.backoff_rate``)
                and what is wrong there, including a ``call`` whose module or attribute is missing.
        """
        wf = from_dict(data, cls)
        try:
            wf.validate()
        except DefinitionError as exc:
            raise located(exc, wf) from None
        return wf

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Workflow:
        """Build a workflow from a YAML (or JSON) file; see ``from_dict``.

        Raises:
            DefinitionError: the file cannot be read or parsed, or its content is invalid.
        """
        with loading(path):
            return cls.from_dict(read_yaml(path))

    def to_dict(self) -> dict[str, Any]:
        """The workflow as plain data that ``from_dict`` reads back.

        Raises:
            DefinitionError: a node cannot be written as data (a lambda or local function, a
                callable condition or ``retry_on`` predicate).
        """
        return to_dict(self)

    def _definition_json(self) -> str | None:
        """The data form as JSON text (for a durable run's row), or None without one."""
        if not self._data:
            try:
                self._data.append(json.dumps(to_dict(self)))
            except (DefinitionError, TypeError, ValueError):
                self._data.append(None)
        return self._data[0]

    def validate(self) -> None:
        """Check the whole definition.

        Raises:
            DefinitionError: names the node, the field and what is wrong (a cycle, an unknown or
                duplicate name, a malformed selector or template, a bad option, ...).
        """
        self.compiled()

    def compiled(self) -> Plan:
        """The validated, compiled plan (cached until the definition changes).

        Raises:
            DefinitionError: the workflow is invalid.
        """
        if self._plan is None:
            self._plan = compile_plan(self)
        return self._plan

    def mermaid(self) -> str:
        """The workflow as a Mermaid flowchart (Choice options label their arrows).

        Raises:
            DefinitionError: the workflow is invalid.
        """
        return mermaid(self.compiled())

    def stages(self) -> list[list[str]]:
        """The plan: node names grouped into stages that can start together.

        Raises:
            DefinitionError: the workflow is invalid.
        """
        return stages(self.compiled())

    def environment(self, store: RunStore | None = None) -> Environment:
        """What a run of this workflow takes besides its plan: the listeners, the random
        source, the store (``store``, else the workflow's) and the data form. It is made again
        only when one of them changed."""
        where = store if store is not None else self.store
        key = (where, self.rng, self.source, *self.listeners)
        cached = self._environment
        if cached is not None and cached[0] == key:
            return cached[1]
        env = Environment(
            listeners=[item for item in self.listeners if not isinstance(item, Instrument)],
            instruments=[item for item in self.listeners if isinstance(item, Instrument)],
            rng=self.rng,
            store=where,
            definition=self._definition_json,
            source=self.source,
        )
        self._environment = (key, env)
        return env

    async def run(
        self,
        input: Any = None,
        *,
        timeout: float | None = None,
        run_id: str | None = None,
        store: RunStore | None = None,
        listener: Callable[[Event], None] | None = None,
    ) -> RunResult:
        """Run the workflow once (plus workflow-level retries) and return its result.

        ``input`` is the run input (``$.input``): plain data; a pydantic model is taken as its
        ``model_dump()``. Node failures never raise: they are in the result. ``timeout`` is a
        deadline for each run attempt: at expiry running nodes are cancelled and the run fails.
        ``run_id`` names the run (a new uuid4 hex by default). With a ``store`` (or the
        workflow's) the run is durable: its row (input, status ``running``, owner) is committed
        before the first node starts, each node's envelope is stored as it finishes, and it can
        be resumed; node outputs must then be strict JSON (else the node fails with
        ``OutputError``). A ``run_id`` is then an idempotency key: a stored run that ended is
        returned as it was stored (nothing runs); one that was interrupted or cancelled is
        resumed (its stored input is used). ``listener`` gets this run's events as they happen
        (after the workflow's own listeners).

        Raises:
            ValueError: ``timeout`` is not a number of seconds at least 0 (nor None).
            DefinitionError: the workflow is invalid.
            InputError: a durable run's input is not strict JSON.
            RunInProgress: a durable run with this id is being executed (a live owner).
            FlowError: the stored run ``run_id`` belongs to another workflow.
        """
        plan, env = self.compiled(), self.environment(store)
        return await run(plan, env, input, timeout=timeout, run_id=run_id, listener=listener)

    async def resume(
        self,
        run_id: str,
        *,
        store: RunStore | None = None,
        timeout: float | None = None,
        listener: Callable[[Event], None] | None = None,
    ) -> RunResult:
        """Finish a stored run: nodes that succeeded keep their stored outputs and do not run
        again; a node stored in a retry wait continues at its next attempt when due; every
        other node runs (a node that was running when the process died runs again:
        at-least-once). A run that succeeded is returned as stored. Returns the run's result.
        ``listener`` gets this execution's events, as for ``run``.

        Raises:
            ValueError: ``timeout`` is not a number of seconds at least 0 (nor None).
            FlowError: no store, no such run, or a run of another workflow.
            RunInProgress: a live process is executing the run.
        """
        plan, env = self.compiled(), self.environment(store)
        return await resume(plan, env, run_id, timeout=timeout, listener=listener)

    async def submit(
        self,
        input: Any = None,
        *,
        store: RunStore | None = None,
        run_id: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Enqueue a run for a ``Worker`` and return its id at once (the run row is committed,
        status ``queued``). ``run_id`` is an idempotency key: an existing run of this workflow
        is not enqueued again, and its id is returned. ``timeout`` is the run's deadline in
        seconds, stored with it: whichever process executes the run applies it (each
        execution, a resume included, has its whole length).

        Raises:
            DefinitionError: the workflow is invalid.
            FlowError: no store (``store`` or the workflow's), or ``run_id`` is a run of
                another workflow.
            InputError: the input is not strict JSON.
        """
        plan, env = self.compiled(), self.environment(store)
        return await submit(plan, env, input, run_id=run_id, timeout=timeout)

    async def result(
        self, run_id: str, *, store: RunStore | None = None, timeout: float | None = None
    ) -> RunResult:
        """Wait for stored run ``run_id`` to end (``success`` or ``failure``); its result.

        Raises:
            FlowError: no store.
            RunNotFound: no such run.
            RunCancelled: the run was cancelled.
            TimeoutError: it had not ended after ``timeout`` seconds.
        """
        where = store if store is not None else self.store
        if where is None:
            raise FlowError(f"workflow {self.name!r} has no store to read run {run_id!r} from")
        return await result_of(where, run_id, timeout)

    async def signal(
        self,
        run_id: str,
        signal: str,
        payload: Any = None,
        *,
        key: str | None = None,
        store: RunStore | None = None,
    ) -> SignalSent:
        """Send ``signal`` with ``payload`` to run ``run_id`` of this workflow. With a store
        (``store`` or the workflow's), the signal is kept in the run's stored mailbox whoever
        executes the run (see ``flowrt.send_signal``); without one, it goes to the run
        executing in this process. A signal sent before its wait starts is kept for it; ``key``
        makes the send idempotent. Nothing is kept when it raises.

        Raises:
            RunNotFound: no run ``run_id`` of this workflow in the store (without a store: none
                of this workflow executes here).
            RunEnded: the stored run ended ``success`` or ``failure``.
            InputError: no wait of the workflow takes ``signal``, or the payload is not JSON
                or fails the wait's schema.
            SignalConflict: ``key`` was sent before with another payload.
        """
        where = store if store is not None else self.store
        if where is None:
            return send_here(self.name, run_id, signal, payload, key)
        run = await where.load_run(run_id)
        if run is None or run.workflow != self.name:
            raise RunNotFound(run_id, f"the runs of workflow {self.name!r}")
        return await deliver(where, self.compiled().signals or {}, run_id, (signal, payload, key))

    async def cancel(
        self, run_id: str, store: RunStore | None = None, *, reason: str | None = None
    ) -> CancelOutcome:
        """Cancel stored run ``run_id`` of this workflow: see ``flowrt.cancel_run``.

        Raises:
            FlowError: no store (``store`` or the workflow's).
            RunNotFound: no such run.
            RunEnded: the run ended ``success`` or ``failure``.
        """
        where = store if store is not None else self.store
        if where is None:
            raise FlowError(f"workflow {self.name!r} has no store to cancel run {run_id!r} in")
        return await cancel_run(where, run_id, reason=reason)

    def run_sync(self, input: Any = None, *, timeout: float | None = None) -> RunResult:
        """``run`` for scripts: starts an event loop with ``anyio.run``."""
        return anyio.run(lambda: self.run(input, timeout=timeout))

    def stream(
        self,
        input: Any = None,
        *,
        timeout: float | None = None,
        run_id: str | None = None,
        listener: Callable[[Event], None] | None = None,
    ) -> EventStream:
        """Run the workflow, yielding each ``Event`` as it happens; leaving the loop early
        cancels the run. The last event, ``run.finished``, carries the RunResult. ``run_id``
        names the run, as for ``run``; ``listener`` also gets every event, as it happens.

        Raises:
            DefinitionError: the workflow is invalid (raised here, before iterating).
            ValueError: ``timeout`` is not a number of seconds (raised here).
        """
        plan, env = self.compiled(), self.environment()
        timeout = seconds(timeout, "timeout")
        return EventStream(plan, env, input, timeout=timeout, run_id=run_id, listener=listener)
