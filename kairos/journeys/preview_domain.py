"""The body and answer of ``POST /v1/messages/preview``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kairos.core.constants import CHANNELS, DEFAULT_TOPIC, EVENT_TYPE_PATTERN, TOPIC_PATTERN
from kairos.core.schema_rules import JsonBool, exactly_one, free_json, given, rules, when
from kairos.customers.schemas import (
    _ID_PATTERN,
    MAX_NAME_CHARS,
    MAX_PROPERTIES_BYTES,
    Amount,
    FreeName,
    Quantity,
    Timestamp,
    check_free_json,
)
from kairos.messaging.content import Channel, Messages


class PreviewEvent(BaseModel):
    """The event the message is about (the one that let the customer in): a cart, an order."""

    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, Field(pattern=EVENT_TYPE_PATTERN)]
    timestamp: Timestamp | None = None
    product_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    quantity: Quantity | None = None
    amount: Amount | None = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$")] = None
    text: Annotated[str | None, Field(max_length=4096)] = None
    properties: Annotated[
        dict[FreeName, Any] | None,
        Field(
            description=f"free properties: the limits of an event's (at most {MAX_PROPERTIES_BYTES} bytes as JSON)",
            json_schema_extra={
                "propertyNames": {"minLength": 1, "maxLength": MAX_NAME_CHARS},
                "additionalProperties": free_json(2),
                "x-max-bytes": MAX_PROPERTIES_BYTES,
            },
        ),
    ] = None

    @field_validator("properties")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_free_json(value, MAX_PROPERTIES_BYTES)

    def as_event(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_none=True)
        if self.amount is not None:
            out["amount"] = float(self.amount)
        return out


class PreviewIn(BaseModel):
    """Which customer, which channel, and the content: inline (``content``) or a journey's (``journey_id`` and
    ``node``, with ``variant`` for a node with variants); a campaign's offer is its journey's node ``offer``.
    Inline content has something for ``channel``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=rules(
            exactly_one("content", "journey_id"),
            when(given("journey_id"), given("node")),
            *(
                when(
                    {"required": ["channel"], "properties": {"channel": {"const": channel}}},
                    {"properties": {"content": {"anyOf": [{"type": "null"}, given(channel)]}}},
                )
                for channel in CHANNELS
            ),
        ),
    )
    customer_id: Annotated[str, Field(pattern=_ID_PATTERN)]
    channel: Channel
    content: Messages | None = None
    journey_id: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    node: Annotated[str | None, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")] = None
    variant: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    event: PreviewEvent | None = None
    topic: Annotated[str, Field(pattern=TOPIC_PATTERN)] = DEFAULT_TOPIC
    transactional: JsonBool = False

    @model_validator(mode="after")
    def _one_source(self) -> PreviewIn:
        if (self.content is None) == (self.journey_id is None):
            raise ValueError("give content, or journey_id and node")
        if self.journey_id is not None and self.node is None:
            raise ValueError("node: which node of the journey")
        if self.content is not None and getattr(self.content, self.channel) is None:
            raise ValueError(f"content: nothing for {self.channel}")
        return self


class PreviewOut(BaseModel):
    channel: str
    to: str | None = Field(default=None, description="the contact point it would go to")
    subject: str | None = None
    title: str | None = None
    text: str | None = Field(default=None, description="the plain-text part (SMS, messenger, push body, email text)")
    html: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="List-Unsubscribe and List-Unsubscribe-Post")
    mime: str | None = Field(default=None, description="the raw email as the provider gets it")
    would_send: bool = Field(description="consent, unsubscribes and suppression allow it now")
    reason: str = Field(description="why it would not be sent, or ok")
