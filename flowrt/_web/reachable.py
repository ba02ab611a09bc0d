"""The HTTP answer when the run store cannot be reached: 503 with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException

from .._errors import FlowError
from .._store.mask import masked


@contextmanager
def reachable() -> Iterator[None]:
    """Answer 503, with the reason, when the store cannot be reached.

    Raises:
        HTTPException: 503.
    """
    try:
        yield
    except (HTTPException, FlowError):
        raise
    except Exception as exc:  # psycopg's or sqlite3's: the store is down
        why = masked(f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise HTTPException(503, f"the run store cannot be reached ({why})") from None
