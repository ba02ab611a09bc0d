"""The `make demo` workflow: an order pipeline that shows retries with backoff, a per-attempt
timeout, a failure returned as data and read downstream, a fallback branch chosen on that
failure, and a raise failure whose skip cascades through its dependents."""

from __future__ import annotations

import anyio

from flowrt import Condition, ErrorHandling, Workflow

wf = Workflow("order-pipeline")
price_calls = 0


@wf.node(error_handling=ErrorHandling(max_retries=3, retry_interval_seconds=0.05, backoff_rate=2))
async def fetch_price(sku: str) -> float:
    """Flaky: the pricing service drops the first two connections."""
    global price_calls
    price_calls += 1
    if price_calls <= 2:
        raise ConnectionError(f"pricing service reset the connection (call {price_calls})")
    return 19.99


@wf.node(error_handling=ErrorHandling(behavior="return", timeout_seconds=0.2))
async def fetch_reviews(sku: str) -> list[str]:
    """Too slow: every attempt exceeds its 0.2 s limit, and the failure is returned as data."""
    await anyio.sleep(5)
    return ["great"]


route = wf.choice(
    "route_reviews",
    {"live": Condition("$.fetch_reviews.status", "==", "success"), "cached": None},
)


@wf.node(depends=[route["live"]], inputs={"reviews": "$.fetch_reviews.output"})
async def rank_live_reviews(reviews: list[str]) -> list[str]:
    return sorted(reviews)


@wf.node(depends=[route["cached"]], inputs={"why": "$.fetch_reviews.error.message"})
def use_cached_reviews(why: str) -> str:
    """The fallback branch: a sync function, run in a worker thread."""
    return f"cached reviews (live ones failed: {why})"


@wf.node(
    depends=[rank_live_reviews, use_cached_reviews],
    trigger="any",
    inputs={
        "price": "$.fetch_price.output",
        "reviews": "$.rank_live_reviews.output || $.use_cached_reviews.output",
        "headline": "{{ input.sku }} at ${{ fetch_price.output }}",
    },
)
async def build_page(price: float, reviews: object, headline: str) -> str:
    return f"{headline} - {reviews}"


@wf.node(inputs={"amount": "$.fetch_price.output"})
async def charge_card(amount: float) -> str:
    raise PermissionError(f"card declined for ${amount}")


@wf.node(depends=[charge_card])
async def ship_order() -> str:
    return "shipped"


@wf.node(depends=[ship_order])
async def email_tracking_number() -> str:
    return "emailed"


def main() -> None:
    result = wf.run_sync({"sku": "KB-42"})
    print(f"workflow {wf.name!r}, run {result.run_id[:8]}\n")
    print(result.table())
    print("\nwhat happened:")
    for attempt in result["fetch_price"].trace:
        outcome = (
            f"{attempt.error.type}, retrying in {attempt.wait:g}s" if attempt.error else "success"
        )
        print(f"  fetch_price attempt {attempt.attempt}: {outcome}")
    reviews = result["fetch_reviews"].error
    print(f"  fetch_reviews: {reviews.message if reviews else 'ok'}")
    print(f"  route_reviews chose {result['route_reviews'].output!r}")
    print(f"  build_page: {result['build_page'].output}")
    print(
        f"  charge_card failed, so ship_order and email_tracking_number were skipped: "
        f"{result['email_tracking_number'].reason}"
    )


if __name__ == "__main__":
    main()
