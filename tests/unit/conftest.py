"""Unit fixtures: fresh in-memory fakes of every port, a fixed clock, and factories for customers and campaigns.

No moto, no network: the logic runs against ``tests/fakes.py`` (DEMO ``tests/unit/stream_processor/conftest.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from kairos.customers.ingest import ingest_events
from kairos.customers.profiles import put_profile
from kairos.customers.schemas import CustomerProfileIn
from kairos.journeys.campaign_domain import CampaignIn
from kairos.journeys.campaigns import create_campaign
from tests.fakes import (
    FakeProvider,
    InMemoryCustomerStore,
    InMemoryDecisionLog,
    InMemoryEventArchive,
    InMemoryJourneyStore,
    InMemoryMessageLog,
    InMemorySegmentStore,
    RecordingJourneyStarter,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.customers.schemas import CustomerView, IngestResult

# A Monday noon (UTC), so hours of week are easy to read: Monday 12:00 is hour 12.
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
RETENTION = timedelta(days=400)
SKEW = timedelta(minutes=5)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def customers() -> InMemoryCustomerStore:
    return InMemoryCustomerStore()


@pytest.fixture
def archive() -> InMemoryEventArchive:
    return InMemoryEventArchive()


@pytest.fixture
def campaigns() -> InMemorySegmentStore:
    return InMemorySegmentStore()


@pytest.fixture
def journeys() -> InMemoryJourneyStore:
    return InMemoryJourneyStore()


@pytest.fixture
def starter() -> RecordingJourneyStarter:
    return RecordingJourneyStarter()


@pytest.fixture
def decisions(customers) -> InMemoryDecisionLog:
    return InMemoryDecisionLog(customers)


@pytest.fixture
def messages() -> InMemoryMessageLog:
    return InMemoryMessageLog()


@pytest.fixture
def email_provider() -> FakeProvider:
    return FakeProvider("email")


def make_event(
    event_id: str, customer_id: str = "c1", type: str = "session", ts: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    """A raw event as a client posts it (``ts`` defaults to an hour before ``NOW``)."""
    at = ts or NOW - timedelta(hours=1)
    return {"event_id": event_id, "customer_id": customer_id, "type": type, "timestamp": at.isoformat(), **extra}


@pytest.fixture
def ingest(customers: InMemoryCustomerStore, now: datetime) -> Callable[..., IngestResult]:
    """Ingest raw events into the fake customer store at ``now`` (or at the given time)."""

    def _ingest(events: list[Any], at: datetime | None = None) -> IngestResult:
        return ingest_events(events, customers, at or now, RETENTION, SKEW)

    return _ingest


@pytest.fixture
def add_customer(customers: InMemoryCustomerStore, now: datetime) -> Callable[..., CustomerView]:
    """PUT a profile through the logic; by default a UTC customer who may be emailed."""

    def _add(
        customer_id: str,
        timezone: str | None = "UTC",
        consent: dict[str, bool] | None = None,
        contact: dict[str, str] | None = None,
        attributes: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> CustomerView:
        profile = CustomerProfileIn.model_validate(
            {
                "timezone": timezone,
                "contact": contact if contact is not None else {"email": f"{customer_id}@example.com"},
                "consent": consent if consent is not None else {"email": True},
                "attributes": attributes or {},
            }
        )
        return put_profile(customer_id, profile, customers, at or now)

    return _add


def campaign_body(**over: Any) -> dict[str, Any]:
    """A valid ``POST /v1/campaigns`` body: email to everybody, expiring two days after ``NOW``."""
    body: dict[str, Any] = {
        "name": "spring",
        "audience": {"filters": []},
        "messages": {"email": {"subject": "Hi {{first_name}}", "text": "Hello {{first_name}}"}},
        "channels": ["email"],
        "expires_at": (NOW + timedelta(days=2)).isoformat(),
        "control_share": 0.0,
    }
    body.update(over)
    return body


@pytest.fixture
def add_campaign(campaigns: InMemorySegmentStore, journeys: InMemoryJourneyStore, now: datetime) -> Callable[..., str]:
    """Create a campaign through the logic (a journey with a scheduled entry) and return its id."""

    def _add(**over: Any) -> str:
        campaign = CampaignIn.model_validate(campaign_body(**over))
        return create_campaign(campaign, journeys, campaigns, now)["campaign_id"]

    return _add


@pytest.fixture
def world(customers, campaigns, messages, add_customer) -> Any:
    from tests.unit.journey_world import World

    w = World(customers, campaigns, messages)
    add_customer(
        "c1",
        consent={"email": True, "sms": True, "push": True, "messenger": True},
        contact={"email": "c1@example.com", "phone": "+447700900123", "push_token": "t1", "messenger_chat_id": "1001"},
        attributes={"first_name": "Ana"},
    )
    return w
