"""FastAPI load: 500 concurrent POST /run of a 10-node workflow against a real uvicorn server on
loopback, beside a bare FastAPI handler in the same server awaiting the same ten coroutines.
Reports p50/p99 latency and throughput for both, and their ratio."""

from __future__ import annotations

import asyncio
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
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return status

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
    try:
        for path in SIDES.values():  # warm-up
            await burst(connections, path)
        samples: dict[str, tuple[list[float], list[float]]] = {side: ([], []) for side in SIDES}
        for _ in range(rounds):  # alternate, so drift hits every side alike
            for side, path in SIDES.items():
                latencies, wall = await burst(connections, path)
                samples[side][0].extend(latencies)
                samples[side][1].append(wall)
    finally:
        for connection in connections:
            connection.close()
    return {side: figures(lat, walls, requests) for side, (lat, walls) in samples.items()}


def run(
    requests: int = 500, rounds: int = 9, http: str = "httptools", loop: str = "uvloop"
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
        # each round's throughput against bare's in the same round: the ratios' spread
        "throughput_spread": {side: _spread(result, side) for side in ("flowrt", "flowrt-output")},
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"S7 {record['title']} ({record['server']}, on loopback)")
    print(f"  {'':14} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for side in SIDES:
        fig = record[side]
        print(f"  {side:14} {fig['p50_ms']:8.1f} {fig['p99_ms']:8.1f} {fig['throughput_rps']:8.0f}")
    for side in ("flowrt", "flowrt-output"):
        p50 = record[side]["p50_ms"] / record["bare"]["p50_ms"]
        speed = record[side]["throughput_rps"] / record["bare"]["throughput_rps"]
        low, high = record["throughput_spread"][side]
        print(f"  {side} / bare: p50 {p50:.2f}x, throughput {speed:.2f}x ({low:.2f}-{high:.2f})")
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
