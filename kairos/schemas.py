"""Wire schemas of the Kairos API: events, batches and customer profiles.

The event schema is also the archive schema: what the API accepts is what lands in S3 and what
``training/`` reads, so there is one definition of an event for the whole product.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kairos.constants import CHANNELS, EVENT_TYPES, MAX_BATCH_EVENTS

EventType = Literal[
    "session",
    "message_open",
    "message_click",
    "purchase",
    "cart_add",
    "cart_abandon",
    "product_view",
    "message_inbound",
    "unsubscribe",
]
Channel = Literal["email", "sms", "push", "messenger"]

# Identifiers end up in DynamoDB keys and S3 object keys: keep them printable and bounded.
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}$"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")

assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]
assert set(Channel.__args__) == set(CHANNELS)  # type: ignore[attr-defined]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset, e.g. 2024-05-01T12:00:00+02:00")
    return value


class Event(BaseModel):
    """One customer event, as the apps send it and as the archive keeps it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: Annotated[str, Field(pattern=_ID_PATTERN, description="Client-made id, unique per customer")]
    customer_id: Annotated[str, Field(pattern=_ID_PATTERN)]
    type: EventType
    timestamp: Annotated[datetime, Field(description="ISO 8601 with a UTC offset")]
    channel: Channel | None = None
    message_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    product_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    quantity: Annotated[int | None, Field(ge=-1_000_000, le=1_000_000)] = None
    amount: Annotated[Decimal | None, Field(ge=-1_000_000_000, le=1_000_000_000, decimal_places=4)] = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$")] = None
    text: Annotated[str | None, Field(max_length=4096)] = None
    properties: dict[str, Any] | None = None

    @field_validator("timestamp")
    @classmethod
    def _timestamp_has_offset(cls, value: datetime) -> datetime:
        return _aware(value)

    @field_validator("properties")
    @classmethod
    def _properties_small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > 50:
            raise ValueError("at most 50 properties")
        return value

    def to_record(self) -> dict[str, Any]:
        """The archive form: JSON-safe, ``None`` fields dropped, timestamp kept with its offset."""
        record = self.model_dump(mode="json", exclude_none=True)
        if self.amount is not None:
            record["amount"] = float(self.amount)
        return record


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
            description=f"1 to {MAX_BATCH_EVENTS} events; each follows the Event schema",
            json_schema_extra={"items": Event.model_json_schema()},
        ),
    ]


class Rejection(BaseModel):
    index: int
    field: str
    reason: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejection]


def validate_timezone(value: str) -> str:
    """Check an IANA zone name (``Europe/London``); raise ``ValueError`` naming the problem."""
    if value in _LEGACY_ZONES:
        raise ValueError(f"'{value}' is not a canonical IANA zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"'{value}' is not an IANA time zone name") from exc
    return value


# Names like "EST5EDT" or "posixrules" load but carry no place; keep to the place names.
_LEGACY_ZONES = frozenset(z for z in available_timezones() if "/" not in z and z not in ("UTC",))


class ContactPoints(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: Annotated[str | None, Field(max_length=254)] = None
    phone: Annotated[str | None, Field(description="E.164, e.g. +447700900123")] = None
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

    email: bool = False
    sms: bool = False
    push: bool = False
    messenger: bool = False


class CustomerProfileIn(BaseModel):
    """The body of ``PUT /v1/customers/{customer_id}``: the whole profile, replaced."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    timezone: Annotated[str | None, Field(description="IANA zone, e.g. Europe/London")] = None
    contact: ContactPoints = Field(default_factory=ContactPoints)
    consent: Consent = Field(default_factory=Consent)
    attributes: dict[str, Any] = Field(default_factory=dict, description="Free attributes, at most 100 keys")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 100:
            raise ValueError("at most 100 attributes")
        return value


class Aggregates(BaseModel):
    """Scoring inputs as the API shows them (see ``kairos.aggregates`` for their meaning)."""

    timezone: str
    hour_of_week_counts: list[int] = Field(min_length=168, max_length=168)
    engagement_moments: int
    last_engagement_at: datetime | None
    purchase_count: int
    monetary_total: float
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    event_counts: dict[str, int]
    channel_engagements: dict[str, int]
    recent_products: list[dict[str, Any]]
    last_cart_abandon_amount: float | None
    last_cart_abandon_at: datetime | None
    unsubscribed: dict[str, datetime] = Field(default_factory=dict, description="channel or 'all' -> when")


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


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The first pydantic error as (dotted field, reason)."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(event)"
    reason = err["msg"]
    if reason.startswith("Value error, "):
        reason = reason[len("Value error, ") :]
    return field, reason


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


class RecommendationView(BaseModel):
    """``GET /v1/customers/{id}/recommendation``: when to message the customer and what to offer."""

    customer_id: str
    best_hour_of_week: int = Field(ge=0, le=167, description="0 = Monday 00:00 in the customer's time zone")
    hour_scores: list[float] = Field(min_length=168, max_length=168, description="168 scores summing to 1")
    next_products: list[ProductScore]
    confidence: dict[str, Any] = Field(
        description="level: personal (own history), segment or population prior; moments: past engagement moments"
    )
    model_version: str
    as_of: datetime
    scored: bool = Field(description="false when the answer is the segment or population fallback")
