"""The command line's own error."""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments or a bad file: exit 2 with this one-line message."""
