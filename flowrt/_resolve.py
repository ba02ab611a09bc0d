"""Pure, sync: compile input values (selectors, templates, coalesce chains, literals) once at
validation, then resolve them against the results on every run.

A compiled value names the result keys it reads (``names``): the scheduler turns them into implicit
dependencies, and values that can walk all the results (wildcards, filters, ``$..x``) resolve
against a view holding only the node's own dependencies, so what a node sees never depends on
timing. Plain paths (``$.scraper.output.content``, ``$.input.items[0]``) compile to a key walk,
the rest goes to jsonpath-python; templates are rendered by a sandboxed Jinja2 environment.
"""

from __future__ import annotations

import ast
import copy
import difflib
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import DefinitionError, InputError
from ._store.records import unencodable

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import SandboxedEnvironment
    from jsonpath import JSONPath

NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_ZERO_STEP = re.compile(r"\[\s*[-+]?\d*\s*:\s*[-+]?\d*\s*:\s*[-+]?0+\s*\]")
_SIMPLE_PATH = re.compile(rf"\$((?:\.{NAME}|\[\d+\]|\['[^']*'\]|\[\"[^\"]*\"\])+)")
_SEGMENT = re.compile(rf"\.({NAME})|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_HEAD = re.compile(rf"\$(?:\.({NAME})|\['([^']*)'\]|\[\"([^\"]*)\"\])")
_FILTER = re.compile(r"\[\?\((.*?)\)\]")
_FIELD = re.compile(
    rf"\$(?:\.{NAME}|\['[^']*'\]|\[\"[^\"]*\"\])(?:\.({NAME})|\['([^']*)'\]|\[\"([^\"]*)\"\])"
)
ENVELOPE = ("status", "output", "error")  # a node's result has exactly these fields
_MISSING = object()
_env: SandboxedEnvironment | None = None


class Value(ABC):
    """A compiled input value. ``names`` are the result keys it reads; ``needs_view`` is True when
    it must see only the node's dependencies rather than all the results."""

    __slots__ = ("_names", "needs_view")

    def __init__(self, names: frozenset[str] = frozenset(), needs_view: bool = False) -> None:
        self._names = names
        self.needs_view = needs_view

    @property
    def names(self) -> frozenset[str]:
        """The result keys it reads (the first key of each selector in it)."""
        return self._names

    @abstractmethod
    def __call__(self, data: Mapping[str, Any]) -> Any:
        """Resolve against ``data`` (the results, or the node's view of it)."""


class Constant(Value):
    """A literal: resolves to itself."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def __call__(self, data: Mapping[str, Any]) -> Any:
        return self.value


class Path(Value):
    """A plain path: a walk over dict keys and list indexes, as jsonpath-python would do it."""

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.needs_view = False
        self.keys = keys

    @property
    def names(self) -> frozenset[str]:
        # Made when asked (compiling reads it once): a frozenset is 216 bytes, a Path 56.
        return frozenset(self.keys[:1])

    def __call__(self, data: Mapping[str, Any]) -> Any:
        value: Any = data
        for key in self.keys:
            if isinstance(value, dict):
                value = value.get(key, _MISSING)
                if value is _MISSING:
                    return None
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return None
        return value


class Pair(Path):
    """A plain path of two keys (``$.node.output``, the most common): ``Path``'s walk, with
    the two lookups of a hit spelled out."""

    __slots__ = ()

    def __call__(self, data: Mapping[str, Any]) -> Any:
        if isinstance(data, dict):
            first = data.get(self.keys[0], _MISSING)
            if isinstance(first, dict):
                value = first.get(self.keys[1], _MISSING)
                return None if value is _MISSING else value
        return Path.__call__(self, data)


class Selector(Value):
    """Any other JSONPath: one match -> the value, several -> a list, none -> None."""

    __slots__ = ("compiled", "source")

    def __init__(self, compiled: JSONPath, names: frozenset[str], source: str) -> None:
        super().__init__(names, needs_view=True)
        self.compiled = compiled
        self.source = source

    def __call__(self, data: Mapping[str, Any]) -> Any:
        """Resolve against ``data``.

        Raises:
            InputError: the selector failed on this data (too deep to walk, a filter that
                raised...): whatever data a run gets, it never raises anything else.
        """
        try:
            # JSONPath keeps its matches on the instance: a shallow copy keeps runs apart.
            matches = copy.copy(self.compiled).parse(dict(data))
        except Exception as exc:
            raise InputError(f"selector {self.source!r} failed: {unencodable(exc)}") from None
        if not matches:
            return None
        return matches[0] if len(matches) == 1 else matches


class Render(Value):
    """A Jinja2 template, compiled once, rendered with the result keys it names as variables."""

    __slots__ = ("source", "template")

    def __init__(self, template: Template, names: frozenset[str], source: str) -> None:
        super().__init__(names)
        self.template = template
        self.source = source

    def __call__(self, data: Mapping[str, Any]) -> Any:
        try:
            return self.template.render({name: data.get(name) for name in self.names})
        except Exception as exc:
            raise InputError(f"template {self.source!r} failed: {exc}") from exc


class Coalesce(Value):
    """``a || b || default``: the first selector with a non-null value; a literal ends the chain."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Value]) -> None:
        names = frozenset().union(*(part.names for part in parts))
        super().__init__(names, any(part.needs_view for part in parts))
        self.parts = parts

    def __call__(self, data: Mapping[str, Any]) -> Any:
        for part in self.parts:
            value = part(data)
            if value is not None or not isinstance(part, Path | Selector):
                return value
        return None


def compile_value(spec: Any, known: Collection[str]) -> Value:
    """Compile one input value. ``known`` are the names a selector or template may read.

    Raises:
        DefinitionError: a malformed selector or template, or one naming an unknown node
            (``field`` is left for the caller to fill in).
    """
    if not isinstance(spec, str):
        return Constant(spec)
    if " || " in spec and spec.lstrip().startswith("$"):  # only a selector starts a chain
        return Coalesce([_compile_one(part.strip(), known) for part in spec.split(" || ")])
    return _compile_one(spec, known)


def is_dynamic(spec: Any) -> bool:
    """Whether ``spec`` is read from the results (a selector, template or coalesce chain)."""
    return isinstance(spec, str) and (spec.startswith("$") or "{{" in spec or "{%" in spec)


def _compile_one(spec: str, known: Collection[str]) -> Value:
    if spec.startswith("$"):
        return compile_selector(spec, known)
    if "{{" in spec or "{%" in spec:
        return compile_template(spec, known)
    return Constant(spec)


def compile_selector(spec: str, known: Collection[str]) -> Path | Selector:
    """Compile a JSONPath selector; see ``compile_value``."""
    head = _HEAD.match(spec)
    name = next((group for group in head.groups() if group is not None), None) if head else None
    if name is not None and name not in known:
        raise DefinitionError(f"selector {spec!r} names unknown node {name!r}")
    if name is not None and name != "input":
        field = _FIELD.match(spec)
        _check_field(spec, name, next((g for g in field.groups() if g), None) if field else None)
    simple = _SIMPLE_PATH.fullmatch(spec)
    if simple:
        keys = tuple(
            next(group for group in match.groups() if group is not None)
            for match in _SEGMENT.finditer(simple.group(1))
        )
        return Pair(keys) if len(keys) == 2 else Path(keys)
    _check_syntax(spec)
    # optional: jsonpath-python is imported by the first selector that needs it (import time)
    from jsonpath import JSONPath

    try:
        compiled = JSONPath(spec)
    except Exception as exc:  # jsonpath-python's parser fails with IndexError, ValueError...
        raise DefinitionError(f"malformed selector {spec!r} ({type(exc).__name__})") from None
    return Selector(compiled, frozenset({name} if name else ()), spec)


def _check_field(spec: str, node: str, field: str | None) -> None:
    """Refuse a selector or template that reads a field a node's envelope does not have.

    Raises:
        DefinitionError: ``field`` is not ``status``, ``output`` or ``error``.
    """
    if field is not None and field not in ENVELOPE:
        close = difflib.get_close_matches(field, ENVELOPE, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DefinitionError(
            f"{spec!r} reads field {field!r} of node {node!r}, whose result has only "
            f"'status', 'output' and 'error'{hint}"
        )


def _template_fields(spec: str, parsed: Any, known: Collection[str]) -> None:
    """``_check_field`` for the ``node.field`` and ``node['field']`` a template reads
    (``known``: the nodes it reads, not the names it sets itself)."""
    # optional: Jinja2 is imported by the first template (it doubles import time)
    from jinja2 import nodes

    called = {id(call.node) for call in parsed.find_all(nodes.Call)}  # a.get(...): a method
    for found in parsed.find_all((nodes.Getattr, nodes.Getitem)):
        if id(found) in called:
            continue
        target = found.node
        if not isinstance(target, nodes.Name) or target.name == "input":
            continue
        if target.name not in known:
            continue
        if isinstance(found, nodes.Getattr):
            _check_field(spec, target.name, found.attr)
        elif isinstance(found.arg, nodes.Const) and isinstance(found.arg.value, str):
            _check_field(spec, target.name, found.arg.value)


def _check_syntax(spec: str) -> None:
    """jsonpath-python accepts almost any text; refuse what cannot be a JSONPath."""
    _check_brackets(spec)
    if not re.match(r"\$(\.|\[|$)", spec) or re.search(r"\.{3,}|\.$|\.\[|\[\]", spec):
        raise DefinitionError(f"malformed selector {spec!r}")
    if _ZERO_STEP.search(spec):
        raise DefinitionError(f"malformed selector {spec!r}: a slice step cannot be zero")
    if _outside_quotes(spec).count("..") > 1:  # each one multiplies the walk (it blocks the loop)
        raise DefinitionError(
            f"selector {spec!r} descends recursively ('..') more than once: its cost grows with "
            "a power of the data's size; use one '..' (then a filter or a path)"
        )
    for expression in _FILTER.findall(spec):
        python = re.sub(r"=~\s*/.*?/", "== ''", expression).replace("@", "_at_")
        try:
            ast.parse(python, mode="eval")
        except SyntaxError:
            raise DefinitionError(f"malformed filter {expression!r} in selector {spec!r}") from None


def _outside_quotes(spec: str) -> str:
    """``spec`` without its quoted parts (a quoted key may contain '..')."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", spec)


def _check_brackets(spec: str) -> None:
    """Refuse a selector whose brackets, parentheses or quotes do not balance."""
    depth = {"[": 0, "(": 0}
    closing = {"]": "[", ")": "("}
    quote = None
    for char in spec:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                raise DefinitionError(f"malformed selector {spec!r}: unbalanced {char!r}")
    if quote or any(depth.values()):
        raise DefinitionError(f"malformed selector {spec!r}: unclosed bracket or quote")


def environment() -> SandboxedEnvironment:
    """The shared Jinja2 environment: sandboxed and immutable (a template can call no method
    that changes a dict, list or set: the results and the run input are read-only to it);
    missing values render empty."""
    global _env
    if _env is None:
        # optional: Jinja2 is imported by the first template (it doubles import time)
        from jinja2 import ChainableUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        _env = ImmutableSandboxedEnvironment(
            undefined=ChainableUndefined, keep_trailing_newline=True
        )
    return _env


def compile_template(spec: str, known: Collection[str]) -> Render:
    """Compile a Jinja2 template; see ``compile_value``."""
    # optional: Jinja2 is imported by the first template (it doubles import time)
    from jinja2 import TemplateSyntaxError, meta

    env = environment()
    try:
        parsed = env.parse(spec)
        names = meta.find_undeclared_variables(parsed) - set(env.globals)  # compiles it
        template = env.from_string(parsed)
    except TemplateSyntaxError as exc:  # TemplateAssertionError too: an unknown filter or test
        raise DefinitionError(f"template {spec!r} has a syntax error: {exc.message}") from None
    unknown = sorted(names - set(known))
    if unknown:
        hyphenated = sorted(name for name in known if "-" in name and name in spec)
        hint = (
            f" ({hyphenated[0]!r} has a '-': a template cannot name it; read it with a selector "
            "in another input, or name the node without '-')"
            if hyphenated
            else ""
        )
        raise DefinitionError(f"template {spec!r} names unknown node {unknown[0]!r}{hint}")
    _template_fields(spec, parsed, names)
    return Render(template, frozenset(names), spec)


def view(results: Mapping[str, Any], names: Collection[str]) -> dict[str, Any]:
    """The part of ``results`` a node may read: its dependencies and the run input."""
    return {name: results[name] for name in names if name in results}
