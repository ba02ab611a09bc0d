"""The app the FastAPI load benchmark serves: a 10-node flowrt workflow, and a bare handler that
awaits the same ten coroutines itself."""

from __future__ import annotations

import asyncio
import gc
import time

from fastapi import FastAPI

from flowrt import Workflow
from flowrt.fastapi import workflow_router

STEPS = 10


async def step(x: int) -> int:
    await asyncio.sleep(0)  # a checkpoint, as an I/O call would have
    return x + 1


wf = Workflow("ten-steps")
wf.node(step, name="s0", inputs={"x": "$.input.x"})
for i in range(1, STEPS):
    wf.node(step, name=f"s{i}", inputs={"x": f"$.s{i - 1}.output"})

app = FastAPI()
app.include_router(workflow_router(wf), prefix="/flowrt")
app.include_router(workflow_router(wf, response="output"), prefix="/flowrt-output")


@app.post("/bare/run")
async def bare(body: dict[str, int]) -> dict[str, int]:
    x = body["x"]
    for _ in range(STEPS):
        x = await step(x)
    return {"x": x}


@app.get("/health")
async def health() -> str:
    return "ok"


_collecting = [0.0, 0.0]  # seconds spent in the collector so far, and the current one's start


def _collector(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collecting[1] = time.perf_counter()
    else:
        _collecting[0] += time.perf_counter() - _collecting[1]


gc.callbacks.append(_collector)


@app.get("/cpu")
async def cpu() -> list[float]:
    """The server's CPU seconds so far, and those the garbage collector took (the load
    benchmark reads them around each burst: what each side costs the server per request)."""
    return [time.process_time(), _collecting[0]]
