"""Map over 500 orders, 50 at a time: a few cards are declined, the other orders go through, and
a report node reads the failures back with a JSONPath filter."""

from __future__ import annotations

import anyio

from flowrt import ErrorHandling, Workflow

wf = Workflow("map-orders", output={"report": "$.report.output"})


@wf.map(
    items="$.input.orders",
    concurrency=50,
    error_handling=ErrorHandling(
        behavior="return", max_retries=1, retry_interval_seconds=0.001, timeout_seconds=1
    ),
)
async def charge(item: dict[str, int]) -> dict[str, int]:
    await anyio.sleep(0.001)
    if item["id"] % 97 == 0:
        raise ValueError(f"card declined for order {item['id']}")
    return {"id": item["id"], "charged": item["cents"]}


@wf.node(
    inputs={
        "declined": "$.charge.output[?(@.status=='failure')].error.message",
        "charged": "$.charge.output[?(@.status=='success')].output.charged",
    }
)
def report(declined: list[str] | str | None, charged: list[int]) -> dict[str, object]:
    declined = [declined] if isinstance(declined, str) else declined or []
    return {"charged_orders": len(charged), "total_cents": sum(charged), "declined": declined}


def main() -> None:
    orders = [{"id": i, "cents": 100 + i} for i in range(1, 501)]
    result = wf.run_sync({"orders": orders})
    summary = result.output["report"]
    charged, cents = summary["charged_orders"], summary["total_cents"]
    print(f"charged {charged} of {len(orders)} orders, {cents} cents")
    for message in summary["declined"]:
        print(f"declined: {message}")


if __name__ == "__main__":
    main()
