"""A wait's payload schema: a pydantic model or a JSON Schema dict. Checked when the workflow
is compiled, applied to each payload sent, and shown to HTTP clients (OpenAPI)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from pydantic import BaseModel, ValidationError

from .._errors import DefinitionError, InputError


def check_schema(schema: Any, node: str) -> None:
    """Check a wait's ``schema``: None (any JSON), a pydantic model, or a valid JSON Schema.

    Raises:
        DefinitionError: anything else, naming the node and what is wrong.
    """
    if schema is None or (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return
    if not isinstance(schema, Mapping):
        why = f"must be a pydantic model or a JSON Schema dict (or None), got {schema!r}"
        raise DefinitionError(why, node=node, field="schema")
    try:
        json.dumps(schema, allow_nan=False)
        validators.validator_for(schema).check_schema(dict(schema))
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"not JSON: {exc}", node=node, field="schema") from None
    except schema_errors.SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the root"
        why = f"not a valid JSON Schema (at {where}): {exc.message}"
        raise DefinitionError(why, node=node, field="schema") from None


def validated(schema: Any, name: str, payload: Any) -> Any:
    """``payload`` (plain JSON) checked against ``schema``; a model's payload is its JSON form.

    Raises:
        InputError: the payload fails the schema; ``field`` is ``payload.<path>``.
    """
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(payload).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            raise _failed(name, [str(part) for part in first["loc"]], first["msg"]) from None
    if isinstance(schema, Mapping):
        error = schema_errors.best_match(
            validators.validator_for(schema)(schema).iter_errors(payload)
        )
        if error is not None:
            raise _failed(name, [str(part) for part in error.absolute_path], error.message)
    return payload


def _failed(name: str, path: list[str], message: str) -> InputError:
    where = ".".join(path)
    field = f"payload.{where}" if where else "payload"
    return InputError(f"signal {name!r}: {where or 'payload'}: {message}", field=field)


def json_schema(schema: Any) -> dict[str, Any]:
    """The JSON Schema of a payload (``{}``: any JSON), self-contained: a model's ``$defs``
    written in place, so that it can sit inside an OpenAPI document."""
    if schema is None:
        return {}
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        found = schema.model_json_schema()
    else:
        found = dict(schema)
    defs = found.pop("$defs", {})
    inlined: dict[str, Any] = _inlined(found, defs, 0)
    return inlined


def _inlined(value: Any, defs: Mapping[str, Any], depth: int) -> Any:
    if isinstance(value, list):
        return [_inlined(item, defs, depth) for item in value]
    if not isinstance(value, dict):
        return value
    ref = value.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 8:
        target = defs.get(ref.removeprefix("#/$defs/"), {})
        return _inlined(target, defs, depth + 1)
    return {key: _inlined(item, defs, depth) for key, item in value.items()}
