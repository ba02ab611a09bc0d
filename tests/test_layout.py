"""The package's shape, checked: data flows one way (the import graph of ``flowrt/`` has no
cycle, counting every import: inside functions and under ``TYPE_CHECKING`` too), imports inside
functions only keep optional dependencies out of ``import flowrt`` (each says why), modules stay
under 400 lines and functions under 40."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flowrt"
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}
# The modules allowed to import anyio or asyncio: those that own the backend (the rest is pure).
BACKEND = {
    "_attempt", "_durable", "_graph", "_invoke", "_kinds", "_map", "_native", "_run", "_scheduler",
    "_sqlite", "_stream", "_cli_runs", "cli", "fastapi", "postgres",
    "_worker", "_cli_worker", "_fastapi_store", "ray", "_ui", "_cli_signals", "_idempotency",
}  # fmt: skip


def trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def flowrt_imports(tree: ast.Module) -> set[str]:
    """The flowrt modules a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flowrt"):
            found.add((node.module or "").removeprefix("flowrt.") or "__init__")
    return found & set(MODULES)


def test_the_import_graph_has_no_cycle() -> None:
    graph = {name: flowrt_imports(tree) for name, tree in trees().items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")
    assert order.index("_definition") < order.index("_plan") < order.index("_run")
    assert order.index("_run") < order.index("_graph") < order.index("cli")


def test_the_definitions_and_the_rules_import_nothing_of_the_engine() -> None:
    engine = {"_attempt", "_kinds", "_scheduler", "_run", "_durable", "_stream", "_graph"}
    for name in ("_definition", "_rules", "_resume", "_plan", "_records", "_loader"):
        assert not flowrt_imports(trees()[name]) & (engine - {"_attempt"}), name
    assert not flowrt_imports(trees()["_definition"]) & {"_plan", "_attempt", "_loader"}


# flowrt modules that need an extra's packages: imported inside a function (with its
# "# optional:" reason) by the modules that choose one of them at run time.
OPTIONAL_ADAPTERS = {"postgres", "ray", "_ui"}


def test_imports_inside_functions_only_keep_optional_dependencies_out() -> None:
    problems = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                where = f"{name}.py:{node.lineno}"
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level
                    and node.module not in OPTIONAL_ADAPTERS
                ):
                    problems.append(f"{where}: a flowrt module imported inside a function")
                elif "# optional:" not in "".join(lines[node.lineno - 4 : node.lineno]):
                    problems.append(f"{where}: no '# optional: why' comment")
    assert problems == []


def test_anyio_and_asyncio_are_imported_only_by_the_modules_that_own_the_backend() -> None:
    for name, tree in trees().items():
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported.add((node.module or "").split(".")[0])
        if imported & {"anyio", "asyncio", "trio"}:
            assert name in BACKEND, f"{name} imports {imported & {'anyio', 'asyncio', 'trio'}}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_under_400_lines_and_functions_under_40(name: str) -> None:
    text = MODULES[name].read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 400
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 40, f"{name}.{node.name} has {length} lines"
