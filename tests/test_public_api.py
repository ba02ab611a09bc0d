from __future__ import annotations

import subprocess
import sys

import flowrt


def test_all_lists_the_contract_and_is_sorted() -> None:
    contract = {
        "Workflow",
        "ErrorHandling",
        "WorkflowRetry",
        "Condition",
        "Node",
        "NodeResult",
        "ErrorInfo",
        "RunResult",
        "Event",
        "Final",
        "DefinitionError",
        "WorkflowFailed",
        "InputError",
        "NoMatch",
        "MaxLoopsExceeded",
        "TooManyFailures",
        "StrayCancellation",
        "FlowError",
        "RunInProgress",
        "RunContext",
        "current",
        "SQLiteStore",
        "RunStore",
        "resume_due",
    }
    assert contract <= set(flowrt.__all__)
    assert list(flowrt.__all__) == sorted(flowrt.__all__)
    for name in flowrt.__all__:
        assert getattr(flowrt, name) is not None


def test_errors_mix_in_the_builtins_callers_expect() -> None:
    assert issubclass(flowrt.DefinitionError, ValueError)
    assert issubclass(flowrt.DefinitionError, flowrt.FlowError)
    assert issubclass(flowrt.WorkflowFailed, flowrt.FlowError)


def test_public_names_have_docstrings() -> None:
    for name in flowrt.__all__:
        obj = getattr(flowrt, name)
        if callable(obj):
            assert obj.__doc__, name


def test_import_does_not_pull_in_heavy_optional_modules() -> None:
    heavy = ("jinja2", "jsonpath", "yaml", "fastapi")
    code = f"import sys, flowrt; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
