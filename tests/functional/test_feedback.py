"""SES feedback (EventBridge) becomes events: opens and clicks stop journeys, bounces and complaints suppress."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kairos.messaging.consent import may_send
from kairos.messaging.domain import encode_tag
from tests.helpers import runtime_store

SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "events" / "ses_open.json").read_text())


def ses_event(kind: str, detail_type: str, **extra) -> dict:
    ev = copy.deepcopy(SAMPLE)
    ev["detail-type"] = detail_type
    ev["detail"]["eventType"] = kind
    ev["detail"].pop("open")
    ev["detail"].update(extra)
    return ev


def test_ses_open_becomes_a_message_open_once(runtime, client):
    client.request(
        "PUT",
        "/v1/customers/c1",
        {"timezone": "UTC", "contact": {"email": "c1@example.com"}, "consent": {"email": True}},
    )
    first = runtime.invoke("FeedbackFunction", SAMPLE)
    again = runtime.invoke("FeedbackFunction", SAMPLE)  # EventBridge delivers at least once
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (1, 0, 1)
    store = runtime_store(runtime)
    (ev,) = store.message_events("c1", "camp.c1.")
    assert ev["type"] == "message_open" and ev["message_id"] == "camp.c1.0"


def test_permanent_bounce_and_complaint_suppress_email(runtime, client):
    store = runtime_store(runtime)
    kinds = {
        "c1": ("Bounce", "Email Bounced", "bounce", {"bounceType": "Permanent"}),
        "c2": ("Complaint", "Email Complaint Received", "complaint", {}),
    }
    for cid, (kind, detail_type, key, extra) in kinds.items():
        profile = {"timezone": "UTC", "contact": {"email": "x@example.com"}, "consent": {"email": True}}
        client.request("PUT", f"/v1/customers/{cid}", profile)
        # the bounce comes after consent was given (consent given again later would lift it)
        later = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        ev = ses_event(kind, detail_type, **{key: {**extra, "timestamp": later}})
        ev["detail"]["mail"]["tags"]["kairos_customer_id"] = [encode_tag(cid)]
        ev["detail"]["mail"]["tags"]["kairos_message_id"] = [encode_tag(f"camp.{cid}.0")]
        assert runtime.invoke("FeedbackFunction", ev)["accepted"] == 1
        assert may_send(store.get_customer(cid), "email") == (False, "email suppressed (bounce or complaint)")


def test_transient_bounce_and_foreign_mail_are_ignored(runtime):
    soft = ses_event("Bounce", "Email Bounced", bounce={"bounceType": "Transient", "timestamp": SAMPLE["time"]})
    foreign = copy.deepcopy(SAMPLE)
    foreign["detail"]["mail"]["tags"] = {}
    assert runtime.invoke("FeedbackFunction", soft)["ignored"] == 1
    assert runtime.invoke("FeedbackFunction", foreign)["ignored"] == 1
