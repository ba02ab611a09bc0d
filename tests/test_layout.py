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


def _dotted(path: Path) -> str:
    """A module's name inside flowrt: ``_workflow``, ``_engine.run``, ``_store`` (a package)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


MODULES = {_dotted(path): path for path in sorted(PACKAGE.rglob("*.py"))}
# The modules allowed to import anyio or asyncio: those that own the backend (the rest is pure).
BACKEND = {
    "_engine.attempt",
    "_engine.durable",
    "_engine.execute",
    "_engine.failures",
    "_engine.signals",
    "_engine.invoke",
    "_engine.kinds",
    "_engine.map",
    "_engine.native",
    "_engine.run",
    "_engine.scheduler",
    "_engine.states",
    "_engine.stream",
    "_store.sqlite",
    "_store.sqlite_mail",
    "_store.postgres_mail",
    "_engine.stored_signals",
    "_engine.children",
    "_engine.ended",
    "_engine.limits",
    "_engine.rates",
    "_cli.send",
    "_web.pages",
    "_web.stored_runs",
    "_web.idempotency",
    "_web.background",
    "_web.disconnect",
    "_web.quiet_cancel",
    "_cli.runs",
    "_cli.worker",
    "_cli.signals",
    "_workflow",
    "_worker",
    "cli",
    "fastapi",
    "postgres",
    "ray",
}
# The role sub-packages; a top-level module is a room of its own.
PACKAGES = ("_engine", "_store", "_web", "_cli")


def trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _target(name: str, node: ast.ImportFrom) -> list[str]:
    """The flowrt modules an ``ImportFrom`` in module ``name`` names (a package's module, when
    it imports one by name)."""
    if node.level:
        here = name.split(".") if MODULES[name].name == "__init__.py" else name.split(".")[:-1]
        base = here[: len(here) - (node.level - 1)]
        full = ".".join([*base, *([node.module] if node.module else [])])
    else:
        full = (node.module or "").removeprefix("flowrt").removeprefix(".")
    named = [f"{full}.{alias.name}".lstrip(".") for alias in node.names]
    found = [module for module in named if module in MODULES]
    if len(found) < len(named):
        found.append(full or "__init__")
    return found


def flowrt_imports(name: str, tree: ast.Module) -> set[str]:
    """The flowrt modules module ``name`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("flowrt")
        ):
            found.update(_target(name, node))
    return (found & set(MODULES)) - {name}


def graph() -> dict[str, set[str]]:
    return {name: flowrt_imports(name, tree) for name, tree in trees().items()}


def room(name: str) -> str:
    """The room a module belongs to: its sub-package, or itself at the top."""
    first = name.split(".")[0]
    return first if first in PACKAGES else name


def test_the_import_graph_has_no_cycle() -> None:
    try:
        order = list(TopologicalSorter(graph()).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")
    assert order.index("_definition") < order.index("_engine.plan") < order.index("_engine.run")
    assert order.index("_engine.run") < order.index("_workflow") < order.index("cli")


def test_the_rooms_import_each_other_one_way() -> None:
    """Between rooms (the sub-packages, and each top-level module) there is no cycle; the
    engine imports nothing of the web pages or the CLI; the store nothing of the engine."""
    rooms: dict[str, set[str]] = {}
    for name, imported in graph().items():
        rooms.setdefault(room(name), set()).update(
            room(m) for m in imported if room(m) != room(name)
        )
    try:
        TopologicalSorter(rooms).static_order()
        list(TopologicalSorter(rooms).static_order())
    except CycleError as exc:
        pytest.fail(f"a cycle between rooms: {' -> '.join(exc.args[1])}")
    assert not rooms["_engine"] & {"_web", "_cli", "cli", "fastapi", "_workflow", "_worker"}
    assert not rooms["_store"] & {"_engine", "_web", "_cli"}
    assert not rooms["_web"] & {"_cli", "cli"}


def test_every_module_lives_in_a_room_by_role() -> None:
    top = {name for name in MODULES if "." not in name and name not in PACKAGES}
    assert not {name for name in top if name.startswith(("_cli_", "_sqlite", "_postgres", "_ui"))}
    assert len(top) <= 30, sorted(top)


def test_the_definitions_and_the_rules_import_nothing_of_the_engine() -> None:
    engine = {"_engine.kinds", "_engine.scheduler", "_engine.run", "_engine.durable"}
    engine |= {"_engine.stream", "_workflow"}
    for name in ("_definition", "_engine.rules", "_engine.resume", "_engine.plan", "_loader"):
        assert not flowrt_imports(name, trees()[name]) & engine, name
    assert not flowrt_imports("_definition", trees()["_definition"]) & {
        "_engine.plan",
        "_engine.attempt",
        "_loader",
    }
    assert not flowrt_imports("_store.records", trees()["_store.records"]) & engine


# flowrt modules that need an extra's packages: imported inside a function (with its
# "# optional:" reason) by the modules that choose one of them at run time.
OPTIONAL_ADAPTERS = {"postgres", "ray", "_web.pages"}


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
                where = f"{MODULES[name].relative_to(PACKAGE)}:{node.lineno}"
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level
                    and node.module not in OPTIONAL_ADAPTERS
                    and not set(_target(name, node)) <= OPTIONAL_ADAPTERS
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
