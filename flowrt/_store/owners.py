"""Owner ids, and whether the process an owner id names is still alive.

An owner id is ``host:pid:start:space:random``: the host name, the process id, the process's
start time (clock ticks since boot, from ``/proc``), a short hash of the kernel's boot id and the
process's pid namespace (``space``: two containers with one host name, or one host before and
after a reboot, are different places), and a random part (one per run execution).

A run owned by a process of this place (same host, same ``space``) whose process is gone (no
such pid, a zombie, or a pid reused by a process that started at another time) was interrupted,
whatever its lease says. Anything else — another host, an old owner id, a system without
``/proc`` — is unknown here, and the lease decides. A stopped process (SIGSTOP) is alive.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Sequence
from functools import cache

_HOST = socket.gethostname()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (field 3, the state, comes first), or None
    when there is no such process."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None: no such process, or a
    zombie (it has exited and waits for its parent to reap it)."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of stat: starttime


@cache
def _space() -> str:
    """This place: the boot and the pid namespace, hashed short ("" without ``/proc``)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    if boot is None or namespace is None:
        return ""
    return hashlib.sha1(f"{boot.strip()}|{namespace}".encode()).hexdigest()[:8]


def owner_id() -> str:
    """A new owner id for this process (one per run execution, or per worker claim)."""
    pid = os.getpid()
    start = process_start(pid) or ""
    return f"{_HOST}:{pid}:{start}:{_space()}:{uuid.uuid4().hex[:8]}"


def local_prefix() -> str:
    """What every owner id of this host starts with (for a query's ``LIKE``)."""
    return f"{_HOST}:"


def owner_died(owner: str | None) -> bool:
    """Whether ``owner`` names a process of this place that no longer runs. False when it
    cannot be known here (another host, an owner id of an older flowrt, no ``/proc``)."""
    if owner is None:
        return False
    parts = owner.split(":")
    if len(parts) != 5 or parts[0] != _HOST or not parts[2] or parts[3] != _space():
        return False
    if not parts[3] or not parts[1].isdigit():
        return False
    return process_start(int(parts[1])) != parts[2]


def describe(owner: str | None) -> str:
    """An owner id as a person reads it: ``host pid 123``."""
    if owner is None:
        return "nobody"
    parts = owner.split(":")
    return f"{parts[0]} pid {parts[1]}" if len(parts) >= 2 else owner


__all__: Sequence[str] = ["describe", "local_prefix", "owner_died", "owner_id", "process_start"]
