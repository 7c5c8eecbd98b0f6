"""A stored customer, and what one ingestion writes for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kairos.customers.aggregates import CustomerAggregates

if TYPE_CHECKING:
    from kairos.customers.schemas import Event


@dataclass
class CustomerRecord:
    """A customer as stored: profile, aggregates, the latest recommendation and the optimistic-lock version.

    ``exists`` is ``False`` for a customer about to be created (nothing stored yet, version 0).
    """

    customer_id: str
    version: int = 0
    exists: bool = False
    aggregates: CustomerAggregates = field(default_factory=CustomerAggregates)
    profile: dict[str, Any] | None = None
    recommendation: dict[str, Any] | None = None
    updated_at: str | None = None
    consent_at: str | None = None  # when the profile's consent last changed (server time)
    erased_at: str | None = None  # when the customer was last erased (the tombstone that outlives the data)
    channel_sends: dict[str, int] = field(default_factory=dict)  # delivered messages by channel

    @property
    def erased(self) -> bool:
        """Only a tombstone is left: the customer was erased and nothing new was learnt since."""
        return self.erased_at is not None and not self.profile and not self.aggregates.has_data

    @property
    def timezone(self) -> str:
        """The zone local hours are counted and planned in: the profile's, else the one inferred from the
        offsets the customer's events carry, else UTC."""
        return (self.profile or {}).get("timezone") or self.aggregates.effective_timezone or "UTC"

    @property
    def attributes(self) -> dict[str, Any]:
        return (self.profile or {}).get("attributes") or {}


@dataclass
class IngestState:
    """What ingestion reads before writing: the customers, and which events and moments exist already."""

    customers: dict[str, CustomerRecord]
    existing_events: set[tuple[str, str]]
    existing_moments: set[tuple[str, str]]
    # Events already folded into their customer's aggregates whose own items may not be stored yet (a write that
    # stopped between the two): stored again, never folded again.
    folded_events: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class CustomerWrite:
    """One customer's share of an ingestion transaction: new events, new moments, new aggregates."""

    record: CustomerRecord
    events: list[Event]
    moments: list[str]
    aggregates: CustomerAggregates
    # Events an earlier write folded but did not finish storing: stored now, not folded again.
    unstored: list[Event] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Items this write takes in a transaction (one per event and moment, one for the customer)."""
        return len(self.events) + len(self.moments) + 1
