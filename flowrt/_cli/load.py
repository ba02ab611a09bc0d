"""The command line's FILE argument: a workflow file (YAML or JSON), or a Python workflow object
as ``path/to/file.py:name`` or ``package.module:name``."""

from __future__ import annotations

import sys
from pathlib import Path

from .._catalog import LoadError, python_object
from .._source import source
from .._workflow import Workflow
from .errors import UsageError


def importable(*folders: str | Path) -> None:
    """Put ``folders`` first on the import path, so that ``call:`` references (and Python
    workflow files) import from beside the workflow and from the current folder."""
    sys.path[:0] = [str(Path(folder).resolve()) for folder in folders]


def load(target: str) -> Workflow:
    """The workflow a FILE argument names. A Python one records where it lives (the file's
    absolute path, or the module and the folder it imported from), so that its stored runs
    find it from any folder.

    Raises:
        UsageError: the file or object cannot be loaded (one line: no traceback).
        DefinitionError: the workflow is invalid.
    """
    path, attr = target, ""
    if ":" in target and not Path(target).exists():
        path, _, attr = target.rpartition(":")
    if attr:
        return _python_workflow(path, attr, target)
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {file}")
    importable(file.parent, Path.cwd())
    wf = Workflow.from_yaml(file)
    if not wf.paths:  # stored runs remember where its call: modules live (flowrt resume)
        wf.paths = [str(file.parent.resolve())]
    return wf


def _python_workflow(path: str, attr: str, target: str) -> Workflow:
    if not path.endswith(".py"):
        importable(Path.cwd())
    try:
        found = python_object(path, attr)
    except LoadError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(found, Workflow):
        raise UsageError(f"{target} is a {type(found).__name__}, not a flowrt Workflow")
    found.validate()
    if path.endswith(".py"):
        found.source = source(f"{Path(path).resolve()}:{attr}")
    elif found.source is None:
        found.source = source(target, Path.cwd())
    return found
