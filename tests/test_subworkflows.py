"""Sub-workflows as nodes (API.md, "sub-workflows"), in memory and on both stores: a child
run per node (or per map item) with a deterministic id, its output the node's, its failure
the node's error (type kept, message naming the child run), retries that resume the same
child, timeouts and cancellation that reach the child, parent deadlines that bound it,
stored links between parent and child, and definition errors."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from conftest import open_store

from flowrt import (
    Condition,
    DefinitionError,
    ErrorHandling,
    FlowError,
    Workflow,
    WorkflowFailed,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield None
        return
    async with open_store(request.param, request, tmp_path / "runs.db") as opened:
        yield opened


class Calls:
    def __init__(self) -> None:
        self.made: list[str] = []
        self.running = 0
        self.most = 0

    def count(self, name: str) -> int:
        return self.made.count(name)


def kyc_flow(calls: Calls, name: str = "kyc", fail: int = 0) -> Workflow:
    """A child: ``check`` fails its first ``fail`` calls with ConnectionError; ``score``."""
    kyc = Workflow(name)

    @kyc.node
    async def check(customer: str) -> str:
        calls.made.append(f"check:{customer}")
        calls.running += 1
        calls.most = max(calls.most, calls.running)
        try:
            await anyio.sleep(0.01)
        finally:
            calls.running -= 1
        if customer == "bad" or calls.count(f"check:{customer}") <= fail:
            raise ConnectionError(f"kyc service down for {customer}")
        return f"checked {customer}"

    @kyc.node(depends=[check])
    async def score() -> int:
        calls.made.append("score")
        return 7

    return kyc


async def test_a_child_run_gives_the_node_its_output_and_its_id(store: Any) -> None:
    calls = Calls()
    wf = Workflow("onboard")
    wf.subworkflow(kyc_flow(calls), name="kyc", input={"customer": "$.input.who"})
    result = await wf.run({"who": "ana"}, run_id="on-1", store=store)
    assert result.status == "success"
    assert result.nodes["kyc"].output == {"score": 7}
    assert result.nodes["kyc"].child_run_id == "on-1:kyc"
    if store is not None:
        child = await store.load_run("on-1:kyc")
        assert (child.status, child.parent_run_id, child.parent_node) == ("success", "on-1", "kyc")
        assert [run.run_id for run in await store.list_runs(parent="on-1")] == ["on-1:kyc"]
        assert await store.list_runs(parent="on-1:kyc") == []


async def test_the_default_input_is_the_parents_and_a_run_id_template_names_the_child(
    store: Any,
) -> None:
    calls = Calls()
    wf = Workflow("onboard")
    wf.subworkflow(kyc_flow(calls), name="kyc", run_id="kyc-{{ input.customer }}")
    result = await wf.run({"customer": "bo"}, run_id="on-2", store=store)
    assert result.nodes["kyc"].child_run_id == "kyc-bo"
    assert calls.made == ["check:bo", "score"]


async def test_a_childs_failure_is_the_nodes_error_with_its_type(store: Any) -> None:
    calls = Calls()
    wf = Workflow("onboard")
    wf.subworkflow(
        kyc_flow(calls),
        name="kyc",
        error_handling=ErrorHandling(behavior="return", retry_on=[ConnectionError]),
    )
    route = wf.choice("route", {"ok": Condition("$.kyc.status", "==", "success"), "no": None})
    wf.node(lambda: "manual review", name="review", depends=[route["no"]])
    result = await wf.run({"customer": "bad"}, run_id="on-3", store=store)
    error = result.nodes["kyc"].error
    assert error is not None
    assert error.type == "ConnectionError"
    assert error.message == "child run 'on-3:kyc' failed: kyc service down for bad"
    assert result.nodes["review"].output == "manual review"
    assert result.status == "success"


async def test_retry_on_a_child_error_type_retries_the_node(store: Any) -> None:
    calls = Calls()
    wf = Workflow("onboard")
    policy = ErrorHandling(max_retries=2, retry_interval_seconds=0.001, retry_on=[ConnectionError])
    wf.subworkflow(kyc_flow(calls, fail=2), name="kyc", error_handling=policy)
    result = await wf.run({"customer": "cy"}, run_id="on-4", store=store)
    assert result.status == "success"
    assert result.nodes["kyc"].attempts == 3
    assert calls.count("check:cy") == 3
    assert calls.count("score") == 1


async def test_a_retry_resumes_the_same_child_keeping_its_successes(
    store: Any,
) -> None:
    if store is None:
        pytest.skip("a child without a store has nothing kept to resume")
    calls = Calls()
    child = Workflow("two_steps")

    @child.node
    async def first() -> int:
        calls.made.append("first")
        return 1

    @child.node(depends=[first])
    async def second() -> int:
        calls.made.append("second")
        if calls.count("second") == 1:
            raise ConnectionError("flaky")
        return 2

    wf = Workflow("parent")
    policy = ErrorHandling(max_retries=1, retry_interval_seconds=0.001)
    wf.subworkflow(child, name="steps", error_handling=policy)
    result = await wf.run({}, run_id="on-5", store=store)
    assert result.status == "success"
    assert calls.made == ["first", "second", "second"]  # "first" kept from the first attempt
    runs = await store.list_runs(parent="on-5")
    assert [run.run_id for run in runs] == ["on-5:steps"]  # one child, not one per attempt


async def test_a_node_timeout_cancels_the_child_before_the_retry(store: Any) -> None:
    stopped: list[str] = []
    child = Workflow("slow_child")
    tries: list[int] = []

    @child.node
    async def slow() -> str:
        tries.append(1)
        if len(tries) == 1:
            try:
                await anyio.sleep(30)
            finally:
                stopped.append("cancelled")
        return "fast the second time"

    wf = Workflow("parent")
    policy = ErrorHandling(timeout_seconds=0.3, max_retries=1, retry_interval_seconds=0.001)
    wf.subworkflow(child, name="slow", error_handling=policy)
    with anyio.fail_after(20):
        result = await wf.run({}, run_id="on-6", store=store)
    assert stopped == ["cancelled"]
    assert result.status == "success"
    assert result.nodes["slow"].output == {"slow": "fast the second time"}
    assert result.nodes["slow"].attempts == 2


async def test_the_childs_deadline_is_bounded_by_the_parents(store: Any) -> None:
    if store is None:
        pytest.skip("the bound is seen in the stored child")
    child = Workflow("quick_child")
    child.node(lambda: 1, name="one")
    wf = Workflow("parent")
    wf.subworkflow(child, name="kid", error_handling=ErrorHandling(timeout_seconds=50))
    await wf.run({}, run_id="on-7", store=store, timeout=20)
    kid = await store.load_run("on-7:kid")
    assert kid.timeout is not None
    assert 15 < kid.timeout <= 20


async def test_cancelling_the_parent_cancels_its_child(store: Any) -> None:
    started, stopped = anyio.Event(), anyio.Event()
    child = Workflow("held_child")

    @child.node
    async def hold() -> None:
        started.set()
        try:
            await anyio.sleep(60)
        finally:
            stopped.set()

    wf = Workflow("parent")
    wf.subworkflow(child, name="held")
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: wf.run({}, run_id="on-8", store=store))
            await started.wait()
            group.cancel_scope.cancel()
        await stopped.wait()
    if store is not None:
        kid = await store.load_run("on-8:held")
        assert kid.status == "cancelled"
        assert (await store.load_run("on-8")).status == "cancelled"


async def test_a_map_of_children_runs_one_child_per_item_under_its_cap(store: Any) -> None:
    calls = Calls()
    wf = Workflow("batch")
    items = [{"customer": f"c{i}"} for i in range(12)]
    wf.map(kyc_flow(calls), name="all", items="$.input.customers", concurrency=3)
    result = await wf.run({"customers": items}, run_id="on-9", store=store)
    assert result.status == "success"
    outputs = result.nodes["all"].output
    assert [item["output"] for item in outputs] == [{"score": 7}] * 12
    assert calls.most <= 3
    assert sorted(c for c in calls.made if c.startswith("check")) == sorted(
        f"check:c{i}" for i in range(12)
    )
    if store is not None:
        children = await store.list_runs(parent="on-9", limit=100)
        assert sorted(run.run_id for run in children) == sorted(f"on-9:all[{i}]" for i in range(12))
        assert {run.parent_node for run in children} == {f"all[{i}]" for i in range(12)}


async def test_a_map_of_children_tolerates_failures_as_any_map(store: Any) -> None:
    calls = Calls()
    wf = Workflow("batch")
    wf.map(
        kyc_flow(calls),
        name="all",
        items="$.input.customers",
        tolerated_failures=1,
        error_handling=ErrorHandling(behavior="return"),
    )
    customers = [{"customer": "ok"}, {"customer": "bad"}]
    result = await wf.run({"customers": customers}, run_id="on-10", store=store)
    assert result.status == "success"
    first, second = result.nodes["all"].output
    assert first["status"] == "success"
    assert second["error"]["type"] == "ConnectionError"
    assert "on-10:all[1]" in second["error"]["message"]


async def test_an_ended_child_is_taken_as_stored_without_running_again(store: Any) -> None:
    if store is None:
        pytest.skip("only a stored child outlives a crash of its parent")
    calls = Calls()
    kyc = kyc_flow(calls)
    # the parent died after its child ended, before the node's end was stored:
    await kyc.run({"customer": "di"}, run_id="on-11:kyc", store=store)
    wf = Workflow("onboard")
    wf.subworkflow(kyc, name="kyc")
    result = await wf.run({"customer": "di"}, run_id="on-11", store=store)
    assert result.nodes["kyc"].output == {"score": 7}
    assert calls.made == ["check:di", "score"]  # once


async def test_a_child_id_that_is_another_workflows_run_fails_the_node(store: Any) -> None:
    if store is None:
        pytest.skip("run ids belong to workflows only in a store")
    other = Workflow("other")
    other.node(lambda: 1, name="one")
    await other.run({}, run_id="taken", store=store)
    wf = Workflow("parent")
    wf.subworkflow(kyc_flow(Calls()), name="kyc", run_id="taken")
    result = await wf.run({"customer": "x"}, run_id="on-12", store=store)
    error = result.nodes["kyc"].error
    assert error is not None
    assert error.type == "FlowError"
    assert "belongs to workflow 'other'" in error.message


async def test_an_input_that_is_not_an_object_fails_the_node(store: Any) -> None:
    wf = Workflow("parent")
    wf.subworkflow(kyc_flow(Calls()), name="kyc", input="$.input.customer")
    result = await wf.run({"customer": "just a string"}, run_id="on-13", store=store)
    error = result.nodes["kyc"].error
    assert error is not None
    assert error.type == "InputError"
    assert "must be an object, got str" in error.message


async def test_detach_starts_the_child_and_succeeds(store: Any) -> None:
    wf = Workflow("parent")
    wf.subworkflow(kyc_flow(Calls()), name="kyc", detach=True)
    result = await wf.run({"customer": "ed"}, run_id="on-14", store=store)
    if store is None:
        assert result.nodes["kyc"].error is not None
        assert "needs a store" in result.nodes["kyc"].error.message
        return
    assert result.nodes["kyc"].output == {"run_id": "on-14:kyc"}
    child = await store.load_run("on-14:kyc")
    assert (child.status, child.parent_run_id) == ("queued", "on-14")


def test_recursion_is_a_definition_error_naming_the_cycle() -> None:
    a, b = Workflow("a"), Workflow("b")
    a.subworkflow(b, name="to_b")
    b.subworkflow(a, name="to_a")
    with pytest.raises(DefinitionError, match="a -> b -> a") as info:
        a.validate()
    assert (info.value.node, info.value.field) == ("to_b", "workflow")
    selfish = Workflow("self")
    selfish.subworkflow(selfish, name="me")
    with pytest.raises(DefinitionError, match="self -> self"):
        selfish.validate()


def test_an_invalid_child_fails_the_parents_validation_naming_both() -> None:
    child = Workflow("broken")
    child.node(lambda: 1, name="one", depends=["missing"])
    wf = Workflow("parent")
    wf.subworkflow(child, name="kid")
    with pytest.raises(DefinitionError, match="child workflow 'broken' is invalid") as info:
        wf.validate()
    assert info.value.node == "kid"


@pytest.mark.parametrize(
    ("given", "field"),
    [({"customer": "$.nowhere.output"}, "input.customer"), ("$.nowhere.output", "input")],
)
def test_an_input_naming_an_unknown_node_is_a_definition_error(given: Any, field: str) -> None:
    wf = Workflow("parent")
    wf.subworkflow(kyc_flow(Calls()), name="kyc", input=given)
    with pytest.raises(DefinitionError, match="nowhere") as info:
        wf.validate()
    assert (info.value.node, info.value.field) == ("kyc", field)


def test_a_child_that_is_not_a_workflow_is_a_definition_error() -> None:
    wf = Workflow("parent")
    wf.subworkflow("kyc.yaml", name="kyc")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="must be a Workflow") as info:
        wf.validate()
    assert info.value.field == "workflow"


async def test_the_exception_behind_a_failed_child_is_of_its_type() -> None:
    wf = Workflow("parent")
    wf.subworkflow(kyc_flow(Calls()), name="kyc")
    result = await wf.run({"customer": "bad"}, run_id="on-15")
    with pytest.raises(WorkflowFailed) as info:
        result.raise_for_status()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectionError)
    assert isinstance(cause, FlowError)
    assert getattr(cause, "child_run_id", None) == "on-15:kyc"


KYC_YAML = """
name: kyc_file
nodes:
  - name: check
    call: "builtins:str"
    inputs: {object: "$.input.customer"}
"""
ONBOARD_YAML = """
name: onboard_file
nodes:
  - name: kyc
    workflow: children/kyc.yaml
    input: {customer: "$.input.customer"}
  - name: all
    workflow: children/kyc.yaml
    map: {items: "$.input.customers", concurrency: 2}
  - name: by_call
    workflow: {call: "test_subworkflows:PY_CHILD"}
  - name: inline
    workflow: {name: inline_child, nodes: [{name: one, call: "builtins:len", inputs: {obj: [1]}}]}
"""
PY_CHILD = Workflow("py_child")
PY_CHILD.node(lambda: "from python", name="hello")


async def test_yaml_sub_workflows_load_run_and_round_trip(tmp_path: Path) -> None:
    (tmp_path / "children").mkdir()
    (tmp_path / "children" / "kyc.yaml").write_text(KYC_YAML, encoding="utf-8")
    (tmp_path / "onboard.yaml").write_text(ONBOARD_YAML, encoding="utf-8")
    wf = Workflow.from_yaml(tmp_path / "onboard.yaml")
    data = wf.to_dict()
    assert data["nodes"][0]["workflow"] == "children/kyc.yaml"
    assert data["nodes"][1]["map"]["concurrency"] == 2
    assert data["nodes"][2]["workflow"] == {"call": "test_subworkflows:PY_CHILD"}
    assert data["nodes"][3]["workflow"]["name"] == "inline_child"
    result = await wf.run({"customer": "ana", "customers": [{"customer": "bo"}]}, run_id="y-1")
    assert result.status == "success"
    assert result.nodes["kyc"].output == {"check": "ana"}
    assert result.nodes["all"].output[0]["output"] == {"check": "bo"}
    assert result.nodes["by_call"].output == {"hello": "from python"}
    assert result.nodes["inline"].output == {"one": 1}
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert Workflow.from_yaml(again).to_dict() == data


def test_a_python_child_is_written_inline() -> None:
    wf = Workflow("parent")
    child = Workflow("child")
    child.node(math.floor, name="floor", inputs={"x": 1.5})
    wf.subworkflow(child, name="kid", input={"x": "$.input.x"}, detach=False)
    data = wf.to_dict()
    assert data["nodes"][0]["workflow"] == child.to_dict()
    assert data["nodes"][0]["input"] == {"x": "$.input.x"}
    assert Workflow.from_dict(data).to_dict() == data


def test_recursive_workflow_files_are_a_definition_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "name: a\nnodes: [{name: to_b, workflow: b.yaml}]\n", encoding="utf-8"
    )
    (tmp_path / "b.yaml").write_text(
        "name: b\nnodes: [{name: to_a, workflow: a.yaml}]\n", encoding="utf-8"
    )
    with pytest.raises(DefinitionError, match=r"a\.yaml -> b\.yaml -> a\.yaml"):
        Workflow.from_yaml(tmp_path / "a.yaml")


LINKED_CHILD = Workflow("linked_child")
LINKED_CHILD.node(lambda: 1, name="one")
LINKED = Workflow("linked_parent")
LINKED.subworkflow(LINKED_CHILD, name="kid")
LINKED.map(LINKED_CHILD, name="each", items="$.input.items")


async def test_the_viewer_and_runs_show_link_parent_and_children(tmp_path: Path) -> None:
    import sys

    import httpx
    from fastapi import FastAPI

    from flowrt import SQLiteStore
    from flowrt._web.pages import viewer_router

    async with SQLiteStore(tmp_path / "runs.db") as store:
        await LINKED.run({"items": [{}, {}]}, run_id="lk", store=store)
        app = FastAPI()
        app.include_router(viewer_router(store, [LINKED, LINKED_CHILD]))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            parent = (await client.get("/ui/runs/lk")).text
            child = (await client.get("/ui/runs/lk:each[1]")).text
    assert '<a href="../../ui/runs/lk%3Akid">lk:kid</a> node kid' in parent
    assert '<a href="../../ui/runs/lk%3Aeach%5B1%5D">lk:each[1]</a> node each[1]' in parent
    assert 'Child run of <a href="../../ui/runs/lk">lk</a> (node each[1])' in child
    flowrt_cli = str(Path(sys.executable).parent / "flowrt")
    shown = await anyio.run_process(
        [flowrt_cli, "runs", "show", "lk", "--store", str(tmp_path / "runs.db")]
    )
    lines = shown.stdout.decode().splitlines()
    assert "child run lk:kid (node kid): success" in lines
    assert "child run lk:each[0] (node each[0]): success" in lines
    shown_child = await anyio.run_process(
        [flowrt_cli, "runs", "show", "lk:kid", "--store", str(tmp_path / "runs.db")]
    )
    assert "child of run lk (node kid)" in shown_child.stdout.decode()
