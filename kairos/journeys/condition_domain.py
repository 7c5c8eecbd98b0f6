"""A journey's conditions as the API accepts them: an entry's ``where``, a wait's, a split's branches.

A condition reads a field of the event that let the customer in (``event.amount``), of the event itself (in an
entry's ``where``: ``amount``, ``properties.<key>``), a saved segment's membership (``segment``), or any segment
filter field (``purchase_count``, ``attributes.<name>``) with the same rules as a segment's filters.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kairos.audiences.domain import (
    COMPARISONS,
    NON_HISTORY_FIELD_PATTERN,
    NUMERIC_FIELD_PATTERN,
    PRODUCT_FIELDS,
    Filter,
)
from kairos.core.constants import EVENT_TYPE_PATTERN, EVENT_TYPES
from kairos.core.schema_rules import free_json, rules, when

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists", "not_exists", "contains"]
EVENT_FIELDS = ("type", "channel", "product_id", "quantity", "amount", "currency", "text", "message_id")


def _event_type(value: str) -> str:
    if not re.match(EVENT_TYPE_PATTERN, value):
        raise ValueError(
            f"'{value}' is not an event type: one of {', '.join(EVENT_TYPES)}, or your own in lower-case letters, "
            "digits and underscores (order_shipped)"
        )
    return value


EventType = Annotated[
    str,
    AfterValidator(_event_type),
    Field(
        description="a built-in event type or your own (lower-case letters, digits and underscores)",
        json_schema_extra={"pattern": EVENT_TYPE_PATTERN},
    ),
]

# A condition's field names, as patterns: the entering event's (event.amount), the event's own (in an entry's
# where: amount, properties.<key>), segment, and a segment filter's (purchase_count, attributes.<name>).
_OWN_FIELDS = "|".join([*(re.escape(f) for f in EVENT_FIELDS), r"properties\.[\s\S]+"])
_FILTER_FIELDS = NON_HISTORY_FIELD_PATTERN.strip("^$")
OWN_FIELD_PATTERN = rf"^({_OWN_FIELDS})$"
CONDITION_FIELD_PATTERN = rf"^(event\.({_OWN_FIELDS})|segment|{_OWN_FIELDS}|{_FILTER_FIELDS})$"
CUSTOMER_FIELD_PATTERN = rf"^(event\.({_OWN_FIELDS})|segment|{_FILTER_FIELDS})$"
_NOT_CONTAINS = [op for op in get_args(Op) if op != "contains"]


def _field(pattern: str) -> dict[str, Any]:
    return {"required": ["field"], "properties": {"field": {"type": "string", "pattern": pattern}}}


def _op(*ops: str) -> dict[str, Any]:
    return {"required": ["op"], "properties": {"op": {"enum": list(ops)}}}


def _value(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": ["value"], "properties": {"value": schema}}


# Condition._check as JSON Schema: a segment filter's field takes a filter's op and value (but contains, which
# reads lists and strings); segment is compared with a segment's name. op defaults to eq.
_A_FILTER = rules(_field(NON_HISTORY_FIELD_PATTERN), {"properties": {"op": {"enum": _NOT_CONTAINS}}})
_CONDITION_RULES = rules(
    when(_op("in"), _value({"type": "array"})),
    when(_op("gt", "gte", "lt", "lte"), _value({"anyOf": [{"type": "number"}, {"type": "string"}]})),
    when(_field("^segment$"), rules({"properties": {"op": {"enum": ["eq", "ne"]}}}, _value({"type": "string"}))),
    when(_A_FILTER, {"properties": {"value": free_json(1)}}),
    when(
        rules(_field(NUMERIC_FIELD_PATTERN), {"properties": {"op": {"enum": list(COMPARISONS)}}}),
        _value({"type": "number"}),
    ),
    when(rules(_A_FILTER, {"properties": {"field": {"enum": list(PRODUCT_FIELDS)}}}), _value({"type": "string"})),
)


class Condition(BaseModel):
    """One condition of a split or an entry.

    ``field`` is ``event.<name>`` (the event that started the journey: ``event.amount``,
    ``event.properties.<key>``), any audience filter field (``attributes.<name>``, ``purchase_count``,
    ``consent.email``... as in segments), or ``segment`` (``value``: a saved segment's name, ``op`` ``eq``/``ne``).
    In an entry's ``where``, fields are the entering event's own (``amount``, ``properties.<key>``).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_CONDITION_RULES)

    field: Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": CONDITION_FIELD_PATTERN})]
    op: Op = "eq"
    value: Any = None

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError("'in' takes a list")
        if self.op in ("gt", "gte", "lt", "lte") and (
            not isinstance(self.value, int | float | str) or isinstance(self.value, bool)
        ):
            raise ValueError(f"'{self.op}' compares with a number or a string")
        f = self.field
        if f.startswith("event."):
            rest = f[len("event.") :]
            if rest not in EVENT_FIELDS and not (rest.startswith("properties.") and len(rest) > len("properties.")):
                raise ValueError(f"unknown event field '{rest}' (one of {', '.join(EVENT_FIELDS)}, properties.<key>)")
        elif f == "segment":
            if self.op not in ("eq", "ne") or not isinstance(self.value, str):
                raise ValueError("'segment' takes op eq or ne and a segment name")
        elif not own_event_field(f) and self.op != "contains":
            Filter(field=f, op=self.op, value=self.value)  # the same rules as a segment's filters
        elif not own_event_field(f):
            Filter(field=f, op="exists")  # contains reads a list or a string: a filter's field, by its name only
        return self


def own_event_field(name: str) -> bool:
    """Whether ``name`` is a field of the event itself (``amount``, ``properties.<key>``)."""
    return name in EVENT_FIELDS or (name.startswith("properties.") and len(name) > len("properties."))
