"""The request body of ``workflow_router``'s ``POST /run`` and ``POST /runs``: a pydantic model
derived from the workflow's input parameters, so ``/docs`` shows the real schema and a bad body
gets a 422 naming the field."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

from .._resolve import Path
from .._workflow import Workflow


def _model_name(wf: Workflow) -> str:
    words = re.split(r"[^A-Za-z0-9]+", wf.name)
    return "".join(word[:1].upper() + word[1:] for word in words if word) + "Input"


def input_model(wf: Workflow) -> type[BaseModel]:
    """The pydantic model of ``wf``'s run input: one field per function parameter that comes
    from ``$.input`` (its type hint and default; required if a node needs it and has no
    default), plus ``$.input.<name>`` selectors as optional fields; other fields pass through."""
    fields: dict[str, Any] = {}
    for pn in wf.compiled().nodes:
        fn = pn.fn
        if fn is None:
            continue
        try:
            hints = get_type_hints(fn)
        except Exception:  # unresolvable annotations: accept anything
            hints = {}
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        for name, required in pn.from_input:
            default = ... if required else params[name].default
            if name not in fields or fields[name][1] is not ...:
                fields[name] = (hints.get(name, Any), default)
        for _, value in (*pn.positional, *pn.keywords):
            if isinstance(value, Path) and len(value.keys) == 2 and value.keys[0] == "input":
                fields.setdefault(value.keys[1], (Any, None))
        if pn.items is not None and isinstance(pn.items, Path) and pn.items.keys[0] == "input":
            fields.setdefault(pn.items.keys[1], (list[Any], ...))
    config = ConfigDict(extra="allow")
    model: type[BaseModel] = create_model(_model_name(wf), __config__=config, **fields)
    return model


__all__: Sequence[str] = ["input_model"]
