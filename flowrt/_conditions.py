"""Choice conditions: ``Condition(path, op, value)``, combined with ``&``, ``|`` and ``~``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, get_args

from ._errors import DefinitionError
from ._resolve import Value, compile_selector

Op = Literal[
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not_in",
    "contains",
    "exists",
    "not_exists",
    "startswith",
    "endswith",
    "matches",
]
OPS: frozenset[str] = frozenset(get_args(Op))


def _contains(left: Any, right: Any) -> bool:
    return right in left


def _not_in(left: Any, right: Any) -> bool:
    return left not in right


def _startswith(left: Any, right: Any) -> bool:
    return isinstance(left, str) and left.startswith(right)


def _endswith(left: Any, right: Any) -> bool:
    return isinstance(left, str) and left.endswith(right)


def _matches(left: Any, right: re.Pattern[str]) -> bool:
    return isinstance(left, str) and right.search(left) is not None


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda left, right: left in right,
    "not_in": _not_in,
    "contains": _contains,
    "startswith": _startswith,
    "endswith": _endswith,
    "matches": _matches,
}


class Expr:
    """Base of conditions: combine with ``&`` (and), ``|`` (or), ``~`` (not)."""

    def __and__(self, other: Expr) -> Expr:
        return _All((self, other))

    def __or__(self, other: Expr) -> Expr:
        return _Any((self, other))

    def __invert__(self) -> Expr:
        return _Not(self)

    def compile(self, known: Collection[str]) -> CompiledCondition:
        """Check the condition against the workflow's names and precompile its paths.

        Raises:
            DefinitionError: an unknown operator, or a malformed path or one naming an unknown node.
        """
        raise DefinitionError(f"{type(self).__name__} cannot be compiled")

    def to_data(self) -> dict[str, Any]:
        """The condition as plain data, the form workflow files use."""
        raise DefinitionError(f"{type(self).__name__} has no data form")


CompiledCondition = Callable[[Mapping[str, Any]], bool]


class Condition(Expr):
    """``Condition(path, op, value)``: whether the value at ``path`` compares to ``value``.

    ``op`` is one of ``== != < <= > >= in not_in contains exists not_exists startswith endswith
    matches``; ``exists`` holds when the path resolves to a non-null value; ``startswith`` and
    ``endswith`` hold for a string with that prefix or suffix; ``matches`` when ``re.search`` finds
    the pattern ``value`` in a string. A comparison between values that cannot be compared
    (``None < 3``) does not hold.
    """

    def __init__(self, path: str, op: Op, value: Any = None) -> None:
        self.path = path
        self.op = op
        self.value = value

    def __repr__(self) -> str:
        return f"Condition({self.path!r}, {self.op!r}, {self.value!r})"

    def compile(self, known: Collection[str]) -> CompiledCondition:
        if self.op not in OPS:
            raise DefinitionError(f"unknown operator {self.op!r}; use one of {sorted(OPS)}")
        if not isinstance(self.path, str) or not self.path.startswith("$"):
            raise DefinitionError(f"condition path {self.path!r} is not a selector ($...)")
        selector = compile_selector(self.path, known)
        value = self.value
        if self.op in ("startswith", "endswith") and not isinstance(value, str):
            raise DefinitionError(f"{self.op} needs a string value, got {value!r}")
        if self.op == "matches":
            value = _pattern(value)
        return _Test(selector, self.op, value)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "op": self.op}
        return data if self.value is None else {**data, "value": self.value}


def _pattern(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise DefinitionError(f"matches needs a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise DefinitionError(f"matches: invalid regular expression {value!r}: {exc}") from None


class _Test:
    __slots__ = ("names", "needs_view", "op", "selector", "value")

    def __init__(self, selector: Value, op: str, value: Any) -> None:
        self.selector = selector
        self.op = op
        self.value = value
        self.names = selector.names
        self.needs_view = selector.needs_view

    def __call__(self, data: Mapping[str, Any]) -> bool:
        found = self.selector(data)
        if self.op == "exists":
            return found is not None
        if self.op == "not_exists":
            return found is None
        try:
            return bool(_BINARY[self.op](found, self.value))
        except TypeError:
            return False


class _All(Expr):
    key = "all"

    def __init__(self, parts: tuple[Expr, ...]) -> None:
        self.parts = parts

    def to_data(self) -> dict[str, Any]:
        return {self.key: [part.to_data() for part in self.parts]}

    def compile(self, known: Collection[str]) -> CompiledCondition:
        compiled = [part.compile(known) for part in self.parts]
        return _named(lambda data: all(test(data) for test in compiled), compiled)


class _Any(_All):
    key = "any"

    def compile(self, known: Collection[str]) -> CompiledCondition:
        compiled = [part.compile(known) for part in self.parts]
        return _named(lambda data: any(test(data) for test in compiled), compiled)


class _Not(Expr):
    def __init__(self, part: Expr) -> None:
        self.part = part

    def to_data(self) -> dict[str, Any]:
        return {"not": self.part.to_data()}

    def compile(self, known: Collection[str]) -> CompiledCondition:
        inner = self.part.compile(known)
        return _named(lambda data: not inner(data), [inner])


class _Combined:
    __slots__ = ("names", "needs_view", "test")

    def __init__(self, test: CompiledCondition, names: frozenset[str]) -> None:
        self.test = test
        self.names = names
        self.needs_view = True

    def __call__(self, data: Mapping[str, Any]) -> bool:
        return self.test(data)


def _named(test: CompiledCondition, parts: list[CompiledCondition]) -> _Combined:
    names: frozenset[str] = frozenset().union(*(names_of(part) for part in parts))
    return _Combined(test, names)


def names_of(compiled: CompiledCondition) -> frozenset[str]:
    """The store keys a compiled condition reads (empty for a plain callable)."""
    names: object = getattr(compiled, "names", None)
    return names if isinstance(names, frozenset) else frozenset()
