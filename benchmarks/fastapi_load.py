"""FastAPI load: 500 concurrent POST /run of a 10-node workflow against a real uvicorn server on
loopback, beside a bare FastAPI handler in the same server awaiting the same ten coroutines.
Reports p50/p99 latency and throughput for both, and their ratio; and the server's own CPU time
per request for each (read from the server around each burst: the client shares the machine's
cores, so its walls are noisier), with the garbage collector's share."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks._harness import save

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection: the load client (httpx's pool slows down with hundreds
    of connections, which would measure the client instead of the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes) -> int:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return (await self._answer())[0]

    async def get(self, path: str) -> Any:
        """GET ``path``: its JSON."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode())
        return json.loads((await self._answer())[1])

    async def _answer(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def burst(connections: list[Connection], path: str) -> tuple[list[float], float]:
    """One request on every connection at once; their latencies and the wall time of the burst."""
    latencies: list[float] = []

    async def one(i: int, connection: Connection) -> None:
        start = time.perf_counter()
        status = await connection.post(path, f'{{"x": {i}}}'.encode())
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for i, connection in enumerate(connections):
            tg.create_task(one(i, connection))
    return latencies, time.perf_counter() - start


def figures(latencies: list[float], walls: list[float], requests: int) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "walls_s": walls,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "throughput_rps": requests / statistics.median(walls),
    }


# flowrt answering the whole RunResult, flowrt answering run id, status, output and error
# (workflow_router(wf, response="output")), and the bare handler.
SIDES = {"flowrt": "/flowrt/run", "flowrt-output": "/flowrt-output/run", "bare": "/bare/run"}


async def measure(port: int, requests: int, rounds: int) -> dict[str, dict[str, Any]]:
    connections = [await Connection.open(port) for _ in range(requests)]
    probe = await Connection.open(port)  # reads the server's CPU time around each burst
    try:
        for path in SIDES.values():  # warm-up
            await burst(connections, path)
        samples: dict[str, Samples] = {side: Samples() for side in SIDES}
        for _ in range(rounds):  # alternate, so drift hits every side alike
            for side, path in SIDES.items():
                before = await probe.get("/cpu")
                latencies, wall = await burst(connections, path)
                after = await probe.get("/cpu")
                samples[side].add(latencies, wall, before, after, requests)
    finally:
        for connection in (*connections, probe):
            connection.close()
    return {side: s.figures(requests) for side, s in samples.items()}


class Samples:
    """One side's samples: latencies, each burst's wall, and the server's CPU microseconds per
    request in each burst (without the collector's) and in the collector."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.walls: list[float] = []
        self.cpu: list[float] = []
        self.gc: list[float] = []

    def add(
        self, latencies: list[float], wall: float, before: Any, after: Any, requests: int
    ) -> None:
        self.latencies.extend(latencies)
        self.walls.append(wall)
        collected = (after[1] - before[1]) / requests * 1e6
        self.gc.append(collected)
        self.cpu.append((after[0] - before[0]) / requests * 1e6 - collected)

    def figures(self, requests: int) -> dict[str, Any]:
        # The collector's time falls on whichever burst crosses its threshold: its mean per
        # request is the side's share; the rest of the CPU time is steadier (its median).
        return {
            **figures(self.latencies, self.walls, requests),
            "cpu_us": statistics.median(self.cpu),
            "gc_us": statistics.mean(self.gc),
            "server_us": statistics.median(self.cpu) + statistics.mean(self.gc),
        }


def run(
    requests: int = 500, rounds: int = 21, http: str = "httptools", loop: str = "uvloop"
) -> dict[str, Any]:
    """Serve the app with uvicorn (one worker; its ``http`` parser and event ``loop``) and
    measure every side."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks._fastapi_app:app",
        "--port",
        str(port),
        "--http",
        http,
        "--loop",
        loop,
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = subprocess.Popen(command, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        result = asyncio.run(measure(port, requests, rounds))
    finally:
        server.terminate()
        server.wait(timeout=10)
    record = {
        "shape": "S7",
        "title": f"FastAPI, {requests} concurrent POST /run of a 10-node workflow",
        "server": f"uvicorn, 1 worker, --http {http}, --loop {loop}",
        "n": requests,
        **result,
        "p50_ratio": result["flowrt"]["p50_ms"] / result["bare"]["p50_ms"],
        "throughput_ratio": result["bare"]["throughput_rps"] / result["flowrt"]["throughput_rps"],
        "output_throughput_ratio": (
            result["flowrt-output"]["throughput_rps"] / result["bare"]["throughput_rps"]
        ),
        # the server's CPU time per request, bare's over each side's: what it could serve
        "server_ratio": {
            side: result["bare"]["server_us"] / result[side]["server_us"]
            for side in ("flowrt", "flowrt-output")
        },
        # each round's throughput against bare's in the same round: the ratios' spread
        "throughput_spread": {side: _spread(result, side) for side in ("flowrt", "flowrt-output")},
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"S7 {record['title']} ({record['server']}, on loopback)")
    print(f"  {'':14} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'server µs':>10} {'GC µs':>6}")
    for side in SIDES:
        fig = record[side]
        print(
            f"  {side:14} {fig['p50_ms']:8.1f} {fig['p99_ms']:8.1f} {fig['throughput_rps']:8.0f}"
            f" {fig['server_us']:10.1f} {fig['gc_us']:6.1f}"
        )
    for side in ("flowrt", "flowrt-output"):
        p50 = record[side]["p50_ms"] / record["bare"]["p50_ms"]
        speed = record[side]["throughput_rps"] / record["bare"]["throughput_rps"]
        low, high = record["throughput_spread"][side]
        cpu = record["server_ratio"][side]
        print(
            f"  {side} / bare: p50 {p50:.2f}x, throughput {speed:.2f}x ({low:.2f}-{high:.2f}),"
            f" server CPU {cpu:.2f}x"
        )
    save(f"S7-{requests}-{http}-{loop}", record)
    return record


def _spread(result: dict[str, Any], side: str) -> list[float]:
    """The lowest and highest of the rounds' throughput ratios (``side`` over bare)."""
    pairs = zip(result["bare"]["walls_s"], result[side]["walls_s"], strict=True)
    ratios = [bare / ours for bare, ours in pairs]
    return [min(ratios), max(ratios)]


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    run(size, http=sys.argv[2] if len(sys.argv) > 2 else "httptools")
