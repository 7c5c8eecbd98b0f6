"""What a customer chooses without logging in: one-click unsubscribe and the preference page.

Both answer a signed link (:mod:`kairos.messaging.unsubscribe`) and record what the customer chose as events
through the ingest logic, so the choice is stored exactly once, archived, seen by journeys (``exit_on:
[unsubscribe]``) and erased with the customer:

- one click (``POST`` of ``List-Unsubscribe=One-Click``): an ``unsubscribe`` event for the link's topic;
- the page: a switch per channel the customer consented to, and per topic. A switch turned off records an
  ``unsubscribe`` (channel, or ``properties.topic``), turned on a ``subscribe``. The page never grants consent
  to a channel the customer did not give it for, and never lifts a bounce or complaint.

A link of a customer who was erased (or never existed) changes nothing: nothing is written about them.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kairos.core.constants import CHANNELS
from kairos.core.timeutil import utc_iso
from kairos.customers.ingest import ingest_events
from kairos.customers.subscription_domain import SUBSCRIBE, TOPIC_KEY, UNSUBSCRIBE
from kairos.messaging.consent import may_send

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime, timedelta

    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore

CHANNEL_NAMES = {"email": "Email", "sms": "Text messages (SMS)", "push": "App notifications", "messenger": "Messenger"}


@dataclass(frozen=True)
class Choices:
    """What the page shows: per channel the customer consented to, whether it is on; per topic, the same."""

    channels: dict[str, bool]
    topics: dict[str, bool]


def choices(record: CustomerRecord, topics: Iterable[str]) -> Choices:
    """The customer's current choices, over the ``topics`` the deployment's journeys and campaigns name."""
    consent = (record.profile or {}).get("consent") or {}
    channels = {c: may_send(record, c)[0] for c in CHANNELS if consent.get(c)}
    known = set(topics) | {k[len(TOPIC_KEY) :] for k in record.aggregates.unsubscribed if k.startswith(TOPIC_KEY)}
    subscribed = {}
    for t in sorted(known):
        # A topic is on when no unsubscribe from it is newer than a subscribe to it.
        unsub = record.aggregates.unsubscribed.get(TOPIC_KEY + t)
        sub = record.aggregates.subscribed.get(TOPIC_KEY + t)
        subscribed[t] = unsub is None or (sub is not None and sub >= unsub)
    return Choices(channels, subscribed)


def _event(
    customer_id: str,
    kind: str,
    now: datetime,
    channel: str | None = None,
    topic: str | None = None,
    source: str = "preference page",
) -> dict[str, Any]:
    what = f"{kind}|{channel or ''}|{topic or ''}|{int(now.timestamp())}"
    event: dict[str, Any] = {
        # One id per choice and second: a retried request (a provider's POST sent twice) counts once.
        "event_id": "pref-" + hashlib.sha256(f"{customer_id}|{what}".encode()).hexdigest()[:32],
        "customer_id": customer_id,
        "type": kind,
        "timestamp": utc_iso(now),
        "properties": {"source": source, **({"topic": topic} if topic else {})},
    }
    if channel:
        event["channel"] = channel
    return event


def live_customer(store: CustomerStore, customer_id: str) -> CustomerRecord | None:
    """The customer, unless erased or never stored (then nothing is written about them)."""
    record = store.get_customer(customer_id)
    return None if record is None or record.erased or not record.exists else record


def unsubscribe_topic(
    customer_id: str, topic: str, store: CustomerStore, now: datetime, retention: timedelta, skew: timedelta
) -> bool:
    """One click: unsubscribe from ``topic`` on every channel. ``False`` when there is nobody to unsubscribe."""
    if live_customer(store, customer_id) is None:
        return False
    event = _event(customer_id, UNSUBSCRIBE, now, channel="email", topic=topic, source="one-click")
    ingest_events([event], store, now, retention, skew)
    return True


def save_choices(
    customer_id: str,
    wanted_channels: set[str],
    wanted_topics: set[str],
    topics: Iterable[str],
    store: CustomerStore,
    now: datetime,
    retention: timedelta,
    skew: timedelta,
) -> Choices | None:
    """Record the page's switches that changed; returns the choices now (``None``: nobody to ask)."""
    record = live_customer(store, customer_id)
    if record is None:
        return None
    before = choices(record, topics)
    events = []
    for channel, on in before.channels.items():
        if (channel in wanted_channels) != on:
            events.append(_event(customer_id, SUBSCRIBE if not on else UNSUBSCRIBE, now, channel=channel))
    for topic, on in before.topics.items():
        if (topic in wanted_topics) != on:
            events.append(_event(customer_id, SUBSCRIBE if not on else UNSUBSCRIBE, now, topic=topic))
    if events:
        ingest_events(events, store, now, retention, skew)
        record = live_customer(store, customer_id) or record
    return choices(record, topics)


def page(title: str, note: str, action: str | None = None, current: Choices | None = None) -> str:
    """The preference page (or a notice when ``current`` is None): plain HTML, no script, readable on a phone."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{esc(title)}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;",
        "padding:0 1rem;line-height:1.5}fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0}",
        "label{display:block;padding:.25rem 0}button{padding:.5rem 1.25rem}</style></head><body>",
        f"<h1>{esc(title)}</h1><p role='status'>{esc(note)}</p>",
    ]
    if current is not None and action is not None:
        parts.append(f"<form method='post' action='{esc(action)}'>")
        if current.channels:
            parts.append("<fieldset><legend>How we may reach you</legend>")
            for channel, on in current.channels.items():
                checked = " checked" if on else ""
                name = esc(CHANNEL_NAMES.get(channel, channel))
                parts.append(
                    f"<label><input type='checkbox' name='channel' value='{esc(channel)}'{checked}> {name}</label>"
                )
            parts.append("</fieldset>")
        if current.topics:
            parts.append("<fieldset><legend>What we may write to you about</legend>")
            for topic, on in current.topics.items():
                checked = " checked" if on else ""
                parts.append(
                    f"<label><input type='checkbox' name='topic' value='{esc(topic)}'{checked}> {esc(topic)}</label>"
                )
            parts.append("</fieldset>")
        parts.append("<input type='hidden' name='saved' value='1'><button type='submit'>Save</button></form>")
    parts.append("</body></html>")
    return "".join(parts)
