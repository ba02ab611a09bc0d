"""Every example runs and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_covered() -> None:
    covered = {
        "demo.py",
        "fallback_choice.py",
        "error_aware_prompt.py",
        "error_to_output.py",
        "map_orders.py",
        "agent_loop.py",
        "fastapi_app.py",
        "ray_primes.py",
        "approval.py",
        "onboarding.py",
        "limits.py",
    }
    assert {path.name for path in EXAMPLES.glob("*.py")} <= covered


def test_demo_shows_retries_timeout_fallback_and_skip_cascade() -> None:
    out = run_example("demo.py")
    assert "fetch_price attempt 1: ConnectionError, retrying in 0.05s" in out
    assert "fetch_price attempt 3: success" in out
    assert "TimeoutError: node 'fetch_reviews' attempt 1 of 1 timed out after 0.2s" in out
    assert "route_reviews chose 'cached'" in out
    assert "'ship_order' was skipped ('charge_card' failed)" in out
    assert "run failure" in out
    assert "PermissionError: card declined" in out


@pytest.mark.parametrize(
    ("args", "expected"), [((), "'route': 'primary'"), (("--primary-down",), "'route': 'backup'")]
)
def test_fallback_choice(args: tuple[str, ...], expected: str) -> None:
    assert expected in run_example("fallback_choice.py", *args)


def test_error_aware_prompt() -> None:
    out = run_example("error_aware_prompt.py")
    assert "Summarize: the text of https://example.org/a" in out
    assert "could not reach https://unreachable.invalid/b" in out


def test_error_to_output() -> None:
    out = run_example("error_to_output.py").splitlines()
    assert '"error_type": "LookupError"' in out[1]
    assert '"error": "none"' in out[0]


def test_map_orders_keeps_going_past_declined_cards() -> None:
    out = run_example("map_orders.py")
    assert "charged 495 of 500 orders" in out
    assert out.count("declined: card declined") == 5


@pytest.mark.parametrize(
    ("needed", "expected"), [("3", "answer from 3 notes"), ("9", "best effort after 5 notes")]
)
def test_agent_loop(needed: str, expected: str) -> None:
    assert expected in run_example("agent_loop.py", needed)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_fastapi_app_runs_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    monkeypatch.syspath_prepend(str(EXAMPLES))
    from fastapi_app import app

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ok = await client.post(
                "/webhooks/order/run", json={"order_id": 7, "amount": 12.5, "email": "a@b.com"}
            )
            bounced = await client.post(
                "/webhooks/order/run", json={"order_id": 8, "amount": 1, "email": "x@y.invalid"}
            )
            bad = await client.post(
                "/webhooks/order/run", json={"order_id": 9, "amount": -1, "email": "a@b.com"}
            )
    assert (ok.status_code, ok.json()["output"]) == (200, {"receipt": "receipt sent to a@b.com"})
    assert (bounced.status_code, bounced.json()["output"]) == (200, {"receipt": "not sent"})
    assert bad.status_code == 500
    assert bad.json()["error"]["type"] == "ValueError"


@pytest.mark.timeout(180)  # a fresh process starts Ray: seconds, many on a loaded machine
def test_ray_primes_counts_the_same_in_threads_and_on_ray() -> None:
    pytest.importorskip("ray")
    out = run_example("ray_primes.py", "4", "20000")
    assert "4 items, primes below 20,000: 2,262 each" in out
    assert "threads: " in out
    assert "ray: " in out


def test_approval_story_approves_rejects_and_times_out() -> None:
    out = run_example("approval.py", env={"APPROVAL_TIMEOUT": "0.5"})
    assert "order 1: refunded 30 for order 1 (approved by ana)" in out
    assert "order 2: no refund: rejected" in out
    assert "order 3: no refund: nobody approved in time" in out


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_approval_app_waits_for_a_signal_posted_over_http(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import httpx
    from conftest import until

    monkeypatch.setenv("FLOWRT_STORE", str(tmp_path / "approval.db"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("approval", None)
    from approval import app

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = await client.post("/refunds/runs", json={"order_id": 7, "amount": 30})
            run_id = started.json()["run_id"]

            async def state() -> dict[str, Any]:
                answer: dict[str, Any] = (await client.get(f"/refunds/runs/{run_id}")).json()
                return answer

            await until(lambda: _waits(state), what="the run waits for approval")
            body = {"approved": True, "by": "ana"}
            key = {"Idempotency-Key": "ticket-991"}
            sent = await client.post(
                f"/refunds/runs/{run_id}/signals/approval", json=body, headers=key
            )
            await until(lambda: _ended(state), what="the run ended")
            final = await state()
    sys.modules.pop("approval", None)
    assert sent.status_code == 202
    assert final["result"]["output"] == {"outcome": "refunded 30.0 for order 7 (approved by ana)"}


async def _waits(state: Any) -> bool:
    return [w["signal"] for w in (await state())["waiting"]] == ["approval"]


async def _ended(state: Any) -> bool:
    return (await state())["status"] == "success"


def test_onboarding_runs_a_child_and_a_map_of_children_in_one_worker_slot() -> None:
    out = run_example("onboarding.py")
    assert "company: {'screen_sanctions': 'clear'}" in out
    assert "director: failure child run 'acme:directors[1]' failed: no identity record" in out
    assert out.count("director: success") == 2
    assert (
        "child runs: acme:company, acme:directors[0], acme:directors[1], acme:directors[2]" in out
    )


def test_limits_runs_one_sync_per_customer_within_the_llm_budget() -> None:
    out = run_example("limits.py")
    assert "40 syncs queued; the newest waits for key 'sync-customer:$.input.customer_id=5'" in out
    assert "40 syncs done; at most 1 sync of one customer at once" in out
    most = int(out.split("at most ")[2].split(" in any second")[0])
    assert most <= 22
