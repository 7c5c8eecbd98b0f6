"""A customer's events as they were stored, newest first: the timeline the console draws beside their messages.

Events are kept per customer (one item each, for the retention period) under their id, not their time, so the
timeline reads the customer's stored events with one paginated Query and sorts them: its cost grows with that
customer's history within the retention, never with the number of customers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from kairos.customers.ports import CustomerStore

DEFAULT_EVENTS = 50
MAX_EVENTS = 500


class StoredEvent(BaseModel):
    """An event as it was accepted (``POST /v1/events``), without ``customer_id``."""

    event_id: str
    type: str
    timestamp: datetime = Field(description="with the UTC offset it was sent with")
    channel: str | None = None
    message_id: str | None = None
    product_id: str | None = None
    quantity: float | None = None
    amount: float | None = None
    currency: str | None = None
    text: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class EventList(BaseModel):
    customer_id: str
    events: list[StoredEvent] = Field(description="newest first")
    total: int = Field(
        description="the customer's stored events (within the retention), of which `events` are the newest"
    )


def recent_events(store: CustomerStore, customer_id: str, limit: int = DEFAULT_EVENTS) -> EventList:
    """The customer's ``limit`` newest stored events (none for a customer never seen or erased)."""
    records = store.customer_events(customer_id)
    records.sort(key=lambda r: (datetime.fromisoformat(r["timestamp"]).timestamp(), r["event_id"]), reverse=True)
    events = [StoredEvent.model_validate({k: v for k, v in r.items() if k != "customer_id"}) for r in records[:limit]]
    return EventList(customer_id=customer_id, events=events, total=len(records))
