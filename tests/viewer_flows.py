"""Workflows the run viewer's tests store runs of (importable by name, so a stored run's
definition loads again in ``flowrt ui``): ``shop``, with a node retried twice, a Choice and its
untaken branch, a timed-out attempt, an output holding HTML, and a node that waits for a gate
file (``{"gate": path}`` in the input) so a run can be caught while it runs; ``broken``, whose
failing node skips the rest."""

from __future__ import annotations

from pathlib import Path

import anyio

from flowrt import Condition, ErrorHandling, Workflow, current

shop = Workflow("shop")


@shop.node(error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0.05))
async def fetch(order_id: int) -> dict[str, int]:
    """Fails its first two attempts (the upstream refuses), then answers."""
    if current().attempt <= 2:
        raise ConnectionError(f"upstream refused attempt {current().attempt}")
    return {"order_id": order_id, "items": 3}


shop.choice("route", {"primary": Condition("$.fetch.status", "==", "success"), "backup": None})


@shop.node(depends=["route.backup"])
async def backup(order_id: int) -> str:
    """The fallback branch: skipped when the primary one is taken."""
    return f"backup for {order_id}"


@shop.node(
    depends=["route.primary"],
    error_handling=ErrorHandling(behavior="return", timeout_seconds=0.05),
)
async def slow_quote() -> str:
    """Times out, and its error becomes its result."""
    await anyio.sleep(5)
    return "never"


@shop.node(inputs={"order": "$.fetch.output", "gate": "$.input.gate"}, depends=["slow_quote"])
async def wait_gate(order: dict[str, int], gate: str | None = None) -> int:
    """Waits until the file ``gate`` exists (no gate: at once)."""
    while gate is not None and not Path(gate).exists():
        await anyio.sleep(0.05)
    return order["items"]


@shop.node(inputs={"items": "$.wait_gate.output"})
async def render(items: int) -> str:
    """An output that is HTML: the viewer must show it as text."""
    return f"<script>alert({items - 2})</script>"


broken = Workflow("broken")


@broken.node
async def explode() -> None:
    """Fails: everything after it is skipped and the run fails."""
    raise ValueError("<b>bad</b> input")


@broken.node(inputs={"x": "$.explode.output"})
async def after(x: object) -> object:
    return x


skipping = Workflow("skipping")  # a Choice whose taken branch skips two columns


@skipping.node
async def probe() -> int:
    return 1


skipping.choice("pick", {"ok": Condition("$.probe.status", "==", "success"), "down": None})


@skipping.node(depends=["probe"])
async def step1() -> int:
    return 1


@skipping.node(depends=["step1"])
async def step2() -> int:
    return 2


@skipping.node(depends=["pick.down"])
async def fallback() -> str:
    return "fallback"


@skipping.node(depends=["fallback"])
async def notify() -> str:
    return "notified"


@skipping.node(depends=["pick.ok", "step2"])
async def ship() -> str:
    return "shipped"
