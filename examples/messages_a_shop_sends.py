"""A shop's own messages, end to end against a running Kairos (``make serve``), checked from the outside.

    make serve                                  # in one terminal
    python examples/messages_a_shop_sends.py    # in another: about half a minute

What it does, as a shop's developer would:

1. puts two products in the catalogue and a customer whose first name holds ``<script>``;
2. saves an order-shipped journey (transactional, topic ``orders``) entered on the shop's own ``order_shipped``
   event, an abandoned-cart journey (marketing, topic ``offers``) and a back-in-stock SMS journey, with Liquid
   templates that list the event's lines with the catalogue's names and the total in the customer's currency;
   a template with a syntax error is refused at save time with its line;
3. posts ``order_shipped`` and ``cart_abandon`` events and reads the local outbox (``GET /_local/outbox``):
   the order email names the products, the cart email lists its lines and total in pounds, the name appears
   escaped, the raw marketing email carries ``List-Unsubscribe`` and ``List-Unsubscribe-Post``;
4. POSTs the one-click URL as a mailbox provider would (no API key): the next cart email is not sent, the next
   order notice is;
5. replies STOP by SMS: the next text is not sent; START: it is again;
6. previews the cart email through ``POST /v1/messages/preview`` and compares it with what was sent.

It exits 1 when a check fails. Against a deployed stack there is no outbox: use ``--api`` and ``--key`` with
the preview only (``--preview-only``).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import sys
import time
import urllib.parse
from datetime import UTC
from typing import Any

import kairos_client

ITEMS = [{"product_id": "sku-1", "quantity": 2, "price": 24.5}, {"product_id": "sku-2", "quantity": 1, "price": 12}]
ORDER_HTML = (
    "<h1>Hi {{ customer.first_name }}</h1><p>Order {{ event.properties.order_id }} is on its way:</p><ul>"
    "{% for line in event.lines %}<li>{{ line.quantity }} × {{ line.name }}</li>{% endfor %}</ul>"
    "<p>Total {{ event.total | money }}</p>"
)
CART_HTML = (
    "<p>{{ first_name }}, you left these behind:</p>"
    "{% for line in event.lines %}<p>{{ line.name }} × {{ line.quantity }}: {{ line.price | money }}</p>{% endfor %}"
    "<p>Total {{ event.total | money }}</p><p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"
)


class Api(kairos_client.Api):
    def mail_to(self, to: str) -> list[dict[str, Any]]:
        return [m for m in self.outbox() if to in m["to"]]

    def event(self, customer_id: str, event_id: str, kind: str, **more: Any) -> None:
        event = {
            "event_id": event_id,
            "customer_id": customer_id,
            "type": kind,
            "timestamp": self.now().isoformat(),
            **more,
        }
        result = self.call("POST", "/v1/events", {"events": [event]})
        if result["accepted"] != 1 and result.get("duplicates") != 1:
            raise SystemExit(f"event {event_id} refused: {result}")


def journey(name: str, entry: str, topic: str, node: dict[str, Any], transactional: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "entry": {"event": entry, "where": [{"field": "properties.run", "op": "eq", "value": "__RUN__"}]},
        "reentry": {"mode": "every_time"},
        "transactional": transactional,
        "topic": topic,
        "start": "send",
        "nodes": {"send": {**node, "next": "done"}, "done": {"type": "exit"}},
    }


def wait_for(api: Api, to: str, count: int, channel: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [m for m in api.mail_to(to) if m["channel"] == channel]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8787")
    parser.add_argument("--key", default="kairos-local-dev-key")
    args = parser.parse_args(argv)
    api = Api(args.api, args.key)
    run = str(int(time.time()))
    cid, mail, phone = f"ana-{run}", f"ana-{run}@example.com", f"+4477009{run[-5:]}"
    checks: dict[str, bool] = {}

    # 1. The catalogue and the customer. Quiet hours hold texts at night in the customer's zone: this customer
    # lives where it is early afternoon now, so the SMS checks need not wait for morning.
    utc_hour = api.now().astimezone(UTC).hour
    offset = (13 - utc_hour + 12) % 24 - 12  # hours east of UTC, -12..+11
    zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # the tz database's signs are inverted
    for pid, name, price in (("sku-1", "Espresso beans 1 kg", 24.5), ("sku-2", "Milk jug", 12)):
        api.call("PUT", f"/v1/products/{pid}", {"name": name, "price": price, "currency": "GBP"})
    api.call(
        "PUT",
        f"/v1/customers/{cid}",
        {
            "timezone": zone,
            "locale": "en-GB",
            "currency": "GBP",
            "contact": {"email": mail, "phone": phone},
            "consent": {"email": True, "sms": True},
            "attributes": {"first_name": "<script>alert(1)</script>"},
        },
    )

    # 2. The journeys (each only for this run's events, so runs do not meet).
    order = journey(
        "Order shipped",
        "order_shipped",
        "orders",
        {
            "type": "message",
            "channel": "email",
            "content": {"email": {"subject": "Order {{ event.properties.order_id }} shipped", "html": ORDER_HTML}},
        },
        transactional=True,
    )
    cart = journey(
        "Abandoned cart",
        "cart_abandon",
        "offers",
        {
            "type": "message",
            "channel": "email",
            "content": {"email": {"subject": "Your cart is waiting", "html": CART_HTML}},
        },
    )
    stock = journey(
        "Back in stock",
        "back_in_stock",
        "restocks",
        {"type": "message", "channel": "sms", "content": {"sms": {"text": "Back in stock: {{ event.product_id }}"}}},
    )
    ids = {}
    for doc in (order, cart, stock):
        doc = json.loads(json.dumps(doc).replace("__RUN__", run))
        ids[doc["name"]] = api.call("POST", "/v1/journeys", doc)["journey_id"]
        api.call("POST", f"/v1/journeys/{ids[doc['name']]}/status", {"status": "active"})
    broken = json.loads(json.dumps(cart).replace("__RUN__", run))
    broken["nodes"]["send"]["content"]["email"]["html"] = "<p>Hi</p>\n{% for line in event.lines %}\n{{ line.name }"
    status, text = api.raw(
        "POST",
        "/v1/journeys",
        json.dumps(broken).encode(),
        {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"},
    )
    print(f"a broken template: {status} {json.loads(text)['message'][:160]}")
    checks["a template that does not parse is refused with its line"] = status == 400 and "line 3" in text

    # 3. The shop's events, and what the outbox received.
    api.event(
        cid,
        f"ship-{run}",
        "order_shipped",
        currency="GBP",
        properties={"order_id": f"o-{run}", "items": ITEMS, "run": run},
    )
    api.event(cid, f"cart-{run}", "cart_abandon", currency="GBP", properties={"items": ITEMS, "run": run})
    emails = wait_for(api, mail, 2, "email")
    shipped = next((m for m in emails if m["subject"].startswith("Order")), None)
    carted = next((m for m in emails if m["subject"].startswith("Your cart")), None)
    if shipped is None or carted is None:
        print(f"FAIL the emails did not arrive: {[m['subject'] for m in emails]}")
        return 1
    print("order email (HTML):", shipped["html"])
    print("cart email (HTML):", carted["html"])
    checks["the order email names the order's products"] = (
        "2 × Espresso beans 1 kg" in shipped["html"] and "1 × Milk jug" in shipped["html"]
    )
    checks["the cart email lists its lines and the total in pounds"] = all(
        s in carted["html"] for s in ("Espresso beans 1 kg × 2: £24.50", "Milk jug × 1: £12.00", "Total £61.00")
    )
    checks["the profile's <script> appears escaped"] = (
        "<script>" not in shipped["html"] and "&lt;script&gt;" in shipped["html"] and "<script>" not in carted["html"]
    )
    raw = email.message_from_string(carted["raw"], policy=email.policy.default)
    print("cart email headers:", {k: raw[k] for k in ("List-Unsubscribe", "List-Unsubscribe-Post")})
    checks["the raw marketing email has both List-Unsubscribe headers"] = (
        str(raw["List-Unsubscribe"]).startswith("<http")
        and raw["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    )
    checks["the order email (transactional) has none"] = "List-Unsubscribe" not in shipped["headers"]

    # 6 (before the unsubscribe). The preview is the email that was sent.
    preview = api.call(
        "POST",
        "/v1/messages/preview",
        {
            "customer_id": cid,
            "channel": "email",
            "journey_id": ids["Abandoned cart"],
            "node": "send",
            "event": {"type": "cart_abandon", "currency": "GBP", "properties": {"items": ITEMS}},
        },
    )
    checks["the preview renders the email that was sent"] = preview["html"].strip() == carted["html"].strip()
    if not checks["the preview renders the email that was sent"]:
        print("preview (HTML):", preview["html"])

    # 4. One click, as Gmail or Yahoo would do it: a POST of List-Unsubscribe=One-Click, no API key.
    url = urllib.parse.urlsplit(str(raw["List-Unsubscribe"]).split(",")[0].strip("<> "))
    path = url.path[url.path.index("/v1/") :]
    status, _ = api.raw(
        "POST", path, b"List-Unsubscribe=One-Click", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    print(f"one-click unsubscribe: {status}")
    checks["the one-click URL answers 200"] = status == 200
    time.sleep(1)
    api.event(cid, f"cart2-{run}", "cart_abandon", currency="GBP", properties={"items": ITEMS, "run": run})
    api.event(
        cid,
        f"ship2-{run}",
        "order_shipped",
        currency="GBP",
        properties={"order_id": f"o2-{run}", "items": ITEMS, "run": run},
    )
    emails = wait_for(api, mail, 4, "email", timeout_s=20)
    subjects = [m["subject"] for m in emails]
    print("emails now:", subjects)
    checks["after it, the next order notice is sent"] = subjects.count(f"Order o2-{run} shipped") == 1
    checks["after it, no other cart email is sent"] = subjects.count("Your cart is waiting") == 1

    # 5. STOP by SMS, then START.
    api.event(cid, f"stop-{run}", "message_inbound", channel="sms", text="STOP")
    time.sleep(1)
    api.event(cid, f"stock1-{run}", "back_in_stock", product_id="sku-1", properties={"run": run})
    stopped = wait_for(api, phone, 1, "sms", timeout_s=10)
    api.event(cid, f"start-{run}", "message_inbound", channel="sms", text="START")
    time.sleep(1)
    api.event(cid, f"stock2-{run}", "back_in_stock", product_id="sku-2", properties={"run": run})
    started = wait_for(api, phone, 1, "sms", timeout_s=30)
    print("texts:", [m["text"] for m in started])
    checks["a STOP reply stops SMS"] = stopped == []
    checks["a START reply resumes SMS"] = [m["text"] for m in started] == ["Back in stock: sku-2"]

    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
