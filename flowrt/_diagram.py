"""Pictures of a plan: a Mermaid flowchart, and the stages of nodes that can start together."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._engine.planned import Plan, PlanNode

_SHAPES = {
    "task": '["{}"]',
    "choice": '{{"{}"}}',
    "map": '[["{} (map)"]]',
    "loop": '(["{} (loop)"])',
    "wait": '[/"{} (wait)"/]',
    "sleep": '[\\"{} (sleep)"\\]',
}


def _box(pn: PlanNode) -> str:
    return f"    n{pn.index}" + _SHAPES[pn.kind].format(pn.name)


def mermaid(plan: Plan) -> str:
    """A Mermaid flowchart: one box per node (a Choice is a rhombus), one arrow per dependency;
    arrows from a Choice are labelled with their option."""
    lines = ["flowchart TD", *(_box(pn) for pn in plan.nodes)]
    for pn in plan.nodes:
        for dep, option in pn.edges:
            arrow = f"-->|{option}|" if option is not None else "-->"
            lines.append(f"    n{dep} {arrow} n{pn.index}")
    return "\n".join(lines)


def stages(plan: Plan) -> list[list[str]]:
    """Nodes grouped by how many dependency levels precede them: every node of a stage can start
    together once the earlier stages are done (at run time each starts as soon as its own
    dependencies are)."""
    depth = [0] * len(plan.nodes)
    remaining = [len(pn.deps) for pn in plan.nodes]
    ready = list(plan.roots)
    while ready:
        pn = plan.nodes[ready.pop()]
        for dependent in pn.dependents:
            depth[dependent] = max(depth[dependent], depth[pn.index] + 1)
            remaining[dependent] -= 1
            if not remaining[dependent]:
                ready.append(dependent)
    grouped: list[list[str]] = [[] for _ in range(max(depth, default=-1) + 1)]
    for pn in plan.nodes:
        grouped[depth[pn.index]].append(pn.name)
    return grouped
