"""JSON Schema for the rules a model checks across its fields, so that the OpenAPI document states them too.

Pydantic documents each field on its own; a rule over several fields ("exactly one of ``event``, ``segment``,
``date_attribute``, ``schedule``") lives in a validator. These helpers write the same rule as JSON Schema, for a
model's ``json_schema_extra``: an optional field counts as given when it is present and not ``null``, as the
validators read it (``None`` is the field's default).

Free-form JSON (event properties, profile attributes, segment filter values) has limits at every level (names,
depth, numbers DynamoDB can hold, string lengths). Pydantic cannot point at a shared definition from a field,
so a field names its level with :func:`free_json`, and :func:`add_free_json_components` turns the marks into
``$ref`` s to components ``FreeJsonLevel1`` ... once the OpenAPI document is built.

Pydantic also takes more than a schema says (``true`` for 1, ``"5"`` for 5, ``0`` for false): request bodies
type their scalars with :data:`JSON_INTEGER`, :data:`JSON_NUMBER` and :data:`JsonBool`, which take what JSON
Schema's ``integer``, ``number`` and ``boolean`` do.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING, Any

from pydantic import BeforeValidator, StrictBool

if TYPE_CHECKING:
    from collections.abc import Callable

# The mark a node carries until add_free_json_components replaces it (value: the level, 1 = the value itself).
FREE_JSON_MARK = "x-free-json-level"
FREE_JSON_COMPONENT = "FreeJsonLevel{level}"
# What a free value's scalars may be (kairos.customers.schemas.check_free_json): DynamoDB holds 38 digits and
# magnitudes from 1e-130, and a float must stay below 1e38 (a whole float is read back as an integer). A whole
# number (0 included) is an integer to JSON Schema, whichever way it is written.
_MAX_INTEGER = 10**38 - 1
_FREE_NUMBER: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": -_MAX_INTEGER, "maximum": _MAX_INTEGER},
        {"type": "number", "minimum": 1e-130, "exclusiveMaximum": 1e38},
        {"type": "number", "exclusiveMinimum": -1e38, "maximum": -1e-130},
    ]
}


def _json_number(what: str) -> Callable[[Any], Any]:
    # Pydantic takes true for 1 and "5" for 5; JSON Schema's integer and number take neither.
    def check(value: Any) -> Any:
        if isinstance(value, bool | str):
            raise ValueError(f"must be a JSON {what}")
        return value

    return check


# Scalars as JSON Schema types them, for request bodies: an integer may be written 5.0 (JSON Schema's integer),
# never true or "5"; a boolean is true or false, never 0 or "yes". The validators go last in an Annotated, after
# the bounds: before them, pydantic would leave ge/le out of the JSON Schema (Annotated[int, Field(ge=1),
# JSON_INTEGER]).
JSON_INTEGER = BeforeValidator(_json_number("integer"))
JSON_NUMBER = BeforeValidator(_json_number("number"))
JsonBool = StrictBool


def given(*names: str) -> dict[str, Any]:
    """Each of ``names`` is present and not ``null``."""
    return {"required": list(names), "properties": {name: {"not": {"type": "null"}} for name in names}}


def left_out(*names: str) -> dict[str, Any]:
    """Each of ``names`` is absent or ``null``."""
    return {"properties": {name: {"type": "null"} for name in names}}


def empty(name: str) -> dict[str, Any]:
    """The list ``name`` is absent or empty (a list field's default)."""
    return {"properties": {name: {"maxItems": 0}}}


def no_two(*left_outs: dict[str, Any]) -> dict[str, Any]:
    """At most one of several parts is given, each part's absence written as ``left_out(...)`` or ``empty(...)``."""
    return {"allOf": [{"anyOf": [first, second]} for first, second in combinations(left_outs, 2)]}


def exactly_one(*names: str) -> dict[str, Any]:
    """Exactly one of ``names`` is given (present and not ``null``)."""
    return {"oneOf": [given(name) for name in names]}


def when(condition: dict[str, Any], then: dict[str, Any], otherwise: dict[str, Any] | None = None) -> dict[str, Any]:
    """``then`` holds for an instance that meets ``condition`` (and ``otherwise``, when given, for the others)."""
    rule = {"if": condition, "then": then}
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


def rules(*schemas: dict[str, Any]) -> dict[str, Any]:
    """A model's ``json_schema_extra``: every rule holds (``allOf``).

    Example
    -------
    >>> class Entry(BaseModel):
    ...     model_config = ConfigDict(json_schema_extra=rules(exactly_one("event", "segment")))
    """
    return {"allOf": list(schemas)}


def free_json(level: int, **schema: Any) -> dict[str, Any]:
    """A free JSON value at ``level`` (1: the field's value itself), with ``schema``'s keywords beside it."""
    return {FREE_JSON_MARK: level, **schema}


def free_json_components(max_depth: int, max_name_chars: int, max_string_chars: int) -> dict[str, dict[str, Any]]:
    """The components ``FreeJsonLevel1`` ... ``FreeJsonLevel<max_depth + 1>``: a value at each level.

    An object or array may sit at levels 1 to ``max_depth``; below that only scalars.
    """
    scalar = [{"type": "null"}, {"type": "boolean"}, {"type": "string", "maxLength": max_string_chars}, _FREE_NUMBER]
    out: dict[str, dict[str, Any]] = {}
    for level in range(max_depth + 1, 0, -1):
        name = FREE_JSON_COMPONENT.format(level=level)
        if level > max_depth:
            out[name] = {"description": "a JSON scalar: nested too deep for an object or array", "anyOf": scalar}
            continue
        inner = {"$ref": f"#/components/schemas/{FREE_JSON_COMPONENT.format(level=level + 1)}"}
        out[name] = {
            "description": f"a JSON value at nesting level {level} of {max_depth}",
            "anyOf": [
                *scalar,
                {"type": "array", "items": inner},
                {
                    "type": "object",
                    "propertyNames": {"minLength": 1, "maxLength": max_name_chars},
                    "additionalProperties": inner,
                },
            ],
        }
    return dict(sorted(out.items()))


def add_free_json_components(doc: dict[str, Any], components: dict[str, dict[str, Any]]) -> None:
    """Replace every :func:`free_json` mark in an OpenAPI document by its ``$ref``, and add ``components``."""
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            level = node.pop(FREE_JSON_MARK, None)
            if level is not None:
                node["$ref"] = f"#/components/schemas/{FREE_JSON_COMPONENT.format(level=level)}"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    doc.setdefault("components", {}).setdefault("schemas", {}).update(components)
