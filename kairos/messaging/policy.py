"""The deployment's send policy: default quiet hours per channel and frequency caps every journey and campaign
obeys, unless it is transactional (an order confirmation, a password reset).

Caps count what may have reached the customer (sent, unconfirmed, being sent) per channel and across
channels (``all``), over the last day and the last seven days. Quiet hours are in the customer's zone; a
journey's own ``quiet_hours`` take precedence over the policy's for the channels they hold.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kairos.core.constants import CHANNELS
from kairos.core.schema_rules import JSON_INTEGER, given
from kairos.messaging.content import Channel

if TYPE_CHECKING:
    from collections.abc import Iterable

CapScope = Literal[("all", *CHANNELS)]  # type: ignore[valid-type]


LocalTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, local time")]


class Window(BaseModel):
    """Quiet hours in the customer's local time; ``start`` after ``end`` spans midnight (21:00 to 08:00).

    ``start`` and ``end`` differ (a rule JSON Schema cannot state).
    """

    model_config = ConfigDict(extra="forbid")
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError("start and end are the same time")
        return self

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        return time.fromisoformat(self.end)


class Cap(BaseModel):
    """At most ``per_day`` messages in any 24 hours and ``per_week`` in any 7 days (either may be left out, not
    both). ``per_week`` is at least ``per_day`` (a rule JSON Schema cannot state)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [given("per_day"), given("per_week")]})
    per_day: Annotated[int | None, Field(ge=1, le=1000), JSON_INTEGER] = None
    per_week: Annotated[int | None, Field(ge=1, le=5000), JSON_INTEGER] = None

    @model_validator(mode="after")
    def _some(self) -> Cap:
        if self.per_day is None and self.per_week is None:
            raise ValueError("give per_day, per_week or both")
        if self.per_day and self.per_week and self.per_week < self.per_day:
            raise ValueError("per_week is less than per_day")
        return self


class SendPolicy(BaseModel):
    """``GET``/``PUT /v1/policy``: what holds back every marketing message of the deployment."""

    model_config = ConfigDict(extra="forbid")
    quiet_hours: dict[Channel, Window] = Field(
        default_factory=dict, description="per channel: no marketing message starts in these local hours"
    )
    frequency_caps: dict[CapScope, Cap] = Field(
        default_factory=dict, description="per channel, and 'all' across channels, per customer"
    )


# What a deployment obeys before anybody sets a policy: no texts or pushes at night, and no customer gets more
# than a handful of marketing messages a day (the defaults Braze and Customer.io suggest are of this order).
DEFAULT_POLICY = SendPolicy.model_validate(
    {
        "quiet_hours": {"sms": {"start": "21:00", "end": "08:00"}, "push": {"start": "22:00", "end": "08:00"}},
        "frequency_caps": {"all": {"per_day": 4, "per_week": 12}, "sms": {"per_day": 2, "per_week": 5}},
    }
)


def quiet_window(policy: SendPolicy, channel: str) -> Window | None:
    """The policy's quiet hours for ``channel`` (``None``: none)."""
    return policy.quiet_hours.get(channel)  # type: ignore[call-overload]


def cap_reason(policy: SendPolicy, channel: str, recent: Iterable[tuple[str, datetime]], now: datetime) -> str | None:
    """Why a message on ``channel`` would break a cap, given ``recent`` (channel, time) sends; ``None``: it fits.

    Example
    -------
    >>> cap_reason(DEFAULT_POLICY, "sms", [("sms", now), ("sms", now)], now)
    'frequency cap: 2 sms messages in the last day (policy: 2)'
    """
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    sends = list(recent)
    for scope in ("all", channel):
        cap = policy.frequency_caps.get(scope)  # type: ignore[call-overload]
        if cap is None:
            continue
        mine = [t for c, t in sends if scope == "all" or c == channel]
        label = "messages on any channel" if scope == "all" else f"{channel} messages"
        n_day = sum(1 for t in mine if t > day)
        if cap.per_day is not None and n_day >= cap.per_day:
            return f"frequency cap: {n_day} {label} in the last day (policy: {cap.per_day})"
        n_week = sum(1 for t in mine if t > week)
        if cap.per_week is not None and n_week >= cap.per_week:
            return f"frequency cap: {n_week} {label} in the last 7 days (policy: {cap.per_week})"
    return None
