"""Wire schemas of the Kairos API: events, batches and customer profiles.

The event schema is also the archive schema: what the API accepts is what lands in S3 and what
``training/`` reads, so there is one definition of an event for the whole product.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from kairos.core.constants import EVENT_TYPE_PATTERN, EVENT_TYPES, MAX_BATCH_EVENTS, SCOPES  # noqa: F401 - re-exported
from kairos.core.schema_rules import JsonBool, free_json
from kairos.customers.ledger_domain import PointsView, StageView
from kairos.customers.zone_domain import IANA_ZONE_PATTERN, validate_timezone, zone_enum  # noqa: F401 - re-exported

# One list of built-in event types and channels (kairos.core.constants); a shop's own types follow the pattern.
EventType = Annotated[
    str,
    Field(
        pattern=EVENT_TYPE_PATTERN,
        description="a built-in type (" + ", ".join(EVENT_TYPES) + ") or your own: lower-case letters, digits and "
        "underscores, starting with a letter, at most 63 characters (order_shipped, points_earned)",
        examples=list(EVENT_TYPES[:3]) + ["order_shipped"],
    ),
]
from kairos.core.constants import CURRENCY_PATTERN  # noqa: E402
from kairos.messaging.content import (  # noqa: E402 - one channel type and locale form for the API
    LOCALE_PATTERN,
    Channel,
)

# Identifiers end up in DynamoDB keys and S3 object keys: keep them printable and bounded.
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}$"
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
_E164 = re.compile(E164_PATTERN)
# Python's \s and JavaScript's (the OpenAPI document's patterns) differ by a few characters: spelled out, the
# pattern reads the same to both.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
EMAIL_PATTERN = rf"^[^@{_SPACE}]{{1,64}}@[^@{_SPACE}]+\.[^@{_SPACE}]{{2,}}$"
_EMAIL = re.compile(EMAIL_PATTERN)


# ------------------------------------------------------------------ limits
# Every limit is enforced here or in kairos.http.api, documented in the OpenAPI document and in the README.
# Lambda takes at most 6 MB per synchronous invocation, headers and envelope included: keep bodies under it.
MAX_BODY_BYTES = 5 * 1024 * 1024
# Far deeper than any body of this API needs (an event's properties sit at level 4), shallow enough that no
# parser or validator recurses anywhere near Python's limit.
MAX_BODY_DEPTH = 32
# 100 events of this size fit one DynamoDB transaction (4 MB); Segment uses the same per-event limit.
MAX_EVENT_BYTES = 32 * 1024
MAX_PROPERTIES = 50
MAX_PROPERTIES_BYTES = 16 * 1024
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTES_BYTES = 16 * 1024
# Nesting of properties and attributes: the value itself is level 1.
MAX_FREE_DEPTH = 5
MAX_NAME_CHARS = 128
MAX_FREE_STRING_CHARS = 4096
# DynamoDB numbers hold 38 significant digits, magnitudes 1E-130 to 9.99E+125, and attributes are stored as
# such. Floats stay below 1e38 because a whole-valued float is read back as an integer, which must fit 38 digits.
MAX_NUMBER_DIGITS = 38
MAX_NUMBER_MAGNITUDE = 1e38
MIN_NUMBER_MAGNITUDE = 1e-130

# ISO 8601 extended date and time with a mandatory offset (RFC 3339, where ISO 8601 also lets seconds be left out).
ISO_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})$"
)
_ISO_TIMESTAMP = re.compile(ISO_TIMESTAMP)
_TIMESTAMP_RULE = "must be an ISO 8601 string with a UTC offset, e.g. 2024-05-01T12:00:00+02:00"


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(_TIMESTAMP_RULE)
    return value


def _iso_string(value: Any) -> Any:
    # Pydantic would also take unix numbers and numeric strings; an event's time must say its offset. Datetimes
    # pass: Python callers (archive readers, tests) build events from parsed values.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_TIMESTAMP.match(value.strip()):
        raise ValueError(_TIMESTAMP_RULE)
    return value


def _json_number(value: Any) -> Any:
    # A boolean is an int to Python and a string is a Decimal to pydantic; neither is a JSON number.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    return value


# A name in free-form JSON (a property, an attribute), kept as sent: models that strip their strings' whitespace
# would otherwise strip it too, and "\t" would become an empty name.
FreeName = Annotated[str, StringConstraints(strip_whitespace=False)]

# An event's time, quantity and amount, as the API takes them wherever an event is written (POST /v1/events, a
# message preview's event): strict JSON, so the document's types are the whole rule.
Timestamp = Annotated[
    datetime,
    BeforeValidator(_iso_string),
    Field(
        description="ISO 8601 string with a UTC offset (Z or ±hh:mm); not a unix number",
        json_schema_extra={"pattern": ISO_TIMESTAMP},
    ),
]
Quantity = Annotated[int, Field(ge=-1_000_000, le=1_000_000, strict=True)]
Amount = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=-1_000_000_000, le=1_000_000_000, decimal_places=4),
    WithJsonSchema({"type": "number", "minimum": -1_000_000_000, "maximum": 1_000_000_000, "multipleOf": 0.0001}),
]


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: how limits on sizes are measured."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


class FreeJsonError(ValueError):
    """A member of free-form JSON breaks a limit; ``path`` names it inside the field (empty: the whole field)."""

    def __init__(self, path: tuple[str, ...], reason: str) -> None:
        super().__init__(f"'{'.'.join(path)}': {reason}" if path else reason)
        self.path = path
        self.reason = reason


def error_field(err: Any) -> tuple[str, str]:
    """A pydantic error (one item of ``ValidationError.errors()``) as (dotted field, reason)."""
    loc = [str(p) for p in err.get("loc", ())]
    reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FreeJsonError):
        loc += list(cause.path)
        reason = cause.reason
    return ".".join(loc), reason


def check_free_json(value: Any, max_bytes: int) -> Any:
    """Check free-form JSON (event properties, profile attributes) against the documented limits.

    Parameters
    ----------
    value
        The decoded JSON value.
    max_bytes
        Its largest size as compact UTF-8 JSON.

    Returns
    -------
    Any
        ``value``, unchanged.

    Raises
    ------
    FreeJsonError
        Naming the first offending member by its path: an empty or over-long name, nesting deeper than
        ``MAX_FREE_DEPTH``, a string over ``MAX_FREE_STRING_CHARS``, a number DynamoDB cannot hold (over 38
        digits, a float of magnitude 1e38 or more or under 1e-130, NaN, infinity) or a value that is not JSON.
    """
    stack: list[tuple[Any, tuple[str, ...], int]] = [(value, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_FREE_DEPTH:
            raise FreeJsonError(path, f"nested deeper than {MAX_FREE_DEPTH} levels")
        if isinstance(node, dict):
            for key, child in reversed(node.items()):
                if not isinstance(key, str) or not 1 <= len(key) <= MAX_NAME_CHARS:
                    raise FreeJsonError(path, f"names must be 1 to {MAX_NAME_CHARS} characters, got {key!r:.40}")
                stack.append((child, (*path, key), depth + 1))
        elif isinstance(node, list):
            stack.extend((child, (*path, str(i)), depth + 1) for i, child in reversed(list(enumerate(node))))
        elif node is None or isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if len(str(abs(node))) > MAX_NUMBER_DIGITS:
                raise FreeJsonError(path, f"integers have at most {MAX_NUMBER_DIGITS} digits")
        elif isinstance(node, float):
            if not math.isfinite(node) or abs(node) >= MAX_NUMBER_MAGNITUDE or 0 < abs(node) < MIN_NUMBER_MAGNITUDE:
                raise FreeJsonError(path, f"numbers must be 0 or of magnitude 1e-130 up to 1e38, got {node!r}")
        elif isinstance(node, str):
            if len(node) > MAX_FREE_STRING_CHARS:
                raise FreeJsonError(path, f"strings have at most {MAX_FREE_STRING_CHARS} characters")
        else:
            raise FreeJsonError(path, f"{type(node).__name__} is not a JSON value")
    size = json_size(value)
    if size > max_bytes:
        raise FreeJsonError((), f"{size} bytes as JSON, at most {max_bytes}")
    return value


def _free_json_schema(what: str, max_items: int, max_bytes: int) -> dict[str, Any]:
    return {
        "description": f"{what}: at most {max_items} names of 1 to {MAX_NAME_CHARS} characters, {max_bytes} bytes "
        f"as compact UTF-8 JSON, {MAX_FREE_DEPTH} levels deep; strings up to {MAX_FREE_STRING_CHARS} characters; "
        f"integers up to {MAX_NUMBER_DIGITS} digits, other numbers 0 or of magnitude 1e-130 up to (excluded) 1e38",
        "propertyNames": {"minLength": 1, "maxLength": MAX_NAME_CHARS},
        "additionalProperties": free_json(2),
        "x-max-bytes": max_bytes,
        "x-max-depth": MAX_FREE_DEPTH,
    }


class Event(BaseModel):
    """One customer event, as the apps send it and as the archive keeps it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: Annotated[str, Field(pattern=_ID_PATTERN, description="Client-made id, unique per customer")]
    customer_id: Annotated[str, Field(pattern=_ID_PATTERN)]
    type: EventType
    timestamp: Timestamp
    channel: Channel | None = None
    message_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    product_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    quantity: Quantity | None = None
    amount: Amount | None = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$")] = None
    text: Annotated[str | None, Field(max_length=4096)] = None
    properties: Annotated[
        dict[FreeName, Any] | None,
        Field(
            max_length=MAX_PROPERTIES,
            json_schema_extra=_free_json_schema("Free properties", MAX_PROPERTIES, MAX_PROPERTIES_BYTES),
        ),
    ] = None

    @field_validator("timestamp")
    @classmethod
    def _timestamp_has_offset(cls, value: datetime) -> datetime:
        return _aware(value)

    @field_validator("properties")
    @classmethod
    def _properties_small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_free_json(value, MAX_PROPERTIES_BYTES)

    @model_validator(mode="after")
    def _event_small(self) -> Event:
        size = json_size(self.to_record())
        if size > MAX_EVENT_BYTES:
            raise ValueError(f"the event is {size} bytes as JSON, at most {MAX_EVENT_BYTES}")
        return self

    def to_record(self) -> dict[str, Any]:
        """The archive form: JSON-safe, ``None`` fields dropped, timestamp kept with its offset."""
        record = self.model_dump(mode="json", exclude_none=True)
        if self.amount is not None:
            record["amount"] = float(self.amount)
        return record


class EventTypeView(BaseModel):
    type: str
    builtin: bool = Field(description="a built-in type the models read; else one of your own")
    count: int = Field(description="events of this type stored (duplicates not counted)")
    properties: list[str] = Field(description="the names of the properties events of this type carried")
    first_seen: datetime
    last_seen: datetime


class EventTypeList(BaseModel):
    event_types: list[EventTypeView]


class EventBatch(BaseModel):
    """The body of ``POST /v1/events``.

    Events are validated one by one by the ingest logic, not here, so one bad event does not
    reject its valid neighbours; this model only bounds the batch.
    """

    events: Annotated[
        list[Any],
        Field(
            min_length=1,
            max_length=MAX_BATCH_EVENTS,
            description=f"1 to {MAX_BATCH_EVENTS} events, the whole body at most {MAX_BODY_BYTES} bytes; each "
            f"follows the Event schema and is at most {MAX_EVENT_BYTES} bytes as compact UTF-8 JSON. An event that "
            "breaks a rule is rejected by its index; the others are stored.",
            json_schema_extra={"items": {**Event.model_json_schema(), "x-max-bytes": MAX_EVENT_BYTES}},
        ),
    ]


class Rejection(BaseModel):
    """One event of a batch that was not stored: its index in ``events``, the field at fault and why."""

    index: int
    field: str
    reason: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejection]


class ContactPoints(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: Annotated[str | None, Field(max_length=254, json_schema_extra={"pattern": EMAIL_PATTERN})] = None
    phone: Annotated[
        str | None, Field(description="E.164, e.g. +447700900123", json_schema_extra={"pattern": E164_PATTERN})
    ] = None
    push_token: Annotated[str | None, Field(max_length=4096)] = None
    push_platform: Literal["APNS", "APNS_SANDBOX", "GCM"] | None = None
    messenger_chat_id: Annotated[str | None, Field(pattern=r"^-?[0-9]{1,20}$")] = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("not an email address")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _E164.match(value):
            raise ValueError("phone must be E.164: '+' then 7 to 15 digits")
        return value


class Consent(BaseModel):
    """Opt-in per channel. Absent means no consent: nothing is sent on that channel."""

    model_config = ConfigDict(extra="forbid")

    email: JsonBool = False
    sms: JsonBool = False
    push: JsonBool = False
    messenger: JsonBool = False


class CustomerProfileIn(BaseModel):
    """The body of ``PUT /v1/customers/{customer_id}``: the whole profile, replaced."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    timezone: Annotated[
        str | None,
        Field(
            description="Canonical IANA zone name, e.g. Europe/London, checked against the tz database "
            "(legacy names such as EST5EDT are refused)",
            json_schema_extra=zone_enum,
        ),
    ] = None
    locale: Annotated[
        str | None,
        Field(
            pattern=LOCALE_PATTERN,
            description="Language, with an optional region (ISO 639 + ISO 3166), e.g. ru, en-GB, pt-BR: picks the "
            "message's locale variant (exact, then the language) and how money and dates are written",
            examples=["en-GB"],
        ),
    ] = None
    currency: Annotated[
        str | None,
        Field(
            pattern=CURRENCY_PATTERN,
            description="ISO 4217 code, e.g. GBP: what the money filter writes when the event names no currency",
            examples=["GBP"],
        ),
    ] = None
    contact: ContactPoints = Field(default_factory=ContactPoints)
    consent: Consent = Field(default_factory=Consent)
    attributes: Annotated[
        dict[FreeName, Any],
        Field(
            default_factory=dict,
            max_length=MAX_ATTRIBUTES,
            json_schema_extra=_free_json_schema("Free attributes", MAX_ATTRIBUTES, MAX_ATTRIBUTES_BYTES),
        ),
    ]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_free_json(value, MAX_ATTRIBUTES_BYTES)


class Aggregates(BaseModel):
    """Scoring inputs as the API shows them (see ``kairos.customers.aggregates`` for their meaning)."""

    timezone: str = Field(description="the zone local hours are counted in: the profile's, or the inferred one")
    timezone_inferred: bool = Field(
        default=False,
        description="no zone was given: each engagement was counted at the local time its event carried, and "
        "the zone is inferred from those UTC offsets (a fixed UTC+hh:mm, or the zone a daylight-saving pair names)",
    )
    hour_of_week_counts: list[int] = Field(
        min_length=168,
        max_length=168,
        description="engagement moments of the customer's own by local hour of week (answers to a message are not "
        "counted: their hour is the send's)",
    )
    engagement_moments: int = Field(
        description="clock hours with a session, open, click or purchase of the customer's own (not naming a message)"
    )
    last_engagement_at: datetime | None = Field(
        description="the latest engagement of any kind, opens and clicks of messages included"
    )
    purchase_count: int
    monetary_total: float
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    event_counts: dict[str, int]
    channel_engagements: dict[str, int]
    recent_products: list[dict[str, Any]]
    last_cart_abandon_amount: float | None
    last_cart_abandon_at: datetime | None
    unsubscribed: dict[str, datetime] = Field(
        default_factory=dict,
        description="what the customer withdrew, and when: a channel, 'all', 'topic:<name>' or 'suppressed:<channel>' "
        "(a permanent bounce or a complaint)",
    )
    subscribed: dict[str, datetime] = Field(
        default_factory=dict,
        description="a channel or 'topic:<name>' granted again (the preference page, an SMS reply of START), and when",
    )
    stage: StageView | None = None
    points: PointsView | None = Field(default=None, description="present once a points event was taken")


class CustomerView(BaseModel):
    customer_id: str
    profile: CustomerProfileIn | None
    aggregates: Aggregates | None
    updated_at: datetime | None = None


class ErasureReport(BaseModel):
    customer_id: str
    profile: bool
    events: int
    engagement_moments: int
    aggregates: bool
    archive_objects_rewritten: int
    archive_lines_removed: int
    messages: int = 0
    message_archive_objects: int = 0
    decision_objects_rewritten: int = 0
    decision_lines_removed: int = 0
    journey_paths: int = Field(default=0, description="paths through journeys deleted")
    erased_before: str | None = Field(
        default=None, description="When the customer was erased before, if this erasure repeats or finishes one"
    )


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. events.3.properties or (body)")
    reason: str
    type: str | None = None


class ErrorBody(BaseModel):
    """What every error answer holds; ``message`` starts with the offending field when there is one."""

    message: str
    errors: list[FieldError] | None = None


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The first pydantic error as (dotted field, reason)."""
    field, reason = error_field(exc.errors()[0])
    return field or "(event)", reason


def check_event_time(ts: datetime, now: datetime, retention: timedelta, skew: timedelta) -> str | None:
    """Why an event's time is unacceptable, or ``None`` when it is fine."""
    if ts > now + skew:
        return f"timestamp is in the future (more than {int(skew.total_seconds())} s ahead of server time)"
    if ts < now - retention:
        return f"timestamp is older than the retention of {retention.days} days"
    return None


class ProductScore(BaseModel):
    product_id: str
    score: float


class Lifecycle(BaseModel):
    """What the customer is expected to do in the next 90 days (``kairos.models.lifecycle``)."""

    purchase_probability_90d: float = Field(ge=0, le=1, description="calibrated probability of a purchase")
    expected_spend_90d: float = Field(ge=0, description="expected spend")
    next_purchase_at: dict[str, str] = Field(
        default_factory=dict,
        description="product id -> expected UTC date (YYYY-MM-DD) of the next purchase of each consumable "
        "product the customer bought, soonest first",
    )


class RecommendationView(BaseModel):
    """``GET /v1/customers/{id}/recommendation``: when to message the customer and what to offer."""

    customer_id: str
    best_hour_of_week: int = Field(
        ge=0,
        le=167,
        description="the decision: local hour of week (0 = Monday 00:00 in the customer's time zone) whose "
        "hour and neighbours on the same day hold the most of send_scores",
    )
    hour_scores: list[float] = Field(
        min_length=168,
        max_length=168,
        description="calibrated probabilities (sum to 1) that an engagement of the customer falls in each "
        "local hour of week",
    )
    send_scores: list[float] | None = Field(
        default=None,
        min_length=168,
        max_length=168,
        description="the ranking of hours the send-time decision reads (the model's normalized rates)",
    )
    send_windows: dict[str, list[Any]] | None = Field(
        default=None,
        description="per channel [offset, weights]: the value of sending at hour h is "
        "sum_k weights[k] * send_scores[h + offset + k] on the same local day (learned from the message log)",
    )
    next_products: list[ProductScore]
    confidence: dict[str, Any] = Field(
        description="level: personal (own history), segment or population prior; moments: past engagement moments"
    )
    model_version: str
    as_of: datetime
    scored: bool = Field(description="false when the answer is the segment or population fallback")
    channel_ranking: list[str] = Field(
        default_factory=list,
        description="channels, the one the customer is most likely to engage with per send first (their "
        "sends and engagements by channel, shrunk toward each channel's learned response rate); "
        "journeys' best-channel messages follow it",
    )
    lifecycle: Lifecycle | None = Field(
        default=None, description="lifecycle predictions; null from a model trained without them"
    )


class MessageView(BaseModel):
    """One message of the message log, as a customer-facing support view needs it."""

    model_config = ConfigDict(extra="ignore")

    message_id: str
    campaign_id: str = Field(description="the campaign or journey that sent it")
    channel: str
    status: str = Field(description="sent, unconfirmed, failed, skipped, throttled, unavailable or sending")
    reason: str | None = None
    claimed_at: str | None = None
    sent_at: str | None = None
    finished_at: str | None = None
    node: str | None = Field(default=None, description="the journey node that sent it")
    variant: str | None = Field(default=None, description="the node's content variant it carried, if it has variants")
    send_at: str | None = Field(default=None, description="the send time decided for it (a best hour, a local time)")
    hour_of_week: int | None = Field(default=None, description="that time's hour of the week, in the customer's zone")
    policy: str | None = Field(
        default=None, description="how it was decided: optimized, explore (another hour, tried), fixed, immediate"
    )


class MessageList(BaseModel):
    customer_id: str
    messages: list[MessageView]
