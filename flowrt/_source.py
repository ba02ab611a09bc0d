"""Where a workflow's code lives, so that a stored run can find it again from any folder: a
module that defines it (and the folder it imports from), or a Python file and the attribute
holding it. Kept with each stored run as JSON text: ``{"target": "pkg.mod"}`` or
``{"target": "/abs/app.py:wf"}``, with ``"root"``, the folder to import from."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType


def defined_in(frame: FrameType | None) -> str | None:
    """The source of a workflow built by the code of ``frame`` (the first frame outside
    flowrt): its module and the folder it imports from. None for a script (``__main__``: it
    cannot be imported again without running it) or code that has no module file."""
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("flowrt."):
        frame = frame.f_back
    if frame is None:
        return None
    module, file = frame.f_globals.get("__name__"), frame.f_globals.get("__file__")
    if not module or module == "__main__" or not file:
        return None
    path = Path(file).resolve()
    depth = module.count(".") + (path.stem == "__init__")
    return source(module, path.parents[depth])


def source(target: str, root: str | Path | None = None) -> str:
    """A source as stored: ``target`` (``pkg.mod``, ``pkg.mod:attr`` or ``/abs/file.py:attr``)
    and the folder it imports from."""
    data = {"target": target}
    if root is not None:
        data["root"] = str(Path(root).resolve())
    return json.dumps(data)


def importable(*folders: str | Path) -> None:
    """Put ``folders`` first on the import path (once each)."""
    for folder in reversed([str(Path(folder).resolve()) for folder in folders]):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)


__all__: Sequence[str] = ["defined_in", "importable", "source"]
