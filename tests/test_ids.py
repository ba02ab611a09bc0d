"""Run ids: uuid4-shaped, unique, and never shared by a forked child or an application's seed."""

from __future__ import annotations

import os
import random
import uuid

from flowrt import Workflow
from flowrt._ids import new_id


def test_ids_are_valid_uuid4_hex_and_unique() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:1000]:
        parsed = uuid.UUID(text)
        assert parsed.hex == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave at once
        os.write(write, " ".join(new_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split())
    os.close(read)
    parent = {new_id() for _ in range(5)}
    assert len(child) == 5
    assert not child & parent


def test_seeding_the_global_random_does_not_repeat_run_ids() -> None:
    wf = Workflow("ids")
    wf.node(lambda: 1, name="a")
    random.seed(7)
    first = wf.run_sync().run_id
    random.seed(7)
    assert wf.run_sync().run_id != first
