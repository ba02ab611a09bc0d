"""Shared fixtures: every async test runs on asyncio and trio; timing tests opt into trio's
MockClock (``mock_clock`` marker-free: they override ``anyio_backend``)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
