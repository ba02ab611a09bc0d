"""Passwords never appear in messages: a connection URL's password (``postgresql://user:secret@``)
and a key-value one (``password=secret``) are shown as ``***``."""

from __future__ import annotations

import re
from collections.abc import Sequence

_URL = re.compile(r"(\w+://[^:/@\s]*:)([^@\s]*)(@)")
_KEYWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def masked(text: str) -> str:
    """``text`` with every password in it replaced by ``***``."""
    return _KEYWORD.sub(r"\1***", _URL.sub(r"\1***\3", text))


__all__: Sequence[str] = ["masked"]
