"""A campaign as the API accepts and shows it (``POST /v1/campaigns``): an audience, messages per channel in
fallback order, a send time, an offer window and a control group. It runs as a journey
(:mod:`kairos.journeys.campaigns`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kairos.audiences.domain import Audience
from kairos.core.constants import DEFAULT_TOPIC, POOL_NAME_PATTERN, TOPIC_PATTERN
from kairos.core.schema_rules import JSON_INTEGER, JSON_NUMBER, given, rules, when
from kairos.customers.schemas import Timestamp
from kairos.journeys.variant_domain import (
    CONTENT_RULE_HELP,
    VARIANTS_HELP,
    AutoPromote,
    ContentVariants,
    check_content,
    content_rules,
)
from kairos.messaging.content import Channel, FrequencyCap, LocalTimeOfDay, Messages, QuietHoursIn

# How far ahead a campaign may start, and how long it may run: a year (a date in 9999 is a typo).
MAX_SCHEDULE_DAYS = 366


class SendTime(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=rules(
            when({"required": ["mode"], "properties": {"mode": {"const": "fixed"}}}, given("local_time"))
        ),
    )
    mode: Literal["optimized", "fixed", "immediate"] = "optimized"
    local_time: LocalTimeOfDay | None = Field(
        default=None, description="for fixed: time of day in each customer's zone"
    )
    explore_share: Annotated[float, Field(ge=0, le=0.5), JSON_NUMBER] = 0.1
    within_hours: Annotated[
        int,
        Field(
            ge=1,
            le=168,
            description="optimized: look for the best hour within this many hours of the launch, so the "
            "sequence's later steps still fit before the offer expires (Braze and Klaviyo use 24)",
        ),
        JSON_INTEGER,
    ] = 24

    @model_validator(mode="after")
    def _fixed(self) -> SendTime:
        if self.mode == "fixed" and self.local_time is None:
            raise ValueError("fixed mode needs local_time")
        return self


class CampaignIn(BaseModel):
    """``POST /v1/campaigns``.

    ``expires_at`` is after ``starts_at`` (when given) and now, each at most ``MAX_SCHEDULE_DAYS`` ahead: rules
    JSON Schema cannot state. A named segment must exist.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=rules(*content_rules("messages")))

    name: Annotated[str, Field(min_length=1, max_length=200)]
    audience: Audience
    messages: Messages | None = Field(
        default=None, description=f"the content per channel (or variants). {CONTENT_RULE_HELP}"
    )
    variants: ContentVariants | None = Field(default=None, description=VARIANTS_HELP)
    auto_promote: AutoPromote | None = None
    channels: Annotated[
        list[Channel],
        Field(min_length=1, max_length=4, description="fallback order", json_schema_extra={"uniqueItems": True}),
    ]
    wait_hours: Annotated[
        list[Annotated[float, Field(gt=0, le=24 * 30), JSON_NUMBER]],
        Field(min_length=1, description="how long to wait for engagement after each step (last value repeats)"),
    ] = [24.0]
    starts_at: Annotated[
        Timestamp | None, Field(description=f"at most {MAX_SCHEDULE_DAYS} days ahead; none: the timer's next tick")
    ] = None
    expires_at: Annotated[Timestamp, Field(description=f"after the start, at most {MAX_SCHEDULE_DAYS} days after it")]
    quiet_hours: QuietHoursIn | None = None
    frequency_cap: FrequencyCap | None = None
    control_share: Annotated[float, Field(ge=0, le=0.9), JSON_NUMBER] = 0.1
    attribution_days: Annotated[
        int,
        Field(
            ge=1,
            le=90,
            description="a purchase this many days after the launch (or the message) counts as a conversion",
        ),
        JSON_INTEGER,
    ] = 7
    send_time: SendTime = Field(default_factory=SendTime)
    topic: Annotated[str, Field(pattern=TOPIC_PATTERN, description="what the campaign is about (news, offers...)")] = (
        DEFAULT_TOPIC
    )
    promo_pool: Annotated[
        str | None,
        Field(
            pattern=POOL_NAME_PATTERN,
            description="hand each customer one code of this pool ({{ promo.code }}); its redemption ends the cycle",
        ),
    ] = None

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
        check_content(self.messages, self.variants, self.auto_promote, list(self.channels), "messages")
        if self.starts_at and self.starts_at >= self.expires_at:
            raise ValueError("expires_at must be after starts_at")
        if (self.audience.segment is None) == (not self.audience.filters) and self.audience.segment is not None:
            raise ValueError("audience: give a segment or filters, not both")
        return self

    def wait_after(self, step: int) -> float:
        return self.wait_hours[min(step, len(self.wait_hours) - 1)]


CampaignStatus = Literal["scheduled", "running", "completed", "cancelled"]


class CampaignView(BaseModel):
    """A campaign as the API shows it: definition, lifecycle and, once its audience has entered, the counts.

    ``campaign_id`` is also the id of the journey that runs it (``GET /v1/journeys/{id}`` shows the graph)."""

    campaign_id: str
    status: CampaignStatus
    created_at: datetime
    definition: CampaignIn
    status_changed_at: datetime | None = None
    launch: dict[str, int] | None = Field(
        default=None,
        description="once the audience has entered: scheduled (messaged), control, skipped (no channel it may "
        "be reached on), already_started, outside_audience",
    )


class CampaignList(BaseModel):
    campaigns: list[CampaignView]
    next_token: str | None = None
