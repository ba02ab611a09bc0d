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
    """One side's figures: median wall time, peak traced memory, and the garbage collector's
    share: full (generation 2) collections per run and the median pause time per run."""

    median_s: float
    runs_s: list[float]
    peak_bytes: int
    full_gcs: int
    gc_s: float


class _Collections:
    """Counts full collections and sums every collection's pause while it is installed."""

    def __init__(self) -> None:
        self.full = 0
        self.paused = 0.0
        self._since = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
            return
        self.paused += time.perf_counter() - self._since
        self.full += info["generation"] == 2


async def _time(case: Case) -> tuple[float, _Collections]:
    gc.collect()  # every run starts from the same collector state
    collections = _Collections()
    gc.callbacks.append(collections)
    try:
        start = time.perf_counter()
        await case()
        return time.perf_counter() - start, collections
    finally:
        gc.callbacks.remove(collections)


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
    runs: dict[str, list[tuple[float, _Collections]]] = {"flowrt": [], "baseline": []}
    for _ in range(repeats):  # alternate, so drift in the machine hits both sides alike
        runs["flowrt"].append(await _time(flowrt))
        runs["baseline"].append(await _time(baseline))
    peaks = {"flowrt": await _peak(flowrt), "baseline": await _peak(baseline)}
    figures = []
    for side in ("flowrt", "baseline"):
        times = [elapsed for elapsed, _ in runs[side]]
        figures.append(
            Figures(
                statistics.median(times),
                times,
                peaks[side],
                int(statistics.median(c.full for _, c in runs[side])),
                statistics.median(c.paused for _, c in runs[side]),
            )
        )
    return figures[0], figures[1]


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
    loop = os.environ.get("FLOWRT_BENCH_LOOP", "asyncio")
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        ours, base = runner.run(_compare(flowrt, baseline, repeats, warmup))
    if loop != "asyncio":
        against = f"{against} on {loop}"
    record = {
        "shape": shape,
        "title": title,
        "against": against,
        "loop": loop,
        "n": n,
        "flowrt": _side(ours),
        "baseline": _side(base),
        "ratio": ours.median_s / base.median_s,
        # each round's ratio (the two sides ran one after the other): the spread of the ratio
        "ratio_spread": _spread(ours.runs_s, base.runs_s),
        "per_node_us": {"flowrt": ours.median_s / n * 1e6, "baseline": base.median_s / n * 1e6},
        "extra_bytes_per_node": (ours.peak_bytes - base.peak_bytes) / n,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(render(record))
    suffix = "" if loop == "asyncio" else f"-{loop}"
    save(f"{shape}-{n}{suffix}", record)
    return record


def _spread(ours: list[float], base: list[float]) -> list[float]:
    """The lowest and the highest of the rounds' ratios."""
    ratios = [a / b for a, b in zip(ours, base, strict=True)]
    return [min(ratios), max(ratios)]


def save(name: str, record: dict[str, Any]) -> None:
    """Write ``record`` to ``RESULTS/<name><suffix>.json`` (``RESULTS`` read now: tests move
    it; the suffix, ``FLOWRT_BENCH_SUFFIX``, names another Python's results: ``-py3.12``)."""
    RESULTS.mkdir(exist_ok=True)
    suffix = os.environ.get("FLOWRT_BENCH_SUFFIX", "")
    (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(record, indent=2))


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Both sides run on the loop ``FLOWRT_BENCH_LOOP`` names: ``asyncio`` (the default) or
    ``uvloop`` (``pip install flowrt[uvloop]``)."""
    if loop == "asyncio":
        return None
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise SystemExit(f"FLOWRT_BENCH_LOOP: unknown loop {loop!r} (asyncio or uvloop)")


def _side(figures: Figures) -> dict[str, Any]:
    return {
        "median_s": figures.median_s,
        "runs_s": figures.runs_s,
        "peak_bytes": figures.peak_bytes,
        "full_gcs": figures.full_gcs,
        "gc_s": figures.gc_s,
    }


def render(record: dict[str, Any]) -> str:
    """The table for one record."""
    lines = [f"{record['shape']} {record['title']} (n = {record['n']:,})"]
    lines.append(
        f"  {'':18} {'median ms':>10} {'per node µs':>12} {'peak KiB':>10} {'KiB/node':>9} "
        f"{'GC ms':>7} {'full GCs':>9}"
    )
    for side in ("flowrt", "baseline"):
        fig = record[side]
        label = side if side == "flowrt" else record.get("against", side)
        lines.append(
            f"  {label:18} {fig['median_s'] * 1000:10.1f} {record['per_node_us'][side]:12.2f} "
            f"{fig['peak_bytes'] / 1024:10.0f} {fig['peak_bytes'] / 1024 / record['n']:9.2f} "
            f"{fig['gc_s'] * 1000:7.1f} {fig['full_gcs']:9d}"
        )
    lines.append(
        f"  flowrt / {record.get('against', 'baseline')} = {record['ratio']:.2f}x "
        f"({record['ratio_spread'][0]:.2f}-{record['ratio_spread'][1]:.2f}); "
        f"memory above baseline {record['extra_bytes_per_node'] / 1024:.2f} KiB/node"
    )
    return "\n".join(lines)
