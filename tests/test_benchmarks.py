"""Every benchmark shape runs at a tiny size and reports every figure, so none of them rots."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _harness

pytestmark = pytest.mark.timeout(300)  # each runs a benchmark's quick mode: long on a loaded host

SHAPES = [
    "s1_fanout",
    "s2_chain",
    "s3_concurrency",
    "s4_retries",
    "s5_map",
    "s6_timeouts",
    "s8_store",
]


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(_harness, "RESULTS", tmp_path)
    return tmp_path


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_reports_every_figure(
    shape: str, results_in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module: Any = importlib.import_module(f"benchmarks.{shape}")
    record = module.run(n=20, repeats=1)
    for side in ("flowrt", "baseline"):
        assert record[side]["median_s"] > 0
        assert record[side]["peak_bytes"] > 0
        assert record["per_node_us"][side] > 0
        assert record[side]["full_gcs"] >= 0
        assert record[side]["gc_s"] >= 0
    assert record["ratio"] == pytest.approx(
        record["flowrt"]["median_s"] / record["baseline"]["median_s"]
    )
    assert {"extra_bytes_per_node", "python", "machine", "date"} <= set(record)
    written = json.loads(next(results_in_tmp.glob(f"{record['shape']}-20.json")).read_text())
    assert written["ratio"] == record["ratio"]
    table = capsys.readouterr().out
    assert f"flowrt / {record['against']}" in table
    assert "per node µs" in table
    assert "full GCs" in table


@pytest.mark.parametrize(("http", "loop"), [("httptools", "uvloop"), ("h11", "asyncio")])
def test_fastapi_load_reports_every_figure(results_in_tmp: Path, http: str, loop: str) -> None:
    from benchmarks import fastapi_load

    record = fastapi_load.run(requests=5, rounds=1, http=http, loop=loop)
    for side in ("flowrt", "flowrt-output", "bare"):
        assert record[side]["p50_ms"] > 0
        assert record[side]["p99_ms"] >= record[side]["p50_ms"]
        assert record[side]["throughput_rps"] > 0
        assert record[side]["server_us"] >= record[side]["gc_us"] >= 0
    assert record["p50_ratio"] > 0
    assert set(record["server_ratio"]) == {"flowrt", "flowrt-output"}
    assert record["output_throughput_ratio"] > 0
    assert record["server"] == f"uvicorn, 1 worker, --http {http}, --loop {loop}"
    assert (results_in_tmp / f"S7-5-{http}-{loop}.json").exists()


@pytest.mark.parametrize("yields", ["1", "0"])
def test_direct_awaits_report_their_figures(
    results_in_tmp: Path, monkeypatch: pytest.MonkeyPatch, yields: str
) -> None:
    from benchmarks import s16_direct

    monkeypatch.setenv("FLOWRT_BENCH_YIELD", yields)
    monkeypatch.setenv("FLOWRT_BENCH_SUFFIX", "-tag")
    record = s16_direct.run(nodes=3, runs=20, repeats=2)
    low, high = record["ratio_spread"]
    assert 0 < low <= record["ratio"] <= high  # the median's ratio lies within the rounds'
    assert record["against"] == "direct"
    shape = "S16" if yields == "1" else "S16-bare"
    assert (results_in_tmp / f"{shape}-20-tag.json").exists()


def test_small_runs_and_uvloop_report_their_figures(
    results_in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import s9_small

    monkeypatch.setenv("FLOWRT_BENCH_LOOP", "uvloop")
    record = s9_small.run(nodes=10, runs=20, repeats=1)
    assert record["loop"] == "uvloop"
    assert record["against"] == "asyncio on uvloop"
    assert (results_in_tmp / "S9-10-20-uvloop.json").exists()
    assert "flowrt / asyncio on uvloop" in capsys.readouterr().out
    monkeypatch.setenv("FLOWRT_BENCH_LOOP", "tokio")
    with pytest.raises(SystemExit, match="unknown loop 'tokio'"):
        s9_small.run(nodes=1, runs=2, repeats=1)


def test_workers_benchmark_reports_throughput_and_latency(
    results_in_tmp: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    from benchmarks import s10_workers

    monkeypatch.setenv("FLOWRT_BENCH_POSTGRES_DSN", postgres_url)
    record = s10_workers.run(n=20, samples=3)
    for store in ("postgres", "sqlite"):
        assert record[store]["runs_per_s"] > 0
        assert 0 < record[store]["latency_p50_ms"] <= record[store]["latency_p90_ms"]
    assert (results_in_tmp / "S10-20.json").exists()


def test_ray_benchmark_reports_overhead_and_map_time(results_in_tmp: Path) -> None:
    pytest.importorskip("ray")
    from benchmarks import s11_ray

    record = s11_ray.run(n=5)
    for side in ("flowrt", "ray"):
        assert 0 < record[side]["p50_ms"] <= record[side]["p90_ms"]
    assert record["map_1000_s"] > 0
    assert (results_in_tmp / "S11-5.json").exists()


def test_plan_memory_reports_bytes_per_node(results_in_tmp: Path) -> None:
    from benchmarks import s12_plan_memory

    record = s12_plan_memory.run(n=200)
    for shape in ("S1", "S2"):
        assert set(record[shape]) == {"definition", "plan", "baseline"}
        assert all(value > 0 for value in record[shape].values())
    assert json.loads((results_in_tmp / "S12-200.json").read_text())["n"] == 200


def test_limits_benchmark_reports_claims_and_rate_accuracy(
    results_in_tmp: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    from benchmarks import s15_limits

    monkeypatch.setenv("FLOWRT_BENCH_POSTGRES_DSN", postgres_url)
    record = s15_limits.run(n=20, seconds=2.0)
    claims, rate = record["claims"], record["rate"]
    assert claims["limited_runs_per_s"] > 0
    assert claims["low"] <= claims["ratio"] <= claims["high"]
    assert rate["permits"] > 0
    assert rate["most_turns_in_1s"] <= 50  # the rule itself, on the database's clock
    assert 0 < rate["use"] <= 1.05
    assert (results_in_tmp / "S15-20.json").exists()
