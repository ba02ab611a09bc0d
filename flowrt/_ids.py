"""Run ids: uuid4-shaped hex strings from a private random source, without ``uuid.uuid4()``'s
system call per id. The source is seeded from ``os.urandom`` and seeded again in a forked child
(two processes never share its state), and nothing else draws from it (``random.seed`` in the
application does not touch it)."""

from __future__ import annotations

import os
import random

_source = random.Random()
os.register_at_fork(after_in_child=_source.seed)

_VERSION_MASK, _VERSION_4 = 0xF000 << 64, 0x4000 << 64
_VARIANT_MASK, _VARIANT_RFC = 0xC000 << 48, 0x8000 << 48
_KEEP = ~_VERSION_MASK & ~_VARIANT_MASK  # the random bits a uuid4 keeps
_SET = _VERSION_4 | _VARIANT_RFC  # its version and variant


def new_id() -> str:
    """A random 32-digit hex id, a valid uuid4 (``uuid.UUID(new_id()).version == 4``)."""
    return (_source.getrandbits(128) & _KEEP | _SET).to_bytes(16, "big").hex()
