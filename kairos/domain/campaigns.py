"""Campaign and segment definitions as the API accepts them, and a stored campaign's lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from kairos.constants import EVENT_TYPES
from kairos.schemas import _ID_PATTERN

Channel = Literal["email", "sms", "push", "messenger"]

# Filter fields over profiles and aggregates. Each names what it reads, so a marketer can guess it.
NUMERIC_FIELDS = {
    "purchase_count": "number of purchases (purchase moments)",
    "monetary_total": "sum of purchase amounts",
    "engagement_moments": "number of engagement moments",
    "days_since_last_purchase": "days since the last purchase (no purchase: never matches)",
    "days_since_last_engagement": "days since the last engagement (none: never matches)",
    "cart_abandon_amount": "amount of the last abandoned cart",
    "days_since_cart_abandon": "days since the last abandoned cart",
}
# Fields read from the latest scoring run's RFM (see kairos.logic.insights).
RFM_NUMERIC_FIELDS = {
    "rfm.r": "recency score 1..5 (5 = most recent)",
    "rfm.f": "frequency score 1..5 (5 = most purchases)",
    "rfm.m": "monetary score 1..5 (5 = highest spend)",
}
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
MAX_GROUP_DEPTH = 5
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists", "not_exists"]


class Filter(BaseModel):
    """One condition, or a group of conditions.

    A condition reads ``field``: a numeric aggregate (see NUMERIC_FIELDS), ``orders.last_amount`` /
    ``orders.max_amount``, ``rfm.segment`` / ``rfm.r`` / ``rfm.f`` / ``rfm.m`` (the latest scoring run),
    ``bought_product``, ``viewed_product``, ``attributes.<name>``, ``consent.<channel>``, or a count over the
    last ``within_days`` days: ``events.<type>`` (optionally on ``channel``) or ``messages.<status>``
    (optionally on ``channel`` and of ``campaign_id``; status ``any`` counts every outcome).

    A group holds exactly one of ``all`` (every member holds), ``any`` (at least one) or ``not`` (the member
    does not hold); groups nest up to five levels.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    field: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    op: Op = "eq"
    value: Any = None
    within_days: Annotated[int | None, Field(ge=1, le=3650)] = None
    channel: Channel | None = None
    campaign_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    all_of: Annotated[list[Filter] | None, Field(alias="all", max_length=50)] = None
    any_of: Annotated[list[Filter] | None, Field(alias="any", max_length=50)] = None
    not_: Annotated[Filter | None, Field(alias="not")] = None

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
            if self.depth() > MAX_GROUP_DEPTH:
                raise ValueError(f"groups nest at most {MAX_GROUP_DEPTH} levels")
            return self
        if groups:
            raise ValueError("a filter with a 'field' cannot also be a group ('all', 'any', 'not')")
        f = self.field
        history = f.startswith(("events.", "messages."))
        known = (
            f in NUMERIC_FIELDS
            or f in RFM_NUMERIC_FIELDS
            or f in ORDER_FIELDS
            or f in ("bought_product", "viewed_product", "rfm.segment")
            or (f.startswith("attributes.") and len(f) > len("attributes."))
            or f in {f"consent.{c}" for c in ("email", "sms", "push", "messenger")}
            or (f.startswith("events.") and f[len("events.") :] in EVENT_TYPES)
            or (f.startswith("messages.") and f[len("messages.") :] in MESSAGE_STATUSES)
        )
        if not known:
            raise ValueError(f"unknown filter field '{f}'")
        numeric = {**NUMERIC_FIELDS, **RFM_NUMERIC_FIELDS, **ORDER_FIELDS}
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


class SegmentIn(BaseModel):
    """A saved audience: every filter must hold (AND); a filter may be a group (``any``: OR, ``not``: NOT)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=_ID_PATTERN)]
    filters: Annotated[list[Filter], Field(max_length=50)] = Field(default_factory=list)


class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment: Annotated[str | None, Field(pattern=_ID_PATTERN, description="a saved segment's name")] = None
    filters: Annotated[list[Filter], Field(max_length=50)] = Field(default_factory=list)


class EmailMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Annotated[str, Field(min_length=1, max_length=998)]
    html: Annotated[str | None, Field(max_length=200_000)] = None
    text: Annotated[str | None, Field(max_length=100_000)] = None

    @model_validator(mode="after")
    def _body(self) -> EmailMessage:
        if not (self.html or self.text):
            raise ValueError("an email needs html or text")
        return self


class PushMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=2000)]


class TextMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=1600)]


class Messages(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailMessage | None = None
    push: PushMessage | None = None
    sms: TextMessage | None = None
    messenger: TextMessage | None = None


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: time
    end: time


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_messages: Annotated[int, Field(ge=1, le=100)]
    per_days: Annotated[int, Field(ge=1, le=90)]


class SendTime(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["optimized", "fixed", "immediate"] = "optimized"
    local_time: time | None = Field(default=None, description="for fixed: time of day in each customer's zone")
    explore_share: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    within_hours: Annotated[
        int,
        Field(
            ge=1,
            le=168,
            description="optimized: look for the best hour within this many hours of the launch, so the "
            "sequence's later steps still fit before the offer expires (Braze and Klaviyo use 24)",
        ),
    ] = 24

    @model_validator(mode="after")
    def _fixed(self) -> SendTime:
        if self.mode == "fixed" and self.local_time is None:
            raise ValueError("fixed mode needs local_time")
        return self


class CampaignIn(BaseModel):
    """``POST /v1/campaigns``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    audience: Audience
    messages: Messages
    channels: Annotated[list[Channel], Field(min_length=1, max_length=4, description="fallback order")]
    wait_hours: Annotated[
        list[Annotated[float, Field(gt=0, le=24 * 30)]],
        Field(min_length=1, description="how long to wait for engagement after each step (last value repeats)"),
    ] = [24.0]
    starts_at: datetime | None = None
    expires_at: datetime
    quiet_hours: QuietHoursIn | None = None
    frequency_cap: FrequencyCap | None = None
    control_share: Annotated[float, Field(ge=0, le=0.9)] = 0.1
    attribution_days: Annotated[
        int,
        Field(
            ge=1,
            le=90,
            description="a purchase this many days after the launch (or the message) counts as a conversion",
        ),
    ] = 7
    send_time: SendTime = Field(default_factory=SendTime)

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each channel at most once")
        return value

    @field_validator("starts_at", "expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("needs a UTC offset")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CampaignIn:
        missing = [c for c in self.channels if getattr(self.messages, c) is None]
        if missing:
            raise ValueError(f"messages has no content for channel(s) {', '.join(missing)}")
        if self.starts_at and self.starts_at >= self.expires_at:
            raise ValueError("expires_at must be after starts_at")
        if (self.audience.segment is None) == (not self.audience.filters) and self.audience.segment is not None:
            raise ValueError("audience: give a segment or filters, not both")
        return self

    def wait_after(self, step: int) -> float:
        return self.wait_hours[min(step, len(self.wait_hours) - 1)]


CampaignStatus = Literal["scheduled", "running", "completed", "cancelled", "failed"]
# A campaign sends, and its journeys go on, only in these states.
ACTIVE_STATUSES: tuple[str, ...] = ("scheduled", "running")


@dataclass(frozen=True)
class Campaign:
    """A stored campaign: its id, lifecycle status and validated definition.

    Example
    -------
    >>> Campaign.from_doc(store.get_campaign(campaign_id)).is_active
    True
    """

    campaign_id: str
    status: str
    definition: CampaignIn

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Campaign:
        """Read a stored campaign document (``campaign_id``, ``status``, ``definition``)."""
        return cls(doc["campaign_id"], doc["status"], CampaignIn.model_validate(doc["definition"]))

    @property
    def is_active(self) -> bool:
        """Whether the campaign may still send: scheduled or running, not cancelled or completed."""
        return self.status in ACTIVE_STATUSES


class FailureView(BaseModel):
    kind: Literal["launch", "journey"]
    reason: str
    at: datetime


class CampaignView(BaseModel):
    """A campaign as the API shows it: definition, lifecycle, launch totals and failures."""

    campaign_id: str
    status: CampaignStatus
    created_at: datetime
    definition: CampaignIn
    status_changed_at: datetime | None = None
    launch: dict[str, int] | None = Field(default=None, description="audience totals once the launch finished")
    launch_failures: int = Field(default=0, description="failed launch attempts (the campaign is then failed)")
    journey_failures: int = Field(default=0, description="customers whose journey ended in an error")
    last_failure: FailureView | None = None


class CampaignList(BaseModel):
    campaigns: list[CampaignView]
    next_token: str | None = None


class SegmentView(SegmentIn):
    updated_at: datetime


class SegmentList(BaseModel):
    segments: list[SegmentView]
