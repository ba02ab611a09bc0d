"""Plain-text rendering of a RunResult for people: one row per node. It reads results by
their attributes only (``RunResult.table`` calls it: it imports nothing of flowrt)."""

from __future__ import annotations

from typing import Any

_HEADERS = ("node", "status", "attempts", "duration", "error / reason")


def _detail(node: Any, width: int) -> str:
    if node.error is not None:
        text = f"{node.error.type}: {node.error.message}"
    else:
        text = node.reason or ""
    return text if len(text) <= width else text[: width - 1] + "…"


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
