"""The JSON Schema of each request model states the rules its validators check: for every sample body, the
model and its JSON Schema (what the OpenAPI document shows) accept it, or both refuse it."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel, ValidationError

from kairos.audiences.domain import FIELD_ALIASES, FILTER_FIELD_PATTERN, Filter, SegmentBody, filter_fields
from kairos.core.schema_rules import FREE_JSON_MARK, add_free_json_components, free_json_components
from kairos.customers.schemas import (
    MAX_FREE_DEPTH,
    MAX_FREE_STRING_CHARS,
    MAX_NAME_CHARS,
    ContactPoints,
    CustomerProfileIn,
)
from kairos.insights.domain import ForecastIn, SegmentPreviewIn
from kairos.journeys.campaign_domain import SendTime
from kairos.journeys.condition_domain import Condition
from kairos.journeys.domain import Delay, EventEntry, Message
from kairos.journeys.preview_domain import PreviewIn
from kairos.messaging.content import EmailMessage
from kairos.messaging.policy import Cap
from kairos.models.catalogue import ProductIn
from kairos.promotions.domain import PromoCodesIn

EMAIL = {"subject": "Hi", "text": "Hello"}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    # As the OpenAPI document has it: free JSON marks point at the FreeJsonLevel components.
    doc = {**model.model_json_schema(ref_template="#/components/schemas/{model}"), "components": {}}
    doc["components"]["schemas"] = doc.pop("$defs", {})
    add_free_json_components(doc, free_json_components(MAX_FREE_DEPTH, MAX_NAME_CHARS, MAX_FREE_STRING_CHARS))
    assert FREE_JSON_MARK not in str(doc)
    return doc


def _accepts(model: type[BaseModel], body: Any) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


CASES: list[tuple[type[BaseModel], Any]] = [
    # a filter: a condition, or a group of exactly one of all/any/not, and nothing of a condition in a group
    (Filter, {"field": "purchase_count", "op": "gte", "value": 1}),
    (Filter, {"field": "purchase_count", "op": "gte", "value": "1"}),
    (Filter, {"field": "purchase_count", "op": "gte", "value": True}),
    (Filter, {"field": "aggregates.purchase_count", "value": 2}),
    (Filter, {"field": "purchase_count", "op": "exists"}),
    (Filter, {"field": "shoe_size", "value": 1}),
    (Filter, {"field": "rfm.segment", "value": "loyal"}),
    (Filter, {"field": "attributes.tier", "value": {"a": [1, 2]}}),
    (Filter, {"field": "attributes.tier", "value": {"": 1}}),
    (Filter, {"field": "attributes.tier", "value": 1e200}),
    (Filter, {"field": "attributes.tier", "value": "x" * 5000}),
    (Filter, {"field": "attributes.tier", "op": "in", "value": "gold"}),
    (Filter, {"field": "attributes.tier", "op": "in", "value": ["gold"]}),
    (Filter, {"field": "attributes.tier", "value": "gold", "within_days": 3}),
    (Filter, {"field": "events.purchase", "op": "gt", "value": 0, "within_days": 30, "channel": "email"}),
    (Filter, {"field": "events.purchase", "op": "gt", "value": 0}),
    (Filter, {"field": "events.Purchase", "op": "gt", "value": 0, "within_days": 30}),
    (Filter, {"field": "messages.sent", "value": 1, "within_days": 7, "campaign_id": "c1"}),
    (Filter, {"field": "messages.bounced", "value": 1, "within_days": 7}),
    (Filter, {"field": "events.purchase", "value": 1, "within_days": 7, "campaign_id": "c1"}),
    (Filter, {"field": "bought_product", "value": "SKU-1"}),
    (Filter, {"field": "bought_product", "value": 7}),
    (Filter, {"field": "consent.email", "value": True}),
    (Filter, {"any": [{"field": "purchase_count", "value": 1}]}),
    (Filter, {"any": [{"field": "purchase_count", "value": 1}], "not": {"field": "purchase_count", "value": 1}}),
    (Filter, {"any": [{"field": "purchase_count", "value": 1}], "value": 3}),
    (Filter, {"field": "purchase_count", "value": 1, "all": []}),
    (Filter, {}),
    (Filter, {"field": "purchase_count", "value": 1, "within_days": True}),
    (SegmentBody, {"filters": []}),
    (SegmentBody, {"name": "vip", "filters": []}),
    (SegmentPreviewIn, {"segment": "vip", "filters": [{"field": "purchase_count", "value": 1}]}),
    (SegmentPreviewIn, {"segment": "vip", "filters": []}),
    (SegmentPreviewIn, {"sample": True}),
    (ForecastIn, {"start": "2026-01-01", "end": "2026-02-01", "segment": "vip", "journey_id": "0" * 32}),
    (ForecastIn, {"start": "2026-01-01", "end": "2026-02-01", "filters": [], "journey_id": "0" * 32}),
    # a journey's entry is exactly one kind; where goes with an event, filters with a schedule
    (EventEntry, {"event": "cart_abandon"}),
    (EventEntry, {"event": "Cart"}),
    (EventEntry, {"event": "cart_abandon", "segment": "vip"}),
    (EventEntry, {"segment": "vip", "on": "leave"}),
    (EventEntry, {"segment": "vip", "schedule": {"at": "2026-01-01T00:00:00Z"}}),
    (EventEntry, {"schedule": {"at": "2026-01-01T00:00:00"}}),
    (EventEntry, {"schedule": {"at": 1_780_000_000}}),
    (EventEntry, {"date_attribute": "birthday", "yearly": 1}),
    (EventEntry, {}),
    (EventEntry, {"event": None, "segment": "vip"}),
    (EventEntry, {"segment": "vip", "where": [{"field": "amount", "op": "gt", "value": 1}]}),
    (EventEntry, {"event": "purchase", "where": [{"field": "amount", "op": "gt", "value": 1}]}),
    (EventEntry, {"event": "purchase", "where": [{"field": "purchase_count", "value": 1}]}),
    (EventEntry, {"segment": "vip", "filters": [{"field": "purchase_count", "value": 1}]}),
    # a condition
    (Condition, {"field": "event.amount", "op": "gt", "value": 5}),
    (Condition, {"field": "event.amountz", "op": "gt", "value": 5}),
    (Condition, {"field": "segment", "value": "vip"}),
    (Condition, {"field": "segment", "op": "gt", "value": "vip"}),
    (Condition, {"field": "purchase_count", "value": "x"}),
    (Condition, {"field": "events.purchase", "value": 1}),
    (Condition, {"field": "attributes.tags", "op": "contains", "value": "x"}),
    (Condition, {"field": "nowhere", "op": "contains", "value": "x"}),
    (Condition, {"field": "amount", "op": "in", "value": 5}),
    (Condition, {"field": "amount", "op": "gt", "value": True}),
    # a delay is exactly one of hours, local_time, best_hour_within_hours
    (Delay, {"type": "delay", "hours": 2, "next": "a"}),
    (Delay, {"type": "delay", "hours": 2, "local_time": "09:00", "next": "a"}),
    (Delay, {"type": "delay", "local_time": "09:00:00+02:00", "next": "a"}),
    (Delay, {"type": "delay", "local_time": 3600, "next": "a"}),
    (Delay, {"type": "delay", "hours": 2, "explore_share": 0.1, "next": "a"}),
    (Delay, {"type": "delay", "best_hour_within_hours": 24, "explore_share": 0.1, "next": "a"}),
    (Delay, {"type": "delay", "best_hour_within_hours": 24.0, "next": "a"}),
    (Delay, {"type": "delay", "best_hour_within_hours": "24", "next": "a"}),
    # content or variants, auto_promote with variants; an email has a body, html or mjml
    (Message, {"type": "message", "channel": "email", "content": {"email": EMAIL}, "next": "a"}),
    (Message, {"type": "message", "channel": "email", "next": "a"}),
    (Message, {"type": "message", "channel": "best", "content": {"email": EMAIL}, "next": "a"}),
    (Message, {"type": "message", "channel": "email", "content": {"email": EMAIL}, "auto_promote": {}, "next": "a"}),
    (EmailMessage, {"subject": "Hi", "html": "<p>x</p>"}),
    (EmailMessage, {"subject": "Hi", "html": "<p>x</p>", "mjml": "<mjml></mjml>"}),
    (EmailMessage, {"subject": "Hi", "html": ""}),
    (SendTime, {"mode": "fixed"}),
    (SendTime, {"mode": "fixed", "local_time": "09:00"}),
    (PreviewIn, {"customer_id": "c1", "channel": "sms", "content": {"sms": {"text": "x"}}}),
    (PreviewIn, {"customer_id": "c1", "channel": "email", "content": {"sms": {"text": "x"}}}),
    (PreviewIn, {"customer_id": "c1", "channel": "sms", "journey_id": "j1"}),
    (PreviewIn, {"customer_id": "c1", "channel": "sms", "journey_id": "j1", "node": "a", "transactional": 0}),
    (PreviewIn, {"customer_id": "c1", "channel": "sms", "event": {"type": "purchase", "amount": "5"}}),
    # a cap gives per_day or per_week; scalars are JSON's
    (Cap, {}),
    (Cap, {"per_day": 2}),
    (Cap, {"per_week": False}),
    (PromoCodesIn, {"codes": ["A"], "low_water": -1}),
    (PromoCodesIn, {"codes": ["A"], "low_water": False}),
    (PromoCodesIn, {"codes": ["A"], "low_water": 5.0}),
    (ProductIn, {"name": "x", "price": 1.2345, "consumable": 0}),
    (ProductIn, {"name": "x", "price": 1.23456}),
    (ProductIn, {"name": "x", "url": "ftp://example.com"}),
    # a profile: a zone of the tz database, contact points as they are written, attribute names as sent
    (CustomerProfileIn, {"timezone": "Europe/London", "attributes": {"\t": 1}}),
    (CustomerProfileIn, {"timezone": "EST5EDT"}),
    (CustomerProfileIn, {"timezone": "Mars/Olympus"}),
    (CustomerProfileIn, {"consent": {"email": 1}}),
    (CustomerProfileIn, {"attributes": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}),
    (CustomerProfileIn, {"attributes": {"a": {"b": {"c": {"d": {"e": 1}}}}}}),
    (ContactPoints, {"email": "ana@example.com", "phone": "+33612345678"}),
    (ContactPoints, {"email": "ana\x1c@example.com"}),
    (ContactPoints, {"phone": "0612345678"}),
]


@pytest.mark.parametrize(("model", "body"), CASES)
def test_schema_rules_the_json_schema_and_the_model_agree(model, body):
    # GIVEN a request model and the JSON Schema the OpenAPI document shows for it
    validator = jsonschema_rs.validator_for(_schema(model))
    # WHEN both read the same body THEN both accept it or both refuse it
    assert validator.is_valid(body) == _accepts(model, body), body


def test_schema_rules_the_filter_field_pattern_names_every_filter_field():
    # GIVEN every field the filter reference lists (a family by one of its members), and the aliases
    fields = [
        f.field.replace("<name>", "tier").replace("<type>", "purchase").replace("<status>", "sent")
        for f in filter_fields()
    ]
    # THEN the pattern the document shows takes each of them
    assert [f for f in [*fields, *FIELD_ALIASES] if not re.match(FILTER_FIELD_PATTERN, f)] == []
