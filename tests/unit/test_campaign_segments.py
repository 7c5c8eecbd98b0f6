"""Audience filters over profiles and aggregates, and campaign validation that names the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from kairos.audiences.domain import Filter
from kairos.audiences.matching import matches
from kairos.customers.aggregates import CustomerAggregates, fold_events
from kairos.customers.domain import CustomerRecord
from kairos.customers.schemas import Event, first_error
from kairos.journeys.campaign_domain import CampaignIn

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _customer(days_ago: list[int], cart: float | None = None, country: str = "UK") -> CustomerRecord:
    evs = [
        Event(
            event_id=f"p{i}",
            customer_id="c",
            type="purchase",
            timestamp=NOW - timedelta(days=d),
            product_id=f"SKU{i}",
            amount=10,
        )
        for i, d in enumerate(days_ago)
    ]
    if cart is not None:
        evs.append(
            Event(event_id="cart", customer_id="c", type="cart_abandon", timestamp=NOW - timedelta(days=1), amount=cart)
        )
    agg, _ = fold_events(CustomerAggregates(), evs, set())
    return CustomerRecord(
        "c", exists=True, aggregates=agg, profile={"attributes": {"country": country}, "consent": {"email": True}}
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"field": "bought_product", "value": "SKU1"}], True),
        ([{"field": "bought_product", "value": "SKU9"}], False),
        ([{"field": "purchase_count", "op": "gt", "value": 3}], True),
        ([{"field": "purchase_count", "op": "gt", "value": 4}], False),
        ([{"field": "cart_abandon_amount", "op": "gt", "value": 20000}], True),
        ([{"field": "days_since_last_purchase", "op": "gte", "value": 60}], True),
        ([{"field": "attributes.country", "op": "in", "value": ["UK", "FR"]}], True),
        ([{"field": "consent.sms"}, {"field": "purchase_count", "op": "gt", "value": 0}], False),
        ([{"field": "attributes.age", "op": "gt", "value": 30}], False),
    ],
)
def test_matches_filters_over_profile_and_aggregates(filters, expected):
    # GIVEN a customer with 4 purchases, the latest 61 days ago, and a 25,000 abandoned cart
    record = _customer([61, 90, 120, 200], cart=25000)
    # WHEN/THEN
    assert matches(record, [Filter.model_validate(f) for f in filters], NOW) is expected


def test_matches_no_purchase_never_matches_days_since():
    assert not matches(_customer([]), [Filter(field="days_since_last_purchase", op="gte", value=60)], NOW)


def _campaign(**over):
    body = {
        "name": "winback",
        "audience": {"filters": [{"field": "purchase_count", "op": "gt", "value": 3}]},
        "messages": {
            "email": {"subject": "Hi {{first_name}}", "text": "Look: {{product_id}}"},
            "sms": {"text": "Offer inside"},
        },
        "channels": ["email", "sms"],
        "expires_at": "2026-12-01T00:00:00+00:00",
    }
    body.update(over)
    return body


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"channels": ["email", "push"]}, "(campaign)"),
        ({"channels": []}, "channels"),
        ({"expires_at": "2026-12-01T00:00:00"}, "expires_at"),
        ({"control_share": 1.5}, "control_share"),
        ({"send_time": {"mode": "fixed"}}, "send_time"),
        ({"audience": {"filters": [{"field": "shoe_size", "value": 1}]}}, "audience.filters.0"),
        ({"audience": {"filters": [{"field": "purchase_count", "op": "gt", "value": "3"}]}}, "audience.filters.0"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours.start"),
    ],
)
def test_campaign_in_invalid_definition_names_the_field(override, field):
    with pytest.raises(ValidationError) as exc:
        CampaignIn.model_validate(_campaign(**override))
    got, _ = first_error(exc.value)
    assert got == field or (field == "(campaign)" and got in ("(event)", "")), (got, field)


def test_campaign_in_valid_definition():
    c = CampaignIn.model_validate(_campaign(wait_hours=[12, 48]))
    assert c.wait_after(0) == 12 and c.wait_after(5) == 48


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"starts_at": "9999-01-01T00:00:00+00:00", "expires_at": "9999-01-02T00:00:00+00:00"}, "starts_at"),
        ({"expires_at": "2028-06-01T00:00:00+00:00"}, "expires_at"),
    ],
)
def test_a_campaign_starts_and_ends_within_a_year(override, field):
    from kairos.core.errors import InvalidInputError
    from kairos.journeys.campaigns import create_campaign
    from tests.fakes import InMemoryJourneyStore, InMemorySegmentStore

    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    with pytest.raises(InvalidInputError) as exc:
        create_campaign(
            CampaignIn.model_validate(_campaign(**override)), InMemoryJourneyStore(), InMemorySegmentStore(), now
        )
    assert exc.value.field == field


def test_a_task_nodes_detail_must_fit_an_eventbridge_entry():
    from kairos.journeys.domain import Task

    Task.model_validate({"type": "task", "detail_type": "big_cart", "detail": {"note": "x" * 1000}, "next": "done"})
    with pytest.raises(ValidationError, match="at most 65536"):
        Task.model_validate(
            {"type": "task", "detail_type": "big_cart", "detail": {"note": "x" * 300_000}, "next": "done"}
        )
