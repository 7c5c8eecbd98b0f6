"""Messages a shop really sends, through the real template: Liquid content with the event's lines from the
catalogue, escaped profile data, the raw email with one-click unsubscribe headers, the public unsubscribe and
preference routes, topics against transactional messages, SMS STOP, and the preview."""

from __future__ import annotations

import email
import email.policy
import urllib.parse

import pytest

from kairos_local.outbox import outbox
from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.conftest import Client
from tests.functional.journey_stack import settle
from tests.functional.test_triggered_journeys import START

ORDER_HTML = (
    "<h1>Hi {{ customer.first_name }}</h1><p>Order {{ event.properties.order_id }} is on its way:</p><ul>"
    "{% for line in event.lines %}<li>{{ line.quantity }} × {{ line.name }}</li>{% endfor %}</ul>"
    "<p>Total {{ event.total | money }}</p>"
)
SHIPPED = {
    "name": "Order shipped",
    "entry": {"event": "order_shipped"},
    "reentry": {"mode": "every_time"},
    "transactional": True,
    "topic": "orders",
    "start": "notice",
    "nodes": {
        "notice": {
            "type": "message",
            "channel": "email",
            "content": {"email": {"subject": "Order {{ event.properties.order_id }} shipped", "html": ORDER_HTML}},
            "next": "done",
        },
        "done": {"type": "exit"},
    },
}
CART = {
    "name": "Abandoned cart",
    "entry": {"event": "cart_abandon"},
    "reentry": {"mode": "every_time"},
    "topic": "offers",
    "start": "remind",
    "nodes": {
        "remind": {
            "type": "message",
            "channel": "email",
            "content": {
                "email": {
                    "subject": "{{ first_name }}, your cart is waiting",
                    "html": "{% for line in event.lines %}<p>{{ line.name }} {{ line.price | money }}</p>{% endfor %}"
                    "<p>Total {{ event.total | money }}</p><a href='{{ unsubscribe_url }}'>Unsubscribe</a>",
                }
            },
            "next": "done",
        },
        "done": {"type": "exit"},
    },
}
SMS = {
    "name": "Back in stock",
    "entry": {"event": "back_in_stock"},
    "reentry": {"mode": "every_time"},
    "topic": "offers",
    "start": "text",
    "nodes": {
        "text": {
            "type": "message",
            "channel": "sms",
            "content": {"sms": {"text": "Back: {{ event.product_id }}"}},
            "next": "done",
        },
        "done": {"type": "exit"},
    },
}


@pytest.fixture
def shop(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        client = Client(runtime)
        for pid, name, price in (("sku-1", "Espresso beans 1 kg", 24.5), ("sku-2", "Milk jug", 12)):
            assert client.request("PUT", f"/v1/products/{pid}", {"name": name, "price": price}).status == 200
        profile = {
            "timezone": "Europe/London",
            "locale": "en-GB",
            "currency": "GBP",
            "contact": {"email": "ana@example.com", "phone": "+447700900123"},
            "consent": {"email": True, "sms": True},
            "attributes": {"first_name": "<script>alert(1)</script>"},
        }
        assert client.request("PUT", "/v1/customers/ana", profile).status == 200
        for journey in (SHIPPED, CART, SMS):
            resp = client.request("POST", "/v1/journeys", journey)
            assert resp.status == 201, resp.body
            jid = resp.json()["journey_id"]
            assert client.request("POST", f"/v1/journeys/{jid}/status", {"status": "active"}).status == 200
        yield client, clock, sfn, runtime


def _post(client, clock, event_id: str, type_: str, **extra) -> None:
    event = {"event_id": event_id, "customer_id": "ana", "type": type_, "timestamp": clock.now().isoformat(), **extra}
    resp = client.post_events([event])
    assert resp.status == 200 and resp.json()["accepted"] == 1, resp.body


def _journey(client, name: str) -> str:
    journeys = client.request("GET", "/v1/journeys").json()["journeys"]
    return next(j["journey_id"] for j in journeys if j["definition"]["name"] == name)


def _texts(runtime) -> list[str]:
    return [m["text"] for m in outbox(runtime.dep.account, runtime.dep.region) if m["channel"] == "sms"]


def _skipped(client, name: str) -> int:
    return client.request("GET", f"/v1/journeys/{_journey(client, name)}/results").json()["skipped"]


def _emails(runtime) -> list[dict]:
    return [m for m in outbox(runtime.dep.account, runtime.dep.region) if m["channel"] == "email"]


def _statuses(client) -> list[tuple[str, str, str]]:
    msgs = client.request("GET", "/v1/customers/ana/messages").json()["messages"]
    return sorted((m["node"], m["status"], m["reason"]) for m in msgs)


ITEMS = {
    "order_id": "o-1",
    "items": [
        {"product_id": "sku-1", "quantity": 2, "price": 24.5},
        {"product_id": "sku-2", "quantity": 1, "price": 12},
    ],
}


def test_an_order_email_lists_its_lines_escapes_the_profile_and_carries_no_unsubscribe(shop):
    client, clock, sfn, runtime = shop
    # WHEN the shop posts its own order_shipped event with two lines
    _post(client, clock, "s1", "order_shipped", currency="GBP", properties=ITEMS)
    settle(runtime, clock, sfn)
    # THEN the email in the outbox names the products from the catalogue, the total in pounds, escaped markup
    (mail,) = _emails(runtime)
    assert mail["subject"] == "Order o-1 shipped"
    assert "2 × Espresso beans 1 kg" in mail["html"] and "1 × Milk jug" in mail["html"]
    assert "£61.00" in mail["html"]
    assert "<script>" not in mail["html"] and "&lt;script&gt;" in mail["html"]
    # AND a transactional message carries no List-Unsubscribe, and has a plain-text part
    assert "List-Unsubscribe" not in mail["headers"] and "Espresso beans" in mail["text"]


def test_one_click_unsubscribe_stops_the_topic_not_transactional_messages(shop):
    client, clock, sfn, runtime = shop
    # GIVEN an abandoned-cart email (marketing, topic offers)
    _post(client, clock, "c1", "cart_abandon", currency="GBP", properties=ITEMS)
    settle(runtime, clock, sfn)
    (mail,) = _emails(runtime)
    raw = email.message_from_string(mail["raw"], policy=email.policy.default)
    # THEN it carries both RFC 8058 headers, and the body's link is the same signed URL
    assert raw["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(raw["List-Unsubscribe"]).strip("<>")
    assert url in mail["html"] and "£24.50" in mail["html"] and "£61.00" in mail["html"]
    path = urllib.parse.urlsplit(url).path
    path = path[path.index("/v1/") :]
    # WHEN the mailbox provider POSTs the one-click body, without any API key (twice: idempotent)
    for _ in range(2):
        resp = runtime.http(
            "POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click"
        )
        assert resp.status == 200, resp.body
    clock.advance(60)
    # AND another cart is abandoned, and an order ships
    _post(client, clock, "c2", "cart_abandon", currency="GBP", properties=ITEMS)
    _post(client, clock, "s2", "order_shipped", currency="GBP", properties=ITEMS)
    settle(runtime, clock, sfn)
    # THEN the second cart email is not sent (topic offers: the cart journey lets nobody in) while the order
    # notice is
    assert _statuses(client) == [("notice", "sent", "ok"), ("remind", "sent", "ok")]
    assert _skipped(client, "Abandoned cart") == 1
    # AND the unsubscribe is an event on the customer, counted once
    assert client.request("GET", "/v1/customers/ana").json()["aggregates"]["event_counts"]["unsubscribe"] == 1
    # AND a cut link answers 400, the preference page shows the topic switched off
    assert runtime.http("POST", path[:-3], {}, "List-Unsubscribe=One-Click").status == 400
    page = runtime.http("GET", path.replace("/unsubscribe/", "/preferences/"))
    assert page.status == 200 and "value='offers'>" in page.body and "value='email' checked" in page.body


def test_preference_page_switches_topics_and_channels_back_on(shop):
    client, clock, sfn, runtime = shop
    _post(client, clock, "c1", "cart_abandon", properties=ITEMS)
    settle(runtime, clock, sfn)
    url = str(email.message_from_string(_emails(runtime)[0]["raw"], policy=email.policy.default)["List-Unsubscribe"])
    prefs = urllib.parse.urlsplit(url.strip("<>")).path.replace("/unsubscribe/", "/preferences/")
    prefs = prefs[prefs.index("/v1/") :]
    # WHEN the customer unticks SMS and keeps email and offers
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = runtime.http("POST", prefs, form, "channel=email&topic=offers&saved=1")
    assert resp.status == 200 and "Saved." in resp.body
    clock.advance(60)
    _post(client, clock, "b1", "back_in_stock", product_id="sku-1")
    settle(runtime, clock, sfn)
    # THEN no SMS goes: the customer does not even enter the SMS journey
    assert _texts(runtime) == [] and _skipped(client, "Back in stock") == 1
    # WHEN SMS is ticked again
    clock.advance(60)
    assert runtime.http("POST", prefs, form, "channel=email&channel=sms&topic=offers&saved=1").status == 200
    clock.advance(60)
    _post(client, clock, "b2", "back_in_stock", product_id="sku-2")
    settle(runtime, clock, sfn)
    # THEN it goes again
    assert _texts(runtime) == ["Back: sku-2"]


def test_a_stop_reply_stops_sms_and_start_resumes(shop):
    client, clock, sfn, runtime = shop
    # GIVEN the customer replied STOP to a text
    _post(client, clock, "in1", "message_inbound", channel="sms", text="Stop")
    clock.advance(60)
    _post(client, clock, "b1", "back_in_stock", product_id="sku-1")
    settle(runtime, clock, sfn)
    assert _texts(runtime) == [] and _skipped(client, "Back in stock") == 1
    # WHEN they reply START
    clock.advance(60)
    _post(client, clock, "in2", "message_inbound", channel="sms", text="START")
    clock.advance(60)
    _post(client, clock, "b2", "back_in_stock", product_id="sku-1")
    settle(runtime, clock, sfn)
    # THEN texts go again
    assert _texts(runtime) == ["Back: sku-1"]


def test_preview_renders_as_the_send_does_and_a_bad_template_is_refused_with_its_line(shop):
    client, clock, sfn, runtime = shop
    cart = _journey(client, "Abandoned cart")
    # WHEN a message of the journey is previewed for the customer and a cart
    body = {
        "customer_id": "ana",
        "channel": "email",
        "journey_id": cart,
        "node": "remind",
        "event": {"type": "cart_abandon", "currency": "GBP", "properties": ITEMS},
    }
    resp = client.request("POST", "/v1/messages/preview", body)
    # THEN it is the email the send would make, with its headers and raw MIME
    assert resp.status == 200, resp.body
    out = resp.json()
    assert "Espresso beans 1 kg" in out["html"] and "£61.00" in out["html"] and out["would_send"] is True
    assert out["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # the subject is plain text (a header, never HTML): the name is neither escaped nor interpreted
    assert out["subject"] == "<script>alert(1)</script>, your cart is waiting"
    # AND an unknown customer is 404
    assert client.request("POST", "/v1/messages/preview", {**body, "customer_id": "nobody"}).status == 404
    # AND a template that does not parse is refused at save time with its line and column
    broken = {
        **CART,
        "nodes": {
            **CART["nodes"],
            "remind": {
                **CART["nodes"]["remind"],
                "content": {
                    "email": {"subject": "Hi", "html": "<p>fine</p>\n{% for line in event.lines %}\n{{ line.name }"}
                },
            },
        },
    }
    resp = client.request("POST", "/v1/journeys", broken)
    assert resp.status == 400
    assert "line 3" in resp.json()["message"] and "nodes.remind" in resp.json()["message"], resp.body
