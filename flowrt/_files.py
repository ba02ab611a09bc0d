"""The shape of a workflow file (``WorkflowFile``; ``flowrt schema`` prints its JSON Schema): a
pydantic schema that ``_loader`` reads definitions with."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._conditions import Op
from ._models import PolicyFields, RetryFields
from ._nodes import Trigger

CallRef = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConditionFile(_File):
    """``{path, op, value}``: see ``flowrt.Condition``."""

    path: str
    op: Op
    value: Any = None


class AllFile(_File):
    """Every condition holds."""

    all: list[ConditionData] = Field(min_length=1)


class AnyFile(_File):
    """At least one condition holds."""

    any: list[ConditionData] = Field(min_length=1)


class NotFile(_File):
    """The condition does not hold."""

    not_: ConditionData = Field(alias="not")


ConditionData = ConditionFile | AllFile | AnyFile | NotFile


class ErrorHandlingFile(PolicyFields):
    """``ErrorHandling`` with ``retry_on`` as exception names (``ConnectionError``,
    ``package.module:MyError``)."""

    retry_on: list[str] | None = None


class MapFile(_File):
    """A map node's items (a selector or a list) and bounds."""

    items: Any
    concurrency: int | None = Field(default=None, ge=1)
    tolerated_failures: int | float | None = Field(default=None, ge=0)


class LoopFile(_File):
    """A loop node's limit and what happens when it is reached."""

    max_loops: int = Field(default=15, ge=1)
    on_max_loops: Literal["raise", "return"] = "raise"
    finalize: CallRef | None = None


class WaitFile(_File):
    """A wait node: the signal it takes, how long, and its payload's schema (a pydantic model,
    as ``package.module:Model``, or a JSON Schema written inline)."""

    signal: str | None = None
    timeout_seconds: float | None = None
    schema_: CallRef | dict[str, Any] | None = Field(default=None, alias="schema")


class SleepFile(_File):
    """A sleep node: ``seconds``, or ``until`` (a selector or template)."""

    seconds: float | None = None
    until: Any = None


class ChildCall(_File):
    """A child workflow named by where its object lives: ``{call: "pkg.mod:kyc"}``."""

    call: CallRef


class RunLimitFile(_File):
    """``{key, max_runs, strategy}``: see ``flowrt.RunLimit``."""

    key: str | None = None
    max_runs: int = 1
    strategy: Literal["queue", "cancel_newest", "cancel_in_progress"] = "queue"


class RateLimitFile(_File):
    """``{name, limit, per_seconds, key, burst, max_wait_seconds}``: see ``flowrt.RateLimit``."""

    name: str
    limit: int
    per_seconds: float = 1.0
    key: str | None = None
    burst: int = 0
    max_wait_seconds: float | None = None


class NodeFile(_File):
    """One node: ``call`` (a task, or with ``map``/``loop``), ``choice``, ``wait``, ``sleep``
    or ``workflow`` (a sub-workflow: a file relative to this one, ``{call: "pkg.mod:wf"}``,
    or the child written inline; with ``map``, one child per item)."""

    name: str
    description: str | None = None
    call: CallRef | None = None
    workflow: str | ChildCall | dict[str, Any] | None = None
    input: Any = None
    run_id: str | None = None
    detach: bool = False
    choice: dict[str, ConditionData | None] | None = None
    wait: WaitFile | None = None
    sleep: SleepFile | None = None
    map: MapFile | None = None
    loop: LoopFile | None = None
    depends: list[str] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict)
    error_handling: ErrorHandlingFile | None = None
    trigger: Trigger = "all"
    executor: str | dict[str, dict[str, Any]] | None = None
    rate_limit: RateLimitFile | list[RateLimitFile] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [self.call, self.choice, self.wait, self.sleep, self.workflow]
        if sum(kind is not None for kind in kinds) != 1:
            raise ValueError("a node has one of `call`, `choice`, `wait`, `sleep` or `workflow`")
        if self.call is None and (self.loop or self.inputs):
            raise ValueError("only a `call` node takes `loop` or `inputs`")
        if self.call is None and self.workflow is None and self.map:
            raise ValueError("only a `call` or `workflow` node takes `map`")
        if self.map is not None and self.loop is not None:
            raise ValueError("a node is a map or a loop, not both")
        return self


class WorkflowFile(_File):
    """A workflow file: its name, nodes, and optional output mapping, retry and concurrency cap."""

    name: str
    description: str | None = None
    output: dict[str, Any] | None = None
    retry: RetryFields | None = None
    max_concurrency: int | None = Field(default=None, ge=1)
    fail_fast: bool = False
    executor: str | dict[str, dict[str, Any]] | None = None
    run_limit: RunLimitFile | list[RunLimitFile] | None = None
    paths: list[str] = Field(default_factory=list)
    nodes: list[NodeFile] = Field(min_length=1)
