"""Input resolution: JSONPath selectors, Jinja templates, coalesce chains, literals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrt import DefinitionError, ErrorHandling, Workflow
from flowrt._resolve import compile_value

STORE: dict[str, Any] = {
    "input": {"user": {"name": "ada"}, "tags": ["a", "b"]},
    "charge": {
        "status": "success",
        "output": [
            {"status": "success", "output": 10, "error": None},
            {
                "status": "failure",
                "output": None,
                "error": {"type": "CardDeclined", "message": "no"},
            },
            {"status": "success", "output": 30, "error": None},
        ],
        "error": None,
    },
}
KNOWN = {"input", "charge", "other"}


def resolve(spec: Any) -> Any:
    return compile_value(spec, KNOWN)(STORE)


def test_one_match_is_the_value() -> None:
    assert resolve("$.input.user.name") == "ada"
    assert resolve("$.input.tags") == ["a", "b"]
    assert resolve("$.input.tags[1]") == "b"
    assert resolve("$['input']['user']['name']") == "ada"


def test_no_match_resolves_to_none() -> None:
    assert resolve("$.input.user.age") is None
    assert resolve("$.input.tags[5]") is None
    assert resolve("$.charge.output[?(@.status=='timeout')]") is None


def test_several_matches_are_a_list() -> None:
    assert resolve("$.charge.output[*].output") == [10, None, 30]


def test_filters() -> None:
    assert resolve("$.charge.output[?(@.status=='failure')].error.type") == "CardDeclined"
    assert resolve("$.charge.output[?(@.status=='success')].output") == [10, 30]


def test_literals_pass_through() -> None:
    assert resolve("plain words") == "plain words"
    assert resolve(42) == 42
    assert resolve({"k": "$.not.resolved"}) == {"k": "$.not.resolved"}
    assert resolve(None) is None


def test_coalesce_takes_the_first_non_null_selector_then_a_literal_default() -> None:
    assert resolve("$.input.user.age || $.input.user.name") == "ada"
    assert resolve("$.input.user.age || $.input.nothing || unknown") == "unknown"
    assert resolve("$.input.user.age || $.input.nothing") is None


def test_templates_render_from_the_store() -> None:
    assert (
        resolve("Hi {{ input.user.name }}, {{ charge.output | length }} charges")
        == "Hi ada, 3 charges"
    )
    assert resolve("{% for t in input.tags %}{{ t }}{% endfor %}") == "ab"


def test_a_template_reading_a_missing_value_renders_it_empty() -> None:
    assert (
        resolve("[{{ input.user.age }}][{{ charge.output[7].error.message }}][{{ other.output }}]")
        == "[][][]"
    )


def test_the_template_sandbox_refuses_internals() -> None:
    rendered = resolve("{{ input.__class__.__mro__ }}{{ input.user.__init__.__globals__ }}")
    assert "class" not in rendered
    assert "builtins" not in rendered


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("$.ghost.output", "unknown node 'ghost'"),
        ("$.charge.output[", "unclosed"),
        ("$.charge.output]", "unbalanced"),
        ("$.charge.", "malformed selector"),
        ("$.charge.output[?(@.status==)]", "malformed filter"),
        ("{{ charge.output", "syntax error"),
        ("{% if %}", "syntax error"),
        ("{{ ghost.output }}", "unknown node 'ghost'"),
        ("$.charge.output || $.ghost.output", "unknown node 'ghost'"),
    ],
)
def test_malformed_or_unknown_references_are_definition_errors(spec: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        compile_value(spec, KNOWN)
    assert spec in str(info.value) or "ghost" in str(info.value)


def test_compiled_values_name_the_nodes_they_read() -> None:
    assert compile_value("$.charge.output[0]", KNOWN).names == {"charge"}
    assert compile_value("{{ charge.status }} {{ other.output }}", KNOWN).names == {
        "charge",
        "other",
    }
    assert compile_value("$.other.output || $.charge.output", KNOWN).names == {"charge", "other"}
    assert compile_value("literal", KNOWN).names == set()


@pytest.mark.anyio
async def test_selectors_add_implicit_dependencies_even_when_defined_first() -> None:
    wf = Workflow("implicit")

    @wf.node(inputs={"text": "$.upstream.output", "prompt": "Say {{ upstream.output }}"})
    async def downstream(text: str, prompt: str) -> str:
        return f"{text} / {prompt}"

    @wf.node
    async def upstream() -> str:
        return "hello"

    result = await wf.run()
    assert result["downstream"].output == "hello / Say hello"


@pytest.mark.anyio
async def test_templates_are_compiled_once_per_workflow_not_per_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowrt import _resolve

    compiled: list[str] = []
    original = _resolve.compile_template

    def counting(spec: str, known: Any) -> Any:
        compiled.append(spec)
        return original(spec, known)

    monkeypatch.setattr(_resolve, "compile_template", counting)
    wf = Workflow("once")
    wf.node(lambda prompt: prompt, name="echo", inputs={"prompt": "{{ input.x }}!"})
    for x in range(3):
        assert (await wf.run({"x": x}))["echo"].output == f"{x}!"
    assert compiled == ["{{ input.x }}!"]


@pytest.mark.anyio
async def test_a_template_that_fails_to_render_fails_the_node_with_input_error() -> None:
    wf = Workflow("render")
    wf.node(
        lambda p: p,
        name="echo",
        inputs={"p": "{{ 1 // input.zero }}"},
        error_handling=ErrorHandling.ignore(),
    )
    result = await wf.run({"zero": 0})
    assert result["echo"].error is not None
    assert result["echo"].error.type == "InputError"


def test_a_hyphenated_node_in_a_template_gets_a_hint() -> None:
    with pytest.raises(DefinitionError, match="'fetch-page' has a '-'"):
        compile_value("{{ fetch-page.output }}", {"input", "fetch-page"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("x || y", "x || y"),  # literal text is kept whole
        ("fallback || $.input.user.name", "fallback || $.input.user.name"),
        ("{{ input.user.name }} || bye", "ada || bye"),  # a template renders as a whole
        ("$.input.nothing || x || y", "x"),  # a chain starts with a selector
    ],
)
def test_only_a_selector_starts_a_coalescing_chain(spec: str, expected: str) -> None:
    assert resolve(spec) == expected


@pytest.mark.anyio
async def test_a_template_cannot_change_the_results_or_the_run_input() -> None:
    from flowrt import ErrorHandling, Workflow

    wf = Workflow("forgery")

    @wf.node(error_handling=ErrorHandling.ignore())
    async def a() -> str:
        raise RuntimeError("a failed")

    forged = "{{ a.update({'status': 'success', 'output': 'forged'}) }}{{ input.clear() }}"
    wf.node(
        lambda text: text,
        name="attacker",
        inputs={"text": forged},
        error_handling=ErrorHandling.ignore(),
    )

    @wf.node(depends=["attacker"], inputs={"seen": "$.input.secret", "status": "$.a.status"})
    async def later(seen: str, status: str) -> list[str]:
        return [seen, status]

    result = await wf.run({"secret": "kept"})
    assert result["a"].status == "failure"
    assert result["attacker"].error is not None
    assert result["attacker"].error.type == "InputError"
    assert "unsafe" in result["attacker"].error.message
    assert result["later"].output == ["kept", "failure"]  # nothing changed for later nodes


json_like = st.recursive(
    st.none() | st.integers() | st.text(max_size=3) | st.booleans(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "0", "1", "output"]), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from(["a", "b", "0", "1", "output", "x"])


@settings(max_examples=300, deadline=None)
@given(data=json_like, first=keys, second=keys)
def test_a_two_key_path_walks_as_any_plain_path(data: Any, first: str, second: str) -> None:
    from flowrt._resolve import Pair, Path

    pair, path = Pair((first, second)), Path((first, second))
    assert pair(data) == path(data)
    if isinstance(data, dict):  # and through a dict subclass (a node's envelope is one)
        from flowrt._engine.states import NodeState

        envelope = NodeState()
        envelope.update(data)
        assert pair({first: envelope}) == path({first: envelope})


def test_a_two_key_selector_compiles_to_the_pair() -> None:
    from flowrt._resolve import Pair, Path

    assert type(compile_value("$.node.output", frozenset({"node"}))) is Pair
    assert type(compile_value("$.node.output.x", frozenset({"node"}))) is Path


@settings(max_examples=300, deadline=None)
@given(data=json_like, present=st.booleans(), as_envelope=st.booleans())
def test_a_node_started_on_a_two_key_input_gets_what_the_path_reads(
    data: Any, present: bool, as_envelope: bool
) -> None:
    """``planned.starter`` reads a lone two-key input itself (the speed trick beside
    ``Pair``): the function gets exactly what the path resolves to."""
    from flowrt._engine.planned import PlanNode, starter
    from flowrt._engine.states import NodeState
    from flowrt._resolve import Pair

    value = Pair(("a", "output"))
    pn = PlanNode(0, "n", "task", ErrorHandling(), "all", keywords=(("x", value),))
    pn.invoke = lambda **kwargs: kwargs  # type: ignore[assignment,return-value]
    if as_envelope and isinstance(data, dict):
        envelope = NodeState()
        envelope.update(data)
        data = envelope
    results = {"input": {}, "a": data} if present else {"input": {}}
    assert starter(pn)(results) == {"x": value(results)}


def _started(fn: Any, value: Any) -> Any:
    """What ``planned.starter`` passes ``fn`` for its one input ``x`` (``$.a.output``)."""
    from flowrt._engine.planned import PlanNode, starter
    from flowrt._resolve import Pair

    pn = PlanNode(0, "n", "task", ErrorHandling(), "all", keywords=(("x", Pair(("a", "output"))),))
    pn.fn = pn.invoke = fn
    return starter(pn)({"input": {}, "a": {"status": "success", "output": value, "error": None}})


def _wrapped(fn: Any) -> Any:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return ("args", args, "kwargs", kwargs)  # what a decorator sees

    return wrapper


class _Callable:
    def __call__(self, x: Any) -> Any:
        return ("called", x)


class _Method:
    def take(self, x: Any, y: int = 2) -> Any:
        return ("method", x, y)


def _first(x: Any, y: int = 2) -> Any:
    return ("first", x, y)


def _second(y: int = 2, x: Any = None) -> Any:
    return ("second", x, y)


def _keyword_only(*, x: Any) -> Any:
    return ("keyword-only", x)


def _rest(x: Any, *args: Any, **kwargs: Any) -> Any:
    return ("rest", x, args, kwargs)


def _any(**kwargs: Any) -> Any:
    return ("any", kwargs)


@settings(max_examples=50, deadline=None)
@given(value=json_like)
@pytest.mark.parametrize(
    ("fn", "positional"),
    [
        (_first, True),
        (_rest, True),
        (lambda x: ("lambda", x), True),
        (_second, False),
        (_keyword_only, False),
        (_any, False),
        (_wrapped(_first), False),
        (_Callable(), False),
        (_Method().take, False),
    ],
    ids=["first", "rest", "lambda", "second", "kw-only", "kwargs", "wrapped", "callable", "method"],
)
def test_a_nodes_one_input_is_passed_by_position_only_where_it_is_the_same_call(
    fn: Any, positional: bool, value: Any
) -> None:
    """``planned.by_position``: a plain function whose first parameter is the input gets it
    by position, the same call as by keyword; anything else (a wrapper, whose ``*args,
    **kwargs`` would see the difference, a callable, a method, another parameter) by
    keyword, as before."""
    from flowrt._engine.planned import PlanNode, by_position

    pn = PlanNode(0, "n", "task", ErrorHandling(), "all")
    pn.fn = pn.invoke = fn
    assert by_position(pn, "x") is positional
    assert _started(fn, value) == fn(x=value)


def test_a_node_called_through_its_invoker_gets_its_input_by_keyword() -> None:
    """A sync function runs through an invoker (a worker thread, a process, an executor),
    not called directly: its input goes by keyword, whatever its parameters."""
    from flowrt._engine.planned import PlanNode, by_position

    pn = PlanNode(0, "n", "task", ErrorHandling(), "all")
    pn.fn, pn.invoke = _first, lambda **kwargs: kwargs  # type: ignore[assignment,return-value]
    assert not by_position(pn, "x")
    assert _started_through(pn) == {"x": 7}


def _started_through(pn: Any) -> Any:
    from flowrt._engine.planned import starter
    from flowrt._resolve import Pair

    pn.keywords = (("x", Pair(("a", "output"))),)
    return starter(pn)({"input": {}, "a": {"status": "success", "output": 7, "error": None}})


async def _async_first(x: Any, y: int = 2) -> Any:
    return ["first", x, y]


async def _async_second(y: int = 2, x: Any = None) -> Any:
    return ["second", x, y]


async def _async_keyword_only(*, x: Any) -> Any:
    return ["keyword-only", x]


async def _async_rest(x: Any, *args: Any, **kwargs: Any) -> Any:
    return ["rest", x, list(args), kwargs]


@pytest.mark.parametrize(
    "fn", [_async_first, _async_second, _async_keyword_only, _async_rest], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("source", ["$.src.output", "$.src.output.v"])
def test_whole_runs_give_each_function_shape_what_a_call_by_keyword_gives(
    fn: Any, source: str
) -> None:
    """The same through whole runs (async functions are called directly, by position where
    ``by_position`` allows), fed by a two-key path and by a longer one."""
    import asyncio

    wf = Workflow("shapes")
    wf.node(lambda: {"v": 3}, name="src")
    wf.node(fn, name="n", inputs={"x": source})
    value = {"v": 3} if source == "$.src.output" else 3
    assert wf.run_sync()["n"].output == asyncio.run(fn(x=value))
