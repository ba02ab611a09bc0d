"""``POST /run`` past FastAPI's request machinery on its plain path: flowrt's speed trick for
the route (its equivalence test: tests/test_plain_route.py).

FastAPI's handler costs about 30 µs a request around the endpoint (its dependencies solved, the
body read and validated, its telemetry): a third of a hand-written ten-await endpoint's whole
request, as much as the run itself. ``plain_route(model)`` is the APIRoute class of ``POST
/run``: for a body sent as ``application/json`` that parses and that the input ``model``
accepts, its handler does what FastAPI's does on that path and nothing else:
``request.json()``, the model's validation (python mode, from attributes, as FastAPI
validates a body), the endpoint called with the request and the model, its ``Response``
returned as it is.

Every other request goes to FastAPI's own handler for the route, built as ever, so the answer
is FastAPI's: another content type, an empty body, invalid JSON or a body the model refuses
(400, 422...), a body that could not be read (FastAPI meets the same error). So does every
request of a route that has dependencies (the router's, ``include_router``'s or the app's:
FastAPI must solve them), one FastAPI's telemetry follows, and every request on a FastAPI
version this was not checked against (0.115 to 0.165; included routes are copied up to 0.136
and have an effective context from 0.137).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import fastapi
import fastapi.routing
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
CHECKED = ((0, 115), (0, 165))
"""The FastAPI versions (major, minor) the plain path was checked against, first and last."""


def plain_route(model: type[BaseModel]) -> type[APIRoute]:
    """The APIRoute class of a ``POST /run`` whose endpoint takes ``request`` and ``body``
    (validated by ``model``)."""
    return type("PlainRunRoute", (_PlainRoute,), {"model": model})


class _PlainRoute(APIRoute):
    model: type[BaseModel]

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        if not plain_path(self):
            return standard
        endpoint, model = self.endpoint, self.model
        telemetry = getattr(fastapi.routing, "get_telemetry_data", None)

        async def handler(request: Request) -> Response:
            if request.headers.get("content-type") != "application/json" or (
                telemetry is not None and telemetry() is not None
            ):
                return await standard(request)
            try:
                body = await request.body()
            except Exception as exc:  # FastAPI's handler meets the same error, and answers it
                return await standard(_Unreadable(request, exc))
            valid = await _valid(request, model) if body else None
            if valid is None:
                return await standard(request)
            response: Response = await endpoint(request=request, body=valid)
            return response

        return handler


def plain_path(route: APIRoute) -> bool:
    """Whether ``route``'s handler may take the plain path: a checked FastAPI version, and no
    dependency to solve (the route's own, or an including router's or app's)."""
    version = tuple(int(part) for part in fastapi.__version__.split(".")[:2])
    if not CHECKED[0] <= version <= CHECKED[1]:
        return False
    dependant: Any = route.dependant
    effective = getattr(fastapi.routing, "_effective_route_context_var", None)
    if effective is not None:  # 0.137+: an included route's handler is built in its context
        context = effective.get()
        if context is not None and getattr(context, "original_route", None) is route:
            dependant = getattr(context, "dependant", None)
    return dependant is not None and not dependant.dependencies


async def _valid(request: Request, model: type[BaseModel]) -> BaseModel | None:
    """The body read as FastAPI reads it (``request.json()``) and validated as FastAPI
    validates a body (python mode, from attributes); None where either fails: FastAPI's
    handler then meets the same failure, and answers it."""
    try:
        return model.model_validate(await request.json(), from_attributes=True)
    except Exception:  # invalid JSON, a ValidationError, or a validator's own error
        return None


class _Unreadable(Request):
    """The request for FastAPI's handler when reading its body raised ``error``: reading it
    raises the same (the stream is consumed; FastAPI answers the error as it would have)."""

    def __init__(self, request: Request, error: Exception) -> None:
        super().__init__(request.scope, request.receive)
        self._error = error

    async def body(self) -> bytes:
        raise self._error
