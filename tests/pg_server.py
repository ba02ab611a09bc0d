"""A throwaway PostgreSQL server for the tests, started from the server binaries on PATH
(``initdb``, ``pg_ctl``: PostgreSQL 15 on these machines), or ``FLOWRT_TEST_POSTGRES_DSN``
when set. As root (initdb refuses to run as root) the server runs as the ``postgres`` user.
Without a server the PostgreSQL tests skip, except on CI (``CI=true``), where that fails."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix and ids to run the server's binaries with."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):  # Debian's server package makes "postgres"
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], user.pw_uid, user.pw_gid
    _missing("running as root, and no postgres or nobody user to run the server as")
    raise AssertionError("unreachable")


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is needed on CI: {reason}")
    pytest.skip(reason)


class Server:
    """A PostgreSQL server of the tests' own, in ``root`` (its data, socket and log), that a
    test may stop and start again (the same port and data)."""

    def __init__(self, root: Path, port: int, prefix: list[str]) -> None:
        self.root, self.port, self.prefix = root, port, prefix
        self.dsn = f"postgresql://flowrt@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*self.prefix, "pg_ctl", "-D", str(self.root / "data"), "-o", options, "-l",
             str(self.root / "log"), "-w", "start"],
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            [*self.prefix, "pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop"],
            capture_output=True,
        )


@contextmanager
def own_server() -> Iterator[Server]:
    """A server of the tests' own, started (stopped and deleted afterwards)."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        _missing("initdb and pg_ctl are not on PATH (install PostgreSQL's server package)")
    prefix, uid, gid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="flowrt-pg-"))
    if uid is not None:
        os.chown(root, uid, gid or -1)
    server = Server(root, _free_port(), prefix)
    try:
        subprocess.run(
            [*prefix, "initdb", "-D", str(root / "data"), "-U", "flowrt", "--auth=trust", "-E",
             "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the DSN of a running PostgreSQL server (stopped and deleted afterwards)."""
    dsn = os.environ.get("FLOWRT_TEST_POSTGRES_DSN")
    if dsn:
        yield dsn
        return
    with own_server() as server:
        yield server.dsn


def fresh_database(dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``dsn`` (dropped first if it exists); its DSN."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        db.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return dsn.rsplit("/", 1)[0] + f"/{name}"
