"""Rendering results: a plain-text table for people (one row per node), and JSON that always
encodes, whatever the nodes returned. It reads results by their attributes only
(``RunResult.table`` calls it: it imports nothing of flowrt).

A value JSON cannot hold (an object, bytes that are not UTF-8, a value nested too deep) is
encoded as ``{"$unserializable": "<module.Type>", "repr": "<its repr, shortened>"}``; NaN and
infinities as null; dict keys as strings.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 200

_HEADERS = ("node", "status", "attempts", "duration", "error / reason")


def _detail(node: Any, width: int) -> str:
    if node.error is not None:
        text = f"{node.error.type}: {node.error.message}"
    else:
        text = node.reason or _failed_items(node.output)
    text = text.splitlines()[0] if text else ""  # one row per node, whatever the message
    return text if len(text) <= width else text[: width - 1] + "…"


def _failed_items(output: Any) -> str:
    """For a map node's output (its items' envelopes): how many items failed, and the first."""
    if not isinstance(output, list) or not output:
        return ""
    if not all(isinstance(item, dict) and item.keys() == _ENVELOPE for item in output):
        return ""
    failed = [i for i, item in enumerate(output) if item["status"] == "failure"]
    if not failed:
        return ""
    first = output[failed[0]]["error"] or {}
    return (
        f"{len(failed)} of {len(output)} items failed; item {failed[0]}: "
        f"{first.get('type')}: {first.get('message')}"
    )


_ENVELOPE = {"status", "output", "error"}


def table(result: Any, width: int = 72) -> str:
    """Rows of node, status, attempts, duration and error (or skip reason), then the verdict."""
    rows = [
        (
            name,
            node.status,
            str(node.attempts),
            f"{node.duration * 1000:.1f} ms",
            _detail(node, width),
        )
        for name, node in result.nodes.items()
    ]
    widths = [max(len(row[i]) for row in [_HEADERS, *rows]) for i in range(len(_HEADERS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [_HEADERS, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdict = f"run {result.status} in {result.duration * 1000:.1f} ms"
    if result.attempts > 1:
        verdict += f" after {result.attempts} attempts"
    if result.error is not None:
        verdict += f": {result.error.type}: {result.error.message}"
    return "\n".join([*lines, "", verdict])


def jsonable(value: Any) -> Any:
    """``value`` with what JSON cannot hold replaced by its fallback form (see the module)."""
    try:
        return _jsonable(value)
    except RecursionError:
        return {"$unserializable": type(value).__name__, "repr": "nested too deep"}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    kind = type(value)
    return {"$unserializable": f"{kind.__module__}.{kind.__qualname__}", "repr": _REPR.repr(value)}
