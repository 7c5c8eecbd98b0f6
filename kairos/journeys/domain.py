"""Journey definitions as the API accepts them: an entry, a graph of nodes, exit criteria; and a journey's lifecycle.

A journey is data. Its ``entry`` says when a customer enters (an event with conditions on its fields), its
``nodes`` say what happens next (delays, waits for an event with a timeout, splits, messages, channel cycles,
tasks for people or other systems, attribute updates, exits), and ``exit_on`` says which events end every
customer's path at once (a purchase, an unsubscribe). Every error names the node and the field, e.g.
``nodes.wait_open.on_timeout: unknown node 'smss'``.

Example (the abandoned cart: a big cart goes to a manager, a small one gets an email, then an SMS a day later
unless the email was opened; a purchase ends it)::

    {"name": "Abandoned cart",
     "entry": {"event": "cart_abandon", "where": [{"field": "amount", "op": "gt", "value": 0}]},
     "reentry": {"mode": "once_per", "days": 7},
     "exit_on": ["purchase"],
     "start": "by_amount",
     "nodes": {
       "by_amount": {"type": "split", "branches": [{"when": [{"field": "event.amount", "op": "gt",
                     "value": 20000}], "next": "manager"}], "else": "email"},
       "manager": {"type": "task", "kind": "eventbridge", "detail_type": "big_cart", "next": "done"},
       "email": {"type": "message", "channel": "email", "content": {"email": {"subject": "...", "text": "..."}},
                 "next": "wait_open"},
       "wait_open": {"type": "wait_for", "event": "message_open", "timeout_hours": 24,
                     "on_event": "done", "on_timeout": "sms"},
       "sms": {"type": "message", "channel": "sms", "content": {"sms": {"text": "..."}}, "next": "done"},
       "done": {"type": "exit"}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kairos.audiences.domain import Filter
from kairos.core.constants import DEFAULT_TOPIC, POOL_NAME_PATTERN, TOPIC_PATTERN
from kairos.core.schema_rules import (
    JSON_INTEGER,
    JSON_NUMBER,
    JsonBool,
    empty,
    exactly_one,
    given,
    left_out,
    rules,
    when,
)
from kairos.customers.schemas import _ID_PATTERN, Timestamp
from kairos.journeys.condition_domain import (
    CUSTOMER_FIELD_PATTERN,
    OWN_FIELD_PATTERN,
    Condition,
    EventType,
    own_event_field,
)
from kairos.journeys.variant_domain import (
    CONTENT_RULE_HELP,
    VARIANT_RESULTS_HELP,
    VARIANTS_HELP,
    AutoPromote,
    ContentVariants,
    check_content,
    content_rules,
)
from kairos.messaging.content import Channel, FrequencyCap, LocalTimeOfDay, Messages, QuietHoursIn

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
Topic = Annotated[str, Field(pattern=TOPIC_PATTERN)]
PoolName = Annotated[str, Field(pattern=POOL_NAME_PATTERN)]
MAX_NODES = 100
# A date entry on this attribute reads the lifecycle answer's next purchase date of each consumable product.
NEXT_PURCHASE_ATTRIBUTE = "lifecycle.next_purchase_at"


# A task node's static detail, as JSON: well inside EventBridge's 256 KB per entry.
MAX_TASK_DETAIL_BYTES = 64 * 1024


class Schedule(BaseModel):
    """A scheduled entry: at ``at`` (once), and every ``every_hours`` after it when given."""

    model_config = ConfigDict(extra="forbid")

    at: Timestamp
    every_hours: Annotated[float | None, Field(ge=1, le=24 * 366), JSON_NUMBER] = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.utcoffset() is None:
            raise ValueError("needs a UTC offset")
        return value


class EventEntry(BaseModel):
    """When a customer enters. Exactly one of:

    - ``event`` (with ``where`` on its own fields): the moment they do something (``cart_abandon`` with
      ``amount > 20000``);
    - ``segment`` with ``on`` ``enter`` or ``leave``: the moment an event moves them into or out of a saved
      segment (checked as their aggregates change at ingest);
    - ``date_attribute``: ``days_before`` a date in their profile attributes (``points_expire_at``; with
      ``yearly`` the month and day recur: a birthday), checked every hour; ``lifecycle.next_purchase_at``: before
      the expected repurchase of a consumable product (the trigger's ``product_id`` names it);
    - ``schedule``: every member of ``segment`` (or of ``filters``, or everybody) at ``schedule.at``, or every
      ``schedule.every_hours`` from then on. A campaign is a journey with this entry.

    ``where`` applies to an event entry, ``filters`` to a scheduled one.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=rules(
            {
                "oneOf": [
                    given("event"),
                    given("date_attribute"),
                    given("schedule"),
                    rules(given("segment"), left_out("schedule")),
                ]
            },
            {"anyOf": [empty("where"), given("event")]},
            {"anyOf": [empty("filters"), given("schedule")]},
        ),
    )

    event: Annotated[EventType | None, Field(description="an event type, e.g. cart_abandon")] = None
    where: Annotated[
        list[Condition],
        Field(
            max_length=20,
            description="conditions on the event's own fields (amount, properties.<key>)",
            json_schema_extra={"items": {"properties": {"field": {"pattern": OWN_FIELD_PATTERN}}}},
        ),
    ] = Field(default_factory=list)
    segment: Annotated[str | None, Field(pattern=_ID_PATTERN, description="a saved segment's name")] = None
    on: Literal["enter", "leave"] = "enter"
    date_attribute: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    days_before: Annotated[float, Field(ge=-365, le=365), JSON_NUMBER] = 0
    yearly: JsonBool = False
    schedule: Schedule | None = None
    filters: Annotated[
        list[Filter], Field(max_length=50, description="a scheduled entry's audience, beside or instead of segment")
    ] = Field(default_factory=list)

    @field_validator("where")
    @classmethod
    def _own_fields(cls, value: list[Condition]) -> list[Condition]:
        for c in value:
            if not own_event_field(c.field):
                raise ValueError(f"entry conditions read the event's own fields, not '{c.field}'")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> EventEntry:
        kinds = [k for k in ("event", "date_attribute", "schedule") if getattr(self, k) is not None]
        if self.segment is not None and self.schedule is None:
            kinds.append("segment")
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of event, segment, date_attribute, schedule (schedule may name a segment)"
            )
        if self.where and self.event is None:
            raise ValueError("where applies to an event entry")
        if self.filters and self.schedule is None:
            raise ValueError("filters apply to a scheduled entry")
        return self

    @property
    def kind(self) -> str:
        if self.event is not None:
            return "event"
        if self.date_attribute is not None:
            return "date"
        if self.schedule is not None:
            return "schedule"
        return "segment"


class Reentry(BaseModel):
    """Whether a customer may enter again: ``once`` ever, ``once_per`` ``days``, or ``every_time`` (each event)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["once", "once_per", "every_time"] = "once_per"
    days: Annotated[float, Field(gt=0, le=3650), JSON_NUMBER] = 7


class Delay(BaseModel):
    """Wait: ``hours``; or until the next ``local_time`` in the customer's zone; or until the customer's best
    hour within ``best_hour_within_hours`` (the send-time model, asked at this node, for this message)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=rules(
            exactly_one("hours", "local_time", "best_hour_within_hours"),
            {"anyOf": [{"properties": {"explore_share": {"const": 0}}}, given("best_hour_within_hours")]},
        ),
    )
    type: Literal["delay"]
    hours: Annotated[float | None, Field(gt=0, le=24 * 365), JSON_NUMBER] = None
    local_time: LocalTimeOfDay | None = None
    best_hour_within_hours: Annotated[int | None, Field(ge=1, le=168), JSON_INTEGER] = None
    explore_share: Annotated[
        float,
        Field(
            ge=0,
            le=0.5,
            description="best hour: the share of customers sent at another hour, so the model "
            "keeps learning about hours it does not pick (logged with its probability)",
        ),
        JSON_NUMBER,
    ] = 0.0
    next: NodeId

    @model_validator(mode="after")
    def _one(self) -> Delay:
        given = [x is not None for x in (self.hours, self.local_time, self.best_hour_within_hours)]
        if sum(given) != 1:
            raise ValueError("give exactly one of hours, local_time, best_hour_within_hours")
        if self.explore_share and self.best_hour_within_hours is None:
            raise ValueError("explore_share applies to best_hour_within_hours")
        return self

    def min_hours(self) -> float:
        """The least time a path stays here: a local time or a best hour may be now."""
        return self.hours or 0.0


class WaitFor(BaseModel):
    """Wait for the customer to do ``event`` (meeting ``where``) for at most ``timeout_hours``.

    ``message_open`` and ``message_click`` count only for this journey's own messages to this customer.
    """

    model_config = ConfigDict(extra="forbid")
    type: Literal["wait_for"]
    event: EventType
    where: Annotated[list[Condition], Field(max_length=20)] = Field(default_factory=list)
    timeout_hours: Annotated[float, Field(gt=0, le=24 * 365), JSON_NUMBER]
    on_event: NodeId
    on_timeout: NodeId


class Branch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: Annotated[
        list[Condition],
        Field(
            min_length=1,
            max_length=20,
            description="all must hold; the entering event's fields as event.<name>",
            json_schema_extra={"items": {"properties": {"field": {"pattern": CUSTOMER_FIELD_PATTERN}}}},
        ),
    ]
    next: NodeId

    @field_validator("when")
    @classmethod
    def _customer_fields(cls, value: list[Condition]) -> list[Condition]:
        for c in value:
            if own_event_field(c.field):
                raise ValueError(f"a split reads the entering event as 'event.{c.field}', not '{c.field}'")
        return value


class Split(BaseModel):
    """The first branch whose conditions all hold, else ``else``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["split"]
    branches: Annotated[list[Branch], Field(min_length=1, max_length=20)]
    else_: NodeId = Field(alias="else")


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=_ID_PATTERN)]
    share: Annotated[float, Field(gt=0, le=1), JSON_NUMBER]
    next: NodeId


class RandomSplit(BaseModel):
    """A/B: each customer is assigned a variant by a stable hash of journey, customer and entry; logged."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["random_split"]
    variants: Annotated[list[Variant], Field(min_length=2, max_length=10)]

    @model_validator(mode="after")
    def _shares(self) -> RandomSplit:
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variant shares must add up to 1 (they add up to {total:g})")
        if len({v.name for v in self.variants}) != len(self.variants):
            raise ValueError("variant names must differ")
        return self


def _sends_on(channel: str) -> dict[str, Any]:
    return {"required": ["channel"], "properties": {"channel": {"const": channel}}}


class Message(BaseModel):
    """Send on ``channel``, or on the customer's ``best`` channel (the first of ``channels`` they can receive,
    in the order the model ranks them when it has ranked them)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=rules(
            when(_sends_on("best"), {"required": ["channels"], "properties": {"channels": {"minItems": 1}}}),
            *content_rules(),
        ),
    )
    type: Literal["message"]
    channel: Literal["email", "sms", "push", "messenger", "best"]
    channels: Annotated[list[Channel], Field(max_length=4, description="for best: the candidates")] = Field(
        default_factory=list
    )
    content: Messages | None = Field(default=None, description=f"the content (or variants). {CONTENT_RULE_HELP}")
    variants: ContentVariants | None = Field(default=None, description=VARIANTS_HELP)
    auto_promote: AutoPromote | None = None
    promo_pool: PoolName | None = Field(
        default=None, description="hand the path one code of this pool: {{ promo.code }} in the content"
    )
    next: NodeId

    @model_validator(mode="after")
    def _content(self) -> Message:
        wanted = self.channels if self.channel == "best" else [self.channel]
        if self.channel == "best" and not self.channels:
            raise ValueError("best needs channels to choose from")
        check_content(self.content, self.variants, self.auto_promote, list(wanted))
        return self


class Cycle(BaseModel):
    """Message on each of ``channels`` in turn, ``wait_hours`` apart, until the customer engages with one of
    them (``next``), or the offer expires (``on_expiry``). The expiry is ``expires_after_hours`` after the
    cycle began, ``expires_at``, or the entering event's ``expires_at_field`` (``properties.expires_at``),
    whichever is first. ``rounds`` > 1 goes through the channels again. ``wait_hours`` may be a list: the wait
    after each message in turn (the last value repeats)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=rules(*content_rules()))
    type: Literal["cycle"]
    channels: Annotated[list[Channel], Field(min_length=1, max_length=4, json_schema_extra={"uniqueItems": True})]
    content: Messages | None = Field(default=None, description=f"the content (or variants). {CONTENT_RULE_HELP}")
    variants: ContentVariants | None = Field(default=None, description=VARIANTS_HELP)
    auto_promote: AutoPromote | None = None
    wait_hours: (
        Annotated[float, Field(gt=0, le=24 * 30), JSON_NUMBER]
        | Annotated[list[Annotated[float, Field(gt=0, le=24 * 30), JSON_NUMBER]], Field(min_length=1, max_length=40)]
    ) = 24
    rounds: Annotated[int, Field(ge=1, le=10), JSON_INTEGER] = 1
    expires_after_hours: Annotated[float | None, Field(gt=0, le=24 * 365), JSON_NUMBER] = None
    expires_at: Timestamp | None = None
    expires_at_field: Annotated[str | None, Field(pattern=r"^properties\.[A-Za-z0-9_.-]{1,100}$")] = None
    promo_pool: PoolName | None = Field(
        default=None,
        description="hand the path one code of this pool ({{ promo.code }}); its redemption (a promo_redeemed "
        "event or a purchase whose properties.promo_code is the code) ends the cycle as engagement does",
    )
    next: NodeId
    on_expiry: NodeId

    @model_validator(mode="after")
    def _content(self) -> Cycle:
        check_content(self.content, self.variants, self.auto_promote, list(self.channels))
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("each channel at most once per round")
        if self.expires_at is not None and self.expires_at.utcoffset() is None:
            raise ValueError("expires_at needs a UTC offset")
        return self

    def wait_after(self, sent: int) -> float:
        """The wait after the cycle's ``sent``-th message (0-based)."""
        if isinstance(self.wait_hours, list):
            return self.wait_hours[min(sent, len(self.wait_hours) - 1)]
        return self.wait_hours


class Task(BaseModel):
    """Hand the customer to people or another system: an EventBridge event (``detail_type``, with the journey,
    customer and entering event's ids and ``detail``) on the account's default bus."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["task"]
    kind: Literal["eventbridge"] = "eventbridge"
    detail_type: Annotated[str, Field(min_length=1, max_length=128)]
    detail: Annotated[
        dict[str, Any],
        Field(description=f"static fields added to the event's detail, at most {MAX_TASK_DETAIL_BYTES} bytes as JSON"),
    ] = Field(default_factory=dict)
    next: NodeId

    @field_validator("detail")
    @classmethod
    def _fits_an_event(cls, value: dict[str, Any]) -> dict[str, Any]:
        # EventBridge takes entries of at most 256 KB; the journey's and customer's fields go beside these.
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_TASK_DETAIL_BYTES:
            raise ValueError(f"{size} bytes as JSON: at most {MAX_TASK_DETAIL_BYTES}")
        return value


class SetAttribute(BaseModel):
    """Set a profile attribute (``value`` null removes it)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["set_attribute"]
    attribute: Annotated[str, Field(min_length=1, max_length=128)]
    value: str | int | float | bool | None = None
    next: NodeId


class Exit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["exit"]


Node = Annotated[
    Delay | WaitFor | Split | RandomSplit | Message | Cycle | Task | SetAttribute | Exit,
    Field(discriminator="type"),
]


class JourneyIn(BaseModel):
    """``POST /v1/journeys`` and ``PUT /v1/journeys/{id}``: a journey definition."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    entry: EventEntry
    reentry: Reentry = Field(default_factory=Reentry)
    control_share: Annotated[
        float, Field(ge=0, le=0.9, description="entries held out, never messaged"), JSON_NUMBER
    ] = 0.0
    exit_on: Annotated[list[EventType], Field(max_length=10, description="event types that end every path")] = Field(
        default_factory=list
    )
    quiet_hours: QuietHoursIn | None = None
    quiet_channels: Annotated[
        list[Channel] | None,
        Field(description="the channels quiet hours hold (default: all); an email may go at night, an SMS not"),
    ] = None
    frequency_cap: FrequencyCap | None = Field(
        default=None, description="counts every message of the channel, from any journey or campaign"
    )
    transactional: JsonBool = Field(
        default=False,
        description="an order or account message: the deployment's default quiet hours and frequency caps do not "
        "hold it back (its own quiet_hours and frequency_cap still do), nor does an unsubscribe from its topic; "
        "a channel unsubscribe, a bounce or a complaint does",
    )
    topic: Topic = Field(
        default=DEFAULT_TOPIC,
        description="what the messages are about (news, offers...): a customer may unsubscribe from a topic "
        "(the one-click link of every marketing email, the preference page)",
    )
    max_days: Annotated[float, Field(gt=0, le=365, description="a path ends this long after entry"), JSON_NUMBER] = 30
    attribution_days: Annotated[
        int,
        Field(ge=1, le=90, description="a purchase this many days after entering counts as a conversion"),
        JSON_INTEGER,
    ] = 7
    start: NodeId
    nodes: Annotated[dict[str, Node], Field(min_length=1, max_length=MAX_NODES)]

    def channels(self) -> set[str]:
        """Every channel a message of this journey may go out on."""
        out: set[str] = set()
        for node in self.nodes.values():
            if isinstance(node, Message):
                out |= set(node.channels) if node.channel == "best" else {node.channel}
            elif isinstance(node, Cycle):
                out |= set(node.channels)
        return out


JourneyStatus = Literal["draft", "active", "paused", "archived"]
# Allowed moves of a journey's status.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("active", "archived"),
    "active": ("paused", "archived"),
    "paused": ("active", "archived"),
    "archived": (),
}


@dataclass(frozen=True)
class Journey:
    """A stored journey: id, status, the current version and its definition; ``promoted``: node -> the content
    variant that takes all of the node's traffic."""

    journey_id: str
    status: str
    version: int
    definition: JourneyIn
    created_at: str
    updated_at: str
    promoted: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Journey:
        return cls(
            journey_id=doc["journey_id"],
            status=doc["status"],
            version=int(doc["version"]),
            definition=JourneyIn.model_validate(doc["definition"]),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            promoted=dict(doc.get("promoted") or {}),
        )

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class JourneyStatusIn(BaseModel):
    """``POST /v1/journeys/{id}/status``."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "paused", "archived"]


class JourneyView(BaseModel):
    journey_id: str
    status: JourneyStatus
    version: int
    definition: JourneyIn
    created_at: datetime
    updated_at: datetime
    promoted: dict[str, str] = Field(
        default_factory=dict, description="node -> the content variant that takes all of its traffic"
    )


class JourneyList(BaseModel):
    journeys: list[JourneyView]
    next_token: str | None = None


class JourneyResults(BaseModel):
    """Where the journey's customers are and what it sent."""

    journey_id: str
    entries: int = Field(description="customers who entered (control group included)")
    control: int
    active: int = Field(description="paths still waiting or running")
    completed: int
    exited: dict[str, int] = Field(description="ended paths by reason (exit node, exit_on event, expiry...)")
    at_node: dict[str, int] = Field(description="paths waiting at each node")
    skipped: int = Field(
        default=0, description="entries no channel of the journey could reach (consent, unsubscribes): never messaged"
    )
    visits: dict[str, int] = Field(description="how many paths passed each node")
    messages: dict[str, dict[str, int]] = Field(description="channel -> status -> count, from the message log")
    variants: dict[str, int] = Field(description="random split assignments")
    status: str | None = Field(
        default=None, description="the journey's status; 'completed' once archived with no path still active"
    )
    attribution_days: int | None = None
    steps: list[dict[str, Any]] = Field(
        default_factory=list,
        description="per message node and channel: messages by status, opened, clicked, converted (the last "
        "message before the first order in the window) and its revenue",
    )
    by_day: list[dict[str, Any]] = Field(default_factory=list, description="entries, messages and conversions by day")
    treatment: dict[str, Any] | None = Field(
        default=None, description="entrants outside the control group: customers, converted, rate, revenue"
    )
    control: dict[str, Any] | None = Field(default=None, description="the journey's control group, measured alike")
    uplift: dict[str, Any] | None = Field(
        default=None,
        description="conversion rate and revenue per customer, treatment minus control, with 95% intervals",
    )
    variants_by_node: dict[str, Any] = Field(default_factory=dict, description=VARIANT_RESULTS_HELP)
