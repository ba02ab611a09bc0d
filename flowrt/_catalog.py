"""One catalog of workflows for stored runs: the workflow a stored run names, taken from those
given (by name), else imported from where the run says its code lives (``_source``), else
rebuilt from the run's stored definition (its data form). The Worker, ``resume_due``,
``send_signal``, the run viewer and ``flowrt resume`` all look workflows up here; each is built
once per catalog."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ._control import deliver
from ._engine.planned import Plan
from ._engine.run import Environment
from ._engine.run import resume_due as resume_due_runs
from ._errors import FlowError, RunNotFound
from ._models import RunResult, SignalSent
from ._source import importable
from ._store.protocol import RunStore
from ._store.records import RunRow
from ._workflow import Workflow


class LoadError(FlowError):
    """A workflow's code cannot be found or imported (the message says which and why)."""


def python_object(path: str, attr: str) -> Any:
    """``attr`` of the Python file ``path`` (``app.py``, imported from its folder) or of the
    module ``path`` (``pkg.mod``).

    Raises:
        LoadError: no such file or module, it fails to import, or it has no ``attr``.
    """
    if path.endswith(".py"):
        file = Path(path)
        spec = importlib.util.spec_from_file_location(file.stem, file)
        if spec is None or spec.loader is None or not file.is_file():
            raise LoadError(f"no such file: {path}")
        importable(file.parent)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(spec.name, None)
            raise LoadError(f"{path} failed to import: {type(exc).__name__}: {exc}") from None
    else:
        module = _module(path)
    if not hasattr(module, attr):
        raise LoadError(f"{path} has no attribute {attr!r}")
    return getattr(module, attr)


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise LoadError(f"cannot import module {name!r} ({exc})") from None
    except Exception as exc:
        raise LoadError(f"module {name!r} failed to import: {type(exc).__name__}: {exc}") from None


def from_source(source: str, workflow: str) -> Workflow:
    """The workflow named ``workflow`` where ``source`` (``_source.source``) says it lives.

    Raises:
        LoadError: it cannot be imported, or holds no such workflow.
    """
    spec = json.loads(source)
    if spec.get("root"):
        importable(spec["root"])
    target: str = spec["target"]
    path, _, attr = target.rpartition(":") if ":" in target else (target, "", "")
    if attr:
        found = python_object(path, attr)
    else:
        module = _module(target)
        found = next(
            (v for v in vars(module).values() if isinstance(v, Workflow) and v.name == workflow),
            None,
        )
    if not isinstance(found, Workflow) or found.name != workflow:
        raise LoadError(f"{target} holds no workflow named {workflow!r}")
    return found


class Catalog:
    """The workflows stored runs name (see the module docstring)."""

    def __init__(self, workflows: Iterable[Workflow] = ()) -> None:
        self.by_name = {wf.name: wf for wf in workflows}

    def __call__(self, run: RunRow) -> Workflow:
        """The workflow of stored run ``run``.

        Raises:
            FlowError: it is neither given, nor stored as data, nor where its source says.
        """
        wf = self.by_name.get(run.workflow)
        if wf is None:
            wf = self.by_name[run.workflow] = _stored(run)
        return wf


def _stored(run: RunRow) -> Workflow:
    """The workflow a stored run names: where its code lives (the code is the truth of a
    Python workflow), else its stored definition (a workflow file's data form)."""
    if run.source is not None:
        try:
            return from_source(run.source, run.workflow)
        except LoadError:
            if run.definition is None:
                raise
    if run.definition is not None:
        return Workflow.from_dict(json.loads(run.definition))
    raise FlowError(
        f"run {run.run_id!r}: workflow {run.workflow!r} was not given, and the run stores "
        "neither its definition nor where its code lives"
    )


def chooser(
    store: RunStore, workflows: Iterable[Workflow]
) -> Callable[[RunRow], tuple[Plan, Environment]]:
    """What runs a stored run: its workflow from a ``Catalog`` of ``workflows``, compiled,
    against ``store``.

    Raises (when called):
        FlowError: the run's workflow cannot be found (see ``Catalog``).
    """
    catalog = Catalog(workflows)

    def choose(row: RunRow) -> tuple[Plan, Environment]:
        wf = catalog(row)
        return wf.compiled(), wf.environment(store)

    return choose


async def resume_due(
    store: RunStore, workflows: Iterable[Workflow] = (), *, now: float | None = None
) -> list[RunResult]:
    """Continue, concurrently, every run whose retry is due at ``now`` (wall clock; default
    the store's clock) and that no live process owns: a workflow-level retry runs again from
    its first node with its stored input and the retries it has left; a parked node wait
    continues at the node's next attempt. Return their results; a run claimed meanwhile by
    another process is left to it. A workflow is taken from ``workflows`` by name, else
    rebuilt from its stored definition, else imported from where the run says its code lives.

    Raises:
        FlowError: a due run's workflow cannot be found.
    """
    return await resume_due_runs(store, chooser(store, workflows), now=now)


async def send_signal(
    store: RunStore,
    run_id: str,
    signal: str,
    payload: Any = None,
    *,
    key: str | None = None,
    workflows: Iterable[Workflow] = (),
) -> SignalSent:
    """Send ``signal`` with ``payload`` to stored run ``run_id``, whoever executes it (or
    nobody yet): it is kept in the run's mailbox, in send order, until a wait of the run takes
    it; a ``waiting`` run with a wait for it is made due at once (workers are woken). The
    payload is checked against the schema of the wait that takes ``signal``, in the run's
    workflow (from ``workflows`` by name, else where the run says its code lives, else its
    stored definition). ``key`` makes the send idempotent: sent again with an equal payload
    it is a no-op (``duplicate=True``). Nothing is stored when it raises.

    Raises:
        RunNotFound: no such run (also a ``LookupError``).
        RunEnded: the run ended ``success`` or ``failure``.
        SignalConflict: ``key`` was used before with another payload.
        InputError: no wait of the run's workflow takes ``signal``, or the payload is not JSON
            or fails the wait's schema (the message names the field).
    """
    run = await store.load_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    declared = Catalog(workflows)(run).compiled().signals or {}
    return await deliver(store, declared, run_id, (signal, payload, key))


__all__: Sequence[str] = [
    "Catalog",
    "LoadError",
    "chooser",
    "from_source",
    "python_object",
    "resume_due",
    "send_signal",
]
