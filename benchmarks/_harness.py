"""Timing and memory for a flowrt case beside its plain-asyncio baseline, in one process."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
Case = Callable[[], Awaitable[Any]]


@dataclass
class Figures:
    """One side's figures: median wall time and peak traced memory."""

    median_s: float
    runs_s: list[float]
    peak_bytes: int


async def _time(case: Case) -> float:
    gc.collect()
    start = time.perf_counter()
    await case()
    return time.perf_counter() - start


async def _peak(case: Case) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        await case()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def _compare(
    flowrt: Case, baseline: Case, repeats: int, warmup: int
) -> tuple[Figures, Figures]:
    for _ in range(warmup):
        await flowrt()
        await baseline()
    times: dict[str, list[float]] = {"flowrt": [], "baseline": []}
    for _ in range(repeats):  # alternate, so drift in the machine hits both sides alike
        times["flowrt"].append(await _time(flowrt))
        times["baseline"].append(await _time(baseline))
    peaks = (await _peak(flowrt), await _peak(baseline))
    return (
        Figures(statistics.median(times["flowrt"]), times["flowrt"], peaks[0]),
        Figures(statistics.median(times["baseline"]), times["baseline"], peaks[1]),
    )


def compare(
    shape: str,
    title: str,
    n: int,
    flowrt: Case,
    baseline: Case,
    *,
    repeats: int = 5,
    warmup: int = 1,
    against: str = "asyncio",
) -> dict[str, Any]:
    """Run both sides (warm-up, then alternating), print one table, write a JSON record."""
    ours, base = asyncio.run(_compare(flowrt, baseline, repeats, warmup))
    record = {
        "shape": shape,
        "title": title,
        "against": against,
        "n": n,
        "flowrt": {"median_s": ours.median_s, "runs_s": ours.runs_s, "peak_bytes": ours.peak_bytes},
        "baseline": {
            "median_s": base.median_s,
            "runs_s": base.runs_s,
            "peak_bytes": base.peak_bytes,
        },
        "ratio": ours.median_s / base.median_s,
        "per_node_us": {"flowrt": ours.median_s / n * 1e6, "baseline": base.median_s / n * 1e6},
        "extra_bytes_per_node": (ours.peak_bytes - base.peak_bytes) / n,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(render(record))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{shape}-{n}.json").write_text(json.dumps(record, indent=2))
    return record


def render(record: dict[str, Any]) -> str:
    """The table for one record."""
    lines = [f"{record['shape']} {record['title']} (n = {record['n']:,})"]
    lines.append(
        f"  {'':10} {'median ms':>10} {'per node µs':>12} {'peak KiB':>10} {'KiB/node':>9}"
    )
    for side in ("flowrt", "baseline"):
        fig = record[side]
        label = side if side == "flowrt" else record.get("against", side)
        lines.append(
            f"  {label:10} {fig['median_s'] * 1000:10.1f} {record['per_node_us'][side]:12.2f} "
            f"{fig['peak_bytes'] / 1024:10.0f} {fig['peak_bytes'] / 1024 / record['n']:9.2f}"
        )
    lines.append(
        f"  flowrt / {record.get('against', 'baseline')} = {record['ratio']:.2f}x; "
        f"memory above baseline {record['extra_bytes_per_node'] / 1024:.2f} KiB/node"
    )
    return "\n".join(lines)
