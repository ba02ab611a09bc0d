"""``POST /run``'s plain path (``flowrt._web.plain_route``) against FastAPI's own handler for
the same route: the same answers for every body (hypothesis), FastAPI's handler for everything
but a valid JSON body, and never past a dependency (the router's, ``include_router``'s or the
app's) or on a FastAPI version it was not checked against."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import fastapi
import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrt import Workflow
from flowrt._web import plain_route
from flowrt.fastapi import workflow_router


def priced() -> Workflow:
    wf = Workflow("priced")

    @wf.node
    async def price(sku: str, quantity: int = 1, note: str | None = None) -> dict[str, Any]:
        if quantity < 0:
            raise ValueError("negative quantity")
        return {"sku": sku, "total": quantity * 3, "note": note}

    @wf.node(inputs={"line": "$.price.output"})
    async def label(line: dict[str, Any]) -> str:
        return f"{line['sku']} x{line['total']}"

    return wf


@contextmanager
def solved() -> Iterator[list[str]]:
    """Count the requests FastAPI's own handler takes (it solves their dependencies)."""
    calls: list[str] = []
    real = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["request"].url.path)
        return await real(*args, **kwargs)

    fastapi.routing.solve_dependencies = counting  # type: ignore[assignment]
    try:
        yield calls
    finally:
        fastapi.routing.solve_dependencies = real


def app_for(router: APIRouter, **include: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(router, **include)
    return app


def post(app: FastAPI, path: str = "/run", **request: Any) -> httpx.Response:
    """One request to ``app`` (in its lifespan), through httpx's ASGI transport."""

    async def one() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.post(path, **request)

    return anyio.run(one)


@pytest.fixture(scope="module")
def both() -> tuple[FastAPI, FastAPI]:
    """The same workflow's router with the plain path, and with FastAPI's handler only."""
    wf = priced()
    plain = app_for(workflow_router(wf, response="output"))
    real = plain_route.plain_path
    plain_route.plain_path = lambda route: False  # type: ignore[assignment]
    try:
        standard = app_for(workflow_router(wf, response="output"))
    finally:
        plain_route.plain_path = real
    return plain, standard


def answer(response: httpx.Response) -> tuple[int, Any]:
    """A response's status and JSON (its run id left out: each run has its own)."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code, response.text
    if isinstance(body, dict):
        body.pop("run_id", None)
    return response.status_code, body


json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
orders = st.fixed_dictionaries(
    {"sku": st.text(max_size=6) | st.integers()},
    optional={
        "quantity": st.integers(-3, 5) | st.text(max_size=3) | st.none(),
        "note": st.text(max_size=4) | st.integers(),
        "extra": json_bodies,
    },
)
raw_bodies = st.one_of(
    orders.map(lambda order: json.dumps(order).encode()),
    json_bodies.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=12),
    st.just(b""),
    st.just(b'{"sku": "a", '),
    st.just(b'{"sku": "\xff"}'),
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "application/x+json"]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=raw_bodies, content_type=content_types | st.none())
def test_every_body_gets_the_answer_fastapis_handler_gives(
    both: tuple[FastAPI, FastAPI], body: bytes, content_type: str | None
) -> None:
    plain, standard = both
    headers = {} if content_type is None else {"content-type": content_type}
    with solved() as calls:
        got = post(plain, content=body, headers=headers)
    expected = post(standard, content=body, headers=headers)
    assert answer(got) == answer(expected)
    if got.status_code in (200, 500) and content_type == "application/json":
        assert calls == []  # the plain path answered it: FastAPI's handler was not asked


def test_a_valid_body_takes_the_plain_path_and_a_bad_one_fastapis() -> None:
    app = app_for(workflow_router(priced()))
    with solved() as calls:
        ok = post(app, json={"sku": "a", "quantity": 2})
        assert ok.status_code == 200
        assert ok.json()["output"] == {"label": "a x6"}
        assert calls == []
        bad = post(app, json={"quantity": "many"})
        assert bad.status_code == 422
        assert {tuple(error["loc"]) for error in bad.json()["detail"]} == {
            ("body", "sku"),
            ("body", "quantity"),
        }
        assert calls == ["/run"]


def deny() -> None:
    raise HTTPException(401, "who are you?")


@pytest.mark.parametrize(
    "build",
    [
        lambda wf: (app_for(workflow_router(wf), dependencies=[Depends(deny)]), "/run"),
        lambda wf: (app_for(workflow_router(wf, dependencies=[Depends(deny)])), "/run"),
        lambda wf: (_in_app(FastAPI(dependencies=[Depends(deny)]), workflow_router(wf)), "/run"),
        lambda wf: (_nested(workflow_router(wf)), "/outer/inner/run"),
    ],
    ids=["include_router", "router", "app", "nested"],
)
def test_a_dependency_is_never_passed_by(
    build: Callable[[Workflow], tuple[FastAPI, str]],
) -> None:
    ran: list[int] = []
    wf = priced()
    wf.add_listener(lambda event: ran.append(1))
    app, path = build(wf)
    response = post(app, path, json={"sku": "a"})
    assert (response.status_code, response.json()) == (401, {"detail": "who are you?"})
    assert ran == []  # the run never started


def _in_app(app: FastAPI, router: APIRouter) -> FastAPI:
    app.include_router(router)
    return app


def _nested(router: APIRouter) -> FastAPI:
    outer = APIRouter()
    outer.include_router(router, prefix="/inner")
    app = FastAPI()
    app.include_router(outer, prefix="/outer", dependencies=[Depends(deny)])
    return app


def test_a_fastapi_version_it_was_not_checked_against_gets_fastapis_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastapi, "__version__", "0.166.0")
    app = app_for(workflow_router(priced()))
    with solved() as calls:
        assert post(app, json={"sku": "a"}).status_code == 200
    assert calls == ["/run"]


def test_a_body_that_cannot_be_read_gets_fastapis_answer(
    both: tuple[FastAPI, FastAPI],
) -> None:
    """The client goes away while its body is read: FastAPI's handler meets the same error
    (the plain path read it first) and answers as it does without the plain path."""
    answers = []
    for app in both:
        messages = [{"type": "http.disconnect"}]
        sent: list[dict[str, Any]] = []

        async def receive(messages: list[Any] = messages) -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any], sent: list[Any] = sent) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/run",
            "raw_path": b"/run",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"9")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        anyio.run(app, scope, receive, send)  # type: ignore[arg-type]
        starts = [message["status"] for message in sent if message["type"] == "http.response.start"]
        answers.append(starts)
    assert answers[0] == answers[1]
