"""Audiences: filters over customers' profiles, aggregates and history, and saved segments (named audiences)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from kairos.core.constants import CHANNELS, EVENT_TYPE_PATTERN
from kairos.core.schema_rules import JSON_INTEGER, empty, exactly_one, free_json, given, left_out, no_two, rules, when
from kairos.customers.schemas import _ID_PATTERN, MAX_ATTRIBUTES_BYTES, check_free_json
from kairos.messaging.content import Channel

# Filter fields over profiles and aggregates. Each names what it reads, so a marketer can guess it.
NUMERIC_FIELDS = {
    "purchase_count": "number of purchases (purchase moments)",
    "monetary_total": "sum of purchase amounts",
    "engagement_moments": "number of engagement moments of the customer's own (clock hours with a session, open, "
    "click or purchase not naming a message)",
    "days_since_last_purchase": "days since the last purchase (no purchase: never matches)",
    "days_since_last_engagement": "days since the last engagement, opens and clicks of messages included "
    "(none: never matches)",
    "cart_abandon_amount": "amount of the last abandoned cart",
    "days_since_cart_abandon": "days since the last abandoned cart",
    "days_in_stage": "days since the customer reached their current stage (no stage: never matches)",
    "points.balance": "loyalty points held now (expired points do not count)",
    "points.expiring": "loyalty points that expire next (0 when none expire)",
    "points.days_to_expiry": "days before the next loyalty points expire (none dated: never matches)",
}

# Fields read from the latest scoring run's RFM (see kairos.insights.measures).
RFM_NUMERIC_FIELDS = {
    "rfm.r": "recency score 1..5 (5 = most recent)",
    "rfm.f": "frequency score 1..5 (5 = most purchases)",
    "rfm.m": "monetary score 1..5 (5 = highest spend)",
}

# Fields read from the latest scoring run's lifecycle predictions (see kairos.models.lifecycle).
LIFECYCLE_FIELDS = {
    "lifecycle.purchase_probability_90d": "probability of a purchase in the next 90 days (0..1, calibrated)",
    "lifecycle.expected_spend_90d": "expected spend in the next 90 days",
    "lifecycle.days_to_next_purchase": "days until the soonest expected repurchase of a consumable product the "
    "customer bought (none expected: never matches)",
}

# The RFM group's field before "segment" was kept for saved audiences: refused with a message that names the
# new field, so a client moves in one step.
RENAMED_RFM_FIELD = "rfm.segment"

ORDER_FIELDS = {
    "orders.last_amount": "amount of the customer's latest order (one purchase moment, its lines summed)",
    "orders.max_amount": "amount of the customer's largest recent order",
}

# Counts over a window of days (``within_days``) in the customer's history.
HISTORY_FIELDS = {
    "events": "events.<type>: events of that type (optionally on ``channel``) in the last ``within_days`` days",
    "messages": "messages.<status>: messages sent/delivered/failed/skipped (optionally on ``channel``, of "
    "``campaign_id``) in the last ``within_days`` days",
}

MESSAGE_STATUSES = ("sent", "skipped", "failed", "unconfirmed", "any")

BOOLEAN_FIELDS = {f"consent.{c}": f"whether the profile grants consent for {c}" for c in CHANNELS}
PRODUCT_FIELDS = {
    "bought_product": "the customer bought this product id (recent purchase memory)",
    "viewed_product": "the customer viewed, added to cart or bought this product id recently",
}
TEXT_FIELDS = {
    "rfm.group": "the RFM group of the latest scoring run (champions, loyal, at risk...)",
    "stage": "the funnel stage the latest event naming one put the customer in (properties.stage)",
    "previous_stage": "the stage the customer was in before the current one",
}

# The names the customer view shows the aggregates by (``GET /v1/customers/{id}``: ``aggregates.purchase_count``):
# a reader copies them from there, so they are read as the filter field they show.
FIELD_ALIASES = {
    "aggregates.purchase_count": "purchase_count",
    "aggregates.monetary_total": "monetary_total",
    "aggregates.engagement_moments": "engagement_moments",
    "aggregates.last_cart_abandon_amount": "cart_abandon_amount",
}


class FilterField(NamedTuple):
    """One row of the filter field reference: the field as written, what its ``value`` is, what it reads."""

    field: str
    value: str
    meaning: str


def filter_fields() -> list[FilterField]:
    """Every field a segment filter may read, as the validation of :class:`Filter` accepts them.

    Returns
    -------
    list of FilterField
        In reference order; a pattern (``attributes.<name>``) stands for a family of fields.

    Example
    -------
    >>> [f.field for f in filter_fields()][:2]
    ['purchase_count', 'monetary_total']
    """
    rows = [FilterField(f, "number", m) for f, m in NUMERIC_FIELDS.items()]
    rows += [FilterField(f, "number", m) for f, m in ORDER_FIELDS.items()]
    rows += [FilterField(f, "text", m) for f, m in TEXT_FIELDS.items()]
    rows += [FilterField(f, "number", m) for f, m in RFM_NUMERIC_FIELDS.items()]
    rows += [FilterField(f, "number", m) for f, m in LIFECYCLE_FIELDS.items()]
    rows += [FilterField(f, "product id", m) for f, m in PRODUCT_FIELDS.items()]
    rows.append(FilterField("attributes.<name>", "any JSON value", "a profile attribute (`attributes.tier`)"))
    rows += [FilterField(f, "true or false", m) for f, m in BOOLEAN_FIELDS.items()]
    rows.append(
        FilterField(
            "events.<type>",
            "number (a count)",
            "events of a type, built-in or your own, in the last `within_days` days (optionally on `channel`)",
        )
    )
    rows.append(
        FilterField(
            "messages.<status>",
            "number (a count)",
            f"messages with a status ({', '.join(MESSAGE_STATUSES)}: every outcome) in the last `within_days` "
            "days (optionally on `channel`, of `campaign_id`)",
        )
    )
    return rows


def is_filter_field(name: str) -> bool:
    """Whether ``name`` is a field of :func:`filter_fields` (a pattern's member included; aliases are not)."""
    if name.startswith("attributes."):
        return len(name) > len("attributes.")
    if name.startswith("events."):
        return re.match(EVENT_TYPE_PATTERN, name[len("events.") :]) is not None
    if name.startswith("messages."):
        return name[len("messages.") :] in MESSAGE_STATUSES
    return name in {f.field for f in filter_fields()}


def _unknown_field(name: str) -> str:
    fields = ", ".join(f.field for f in filter_fields())
    return f"unknown filter field '{name}': use one of {fields}"


MAX_GROUP_DEPTH = 5

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists", "not_exists"]
COMPARISONS = ("gt", "gte", "lt", "lte", "eq", "ne")


def _names(names: list[str]) -> str:
    return "|".join(re.escape(n) for n in names)


# The filter fields as patterns, for the OpenAPI document (is_filter_field and Filter._check decide).
_NUMERIC = [*NUMERIC_FIELDS, *RFM_NUMERIC_FIELDS, *LIFECYCLE_FIELDS, *ORDER_FIELDS]
_NUMERIC_NAMES = _names([*_NUMERIC, *(alias for alias, name in FIELD_ALIASES.items() if name in _NUMERIC)])
_EVENTS = r"events\." + EVENT_TYPE_PATTERN.strip("^$")
_MESSAGES = rf"messages\.({_names(list(MESSAGE_STATUSES))})"
_OTHER_NAMES = _names([*TEXT_FIELDS, *PRODUCT_FIELDS, *BOOLEAN_FIELDS]) + r"|attributes\.[\s\S]+"
FILTER_FIELD_PATTERN = rf"^({_NUMERIC_NAMES}|{_OTHER_NAMES}|{_EVENTS}|{_MESSAGES})$"
NUMERIC_FIELD_PATTERN = rf"^({_NUMERIC_NAMES})$"
NON_HISTORY_FIELD_PATTERN = rf"^({_NUMERIC_NAMES}|{_OTHER_NAMES})$"


def _field_matches(pattern: str, **others: Any) -> dict[str, Any]:
    """A condition whose ``field`` matches ``pattern`` (and whose other properties, when present, ``others``)."""
    return {"required": ["field"], "properties": {"field": {"type": "string", "pattern": f"^({pattern})$"}, **others}}


def _value_is(json_type: str) -> dict[str, Any]:
    return {"required": ["value"], "properties": {"value": {"type": json_type}}}


# Filter._check as JSON Schema: a group holds exactly one of all/any/not and no part of a condition; a condition
# holds no group, and the window, channel, campaign and value its field reads. op defaults to eq, a comparison.
_FILTER_RULES = rules(
    when(
        given("field"),
        left_out("all", "any", "not"),
        rules(exactly_one("all", "any", "not"), left_out("value", "within_days", "channel", "campaign_id")),
    ),
    when(
        _field_matches(f"{_NUMERIC_NAMES}|{_EVENTS}|{_MESSAGES}", op={"enum": list(COMPARISONS)}), _value_is("number")
    ),
    when(_field_matches(f"{_EVENTS}|{_MESSAGES}"), given("within_days")),
    when(_field_matches(f"{_NUMERIC_NAMES}|{_OTHER_NAMES}"), left_out("within_days", "channel")),
    when(rules(given("field"), given("campaign_id")), _field_matches(_MESSAGES)),
    when(rules(given("field"), {"required": ["op"], "properties": {"op": {"const": "in"}}}), _value_is("array")),
    when(_field_matches(_names(list(PRODUCT_FIELDS))), _value_is("string")),
)


class Filter(BaseModel):
    """One condition, or a group of conditions.

    A condition reads ``field`` (every one is in :func:`filter_fields`; ``FIELD_ALIASES`` are read as the field they
    name): a numeric aggregate (see NUMERIC_FIELDS), ``orders.last_amount`` /
    ``orders.max_amount``, ``rfm.group`` / ``rfm.r`` / ``rfm.f`` / ``rfm.m`` and ``lifecycle.*`` (the latest
    scoring run),
    ``bought_product``, ``viewed_product``, ``attributes.<name>``, ``consent.<channel>``, or a count over the
    last ``within_days`` days: ``events.<type>`` (optionally on ``channel``) or ``messages.<status>``
    (optionally on ``channel`` and of ``campaign_id``; status ``any`` counts every outcome).

    A group holds exactly one of ``all`` (every member holds), ``any`` (at least one) or ``not`` (the member
    does not hold), and nothing of a condition; groups nest up to five levels. A ``value`` follows the limits of
    profile attributes.
    """

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, serialize_by_alias=True, json_schema_extra=_FILTER_RULES
    )

    field: Annotated[
        str | None, Field(min_length=1, max_length=200, json_schema_extra={"pattern": FILTER_FIELD_PATTERN})
    ] = None
    op: Op = "eq"
    value: Annotated[Any, Field(json_schema_extra=free_json(1))] = None
    within_days: Annotated[int | None, Field(ge=1, le=3650), JSON_INTEGER] = None
    channel: Channel | None = None
    campaign_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    all_of: Annotated[list[Filter] | None, Field(alias="all", max_length=50)] = None
    any_of: Annotated[list[Filter] | None, Field(alias="any", max_length=50)] = None
    not_: Annotated[Filter | None, Field(alias="not")] = None

    @field_validator("value")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Stored with the segment, campaign or journey: the limits that keep profile attributes storable.
        return check_free_json(value, MAX_ATTRIBUTES_BYTES)

    @model_serializer(mode="wrap")
    def _without_unset_parts(self, handler: Any) -> Any:
        # A stored or shown filter carries what it says: a condition, or one group.
        data = handler(self)
        if not isinstance(data, dict):
            return data
        out = {k: v for k, v in data.items() if v is not None}
        if self.field is None:
            out.pop("op", None)
        return out

    @property
    def is_group(self) -> bool:
        return self.field is None

    def depth(self) -> int:
        members = [*(self.all_of or []), *(self.any_of or []), *([self.not_] if self.not_ else [])]
        return 1 + max((m.depth() for m in members), default=0)

    @model_validator(mode="after")
    def _check(self) -> Filter:
        groups = [g for g in (self.all_of, self.any_of, self.not_) if g is not None]
        if self.field is None:
            if len(groups) != 1:
                raise ValueError("a filter has a 'field', or is a group with exactly one of 'all', 'any', 'not'")
            parts = [n for n in ("value", "within_days", "channel", "campaign_id") if getattr(self, n) is not None]
            if parts:
                raise ValueError(f"a group ('all', 'any', 'not') takes no {', '.join(repr(p) for p in parts)}")
            if self.depth() > MAX_GROUP_DEPTH:
                raise ValueError(f"groups nest at most {MAX_GROUP_DEPTH} levels")
            return self
        if groups:
            raise ValueError("a filter with a 'field' cannot also be a group ('all', 'any', 'not')")
        f = self.field = FIELD_ALIASES.get(self.field, self.field)
        if f == RENAMED_RFM_FIELD:
            raise ValueError(f"'{f}' was renamed: use 'rfm.group' (the RFM group: champions, loyal...)")
        history = f.startswith(("events.", "messages."))
        if not is_filter_field(f):
            raise ValueError(_unknown_field(f))
        numeric = {**NUMERIC_FIELDS, **RFM_NUMERIC_FIELDS, **LIFECYCLE_FIELDS, **ORDER_FIELDS}
        if (f in numeric or history) and self.op in ("gt", "gte", "lt", "lte", "eq", "ne"):
            if not isinstance(self.value, int | float) or isinstance(self.value, bool):
                raise ValueError(f"'{f}' compares with a number")
        if history and self.within_days is None:
            raise ValueError(f"'{f}' counts over a window: set 'within_days'")
        if not history and (self.within_days is not None or self.channel is not None):
            raise ValueError("'within_days' and 'channel' apply to events.<type> and messages.<status> only")
        if self.campaign_id is not None and not f.startswith("messages."):
            raise ValueError("'campaign_id' applies to messages.<status> only")
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError("'in' takes a list")
        if f in ("bought_product", "viewed_product") and not isinstance(self.value, str):
            raise ValueError(f"'{f}' takes a product id")
        return self


class SegmentBody(BaseModel):
    """The body of ``PUT /v1/segments/{name}``: every filter must hold (AND); a filter may be a group (``any``:
    OR, ``not``: NOT). The path names the segment."""

    model_config = ConfigDict(extra="forbid")

    filters: Annotated[list[Filter], Field(max_length=50)] = Field(default_factory=list)


class SegmentIn(SegmentBody):
    """A saved audience: its name and filters."""

    name: Annotated[str, Field(pattern=_ID_PATTERN)]


class Audience(BaseModel):
    """A campaign's audience: a saved segment's name or filters (not both; neither: everybody)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=no_two(left_out("segment"), empty("filters")))

    segment: Annotated[str | None, Field(pattern=_ID_PATTERN, description="a saved segment's name")] = None
    filters: Annotated[list[Filter], Field(max_length=50)] = Field(default_factory=list)


class SegmentView(SegmentIn):
    name: str
    updated_at: datetime


class SegmentList(BaseModel):
    segments: list[SegmentView]
