"""The command line's FILE argument: a workflow file (YAML or JSON), or a Python workflow object
as ``path/to/file.py:name`` or ``package.module:name``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ._cli_errors import UsageError
from ._graph import Workflow


def importable(*folders: str | Path) -> None:
    """Put ``folders`` first on the import path, so that ``call:`` references (and Python
    workflow files) import from beside the workflow and from the current folder."""
    sys.path[:0] = [str(Path(folder).resolve()) for folder in folders]


def load(target: str) -> Workflow:
    """The workflow a FILE argument names.

    Raises:
        UsageError: the file or object cannot be loaded.
        DefinitionError: the workflow is invalid.
    """
    path, attr = target, ""
    if ":" in target and not Path(target).exists():
        path, _, attr = target.rpartition(":")
    if attr:
        found = _python_object(path, attr)
        if not isinstance(found, Workflow):
            raise UsageError(f"{target} is a {type(found).__name__}, not a flowrt Workflow")
        found.validate()
        return found
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {file}")
    importable(file.parent, Path.cwd())
    wf = Workflow.from_yaml(file)
    if not wf.paths:  # stored runs remember where its call: modules live (flowrt resume)
        wf.paths = [str(file.parent.resolve())]
    return wf


def _python_object(path: str, attr: str) -> Any:
    if path.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        if spec is None or spec.loader is None or not Path(path).is_file():
            raise UsageError(f"no such file: {path}")
        importable(Path(path).parent)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        importable(Path.cwd())
        try:
            module = importlib.import_module(path)
        except ImportError as exc:
            raise UsageError(f"cannot import module {path!r} ({exc})") from None
    if not hasattr(module, attr):
        raise UsageError(f"{path} has no attribute {attr!r}")
    return getattr(module, attr)
