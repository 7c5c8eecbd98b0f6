"""The public routes, answered without an API key: one-click unsubscribe (RFC 8058) and the preference page from
signed links, and the Telegram bot's webhook (its secret token checked, see ``kairos.messaging.telegram_inbound``).

- ``POST /v1/unsubscribe/{token}``: what a mailbox provider sends for one click (``List-Unsubscribe=One-Click``)
  and what the page's button sends: unsubscribes from the link's topic at once, answers 200;
- ``GET /v1/unsubscribe/{token}`` and ``GET /v1/preferences/{token}``: the preference page (a GET never changes
  anything: link scanners follow links);
- ``POST /v1/preferences/{token}``: the page's form (``channel=…&topic=…``, the switches left on).

- ``POST /v1/inbound/telegram``: a bot update; start links link a chat to a customer, texts become
  ``message_inbound`` events tagged with intents;
- replies to the two-way SMS number, from its SNS topic (``kairos.messaging.sms_inbound``), likewise.

A link that was cut or altered answers 400; a link of a customer who was erased answers 200 and writes nothing.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit

from kairos import wiring
from kairos.core import timeutil
from kairos.core.cache import ReadEvery
from kairos.core.config import require
from kairos.core.constants import DEFAULT_TOPIC
from kairos.core.errors import InvalidInputError
from kairos.core.observability import logger, metrics, tracer
from kairos.customers import ingest, profiles
from kairos.customers.schemas import CustomerProfileIn
from kairos.journeys import intents
from kairos.messaging import preferences, sms_inbound, telegram_inbound
from kairos.messaging.unsubscribe import verify

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

SETTINGS = require("events_table", "customers_table", "journeys_table", "unsubscribe_key_parameter")
KEY = wiring.unsubscribe_key(SETTINGS)
CUSTOMERS = wiring.customer_store(SETTINGS)
JOURNEYS = wiring.journey_store(SETTINGS)
LINKS = wiring.contact_links(SETTINGS)
INTENTS = ReadEvery(60.0, JOURNEYS.list_intents)  # the intents that tag inbound messages, read once a minute
TOPICS_TTL_S = 300.0
# The topics the page offers: those of the live marketing journeys and campaigns, read every five minutes.
TOPICS = ReadEvery(
    TOPICS_TTL_S,
    lambda: sorted(
        {
            str((j.get("definition") or {}).get("topic") or DEFAULT_TOPIC)
            for j in JOURNEYS.active_journeys()
            if not (j.get("definition") or {}).get("transactional")
        }
    ),
)
HTML = "text/html; charset=utf-8"

app = APIGatewayRestResolver()


def _page(status: int, body: str) -> Response:
    return Response(status_code=status, content_type=HTML, body=body, headers={"Cache-Control": "no-store"})


def _form() -> dict[str, list[str]]:
    event = app.current_event
    raw = event.body or ""
    if event.is_base64_encoded:
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    return parse_qs(raw, keep_blank_values=True)


def signed(route: Callable[[str, str, str], Response]) -> Callable[[str], Response]:
    """Answer ``route(token, customer_id, topic)`` for a link this deployment signed, a 400 page otherwise."""

    @functools.wraps(route)
    def answer(token: str) -> Response:
        try:
            customer_id, topic = verify(KEY(), token)
        except InvalidInputError:
            metrics.add_metric(name="UnsubscribeLinkInvalid", unit=MetricUnit.Count, value=1)
            note = "It may have been cut or altered; use the link in your latest message."
            return _page(400, preferences.page("This link does not work", note))
        return route(token, customer_id, topic)

    return answer


def _gone() -> Response:
    return _page(200, preferences.page("Your preferences", "We hold nothing about you any more."))


def _unsubscribe(customer_id: str, topic: str) -> Response:
    done = preferences.unsubscribe_topic(
        customer_id, topic, CUSTOMERS, timeutil.now(), SETTINGS.retention, SETTINGS.clock_skew
    )
    metrics.add_metric(name="OneClickUnsubscribes", unit=MetricUnit.Count, value=1)
    logger.info("one-click unsubscribe", extra={"topic": topic, "recorded": done})
    return _page(200, preferences.page("You are unsubscribed", f"You will get no more messages about {topic}."))


@app.post("/v1/unsubscribe/<token>")
@signed
def one_click(token: str, customer_id: str, topic: str) -> Response:
    return _unsubscribe(customer_id, topic)


@app.get("/v1/unsubscribe/<token>")
@app.get("/v1/preferences/<token>")
@signed
def show(token: str, customer_id: str, topic: str) -> Response:
    record = preferences.live_customer(CUSTOMERS, customer_id)
    if record is None:
        return _gone()
    current = preferences.choices(record, {*TOPICS(), topic})
    note = f"This message was about {topic}. Untick what you no longer want and save."
    return _page(200, preferences.page("Your preferences", note, _action(token), current))


@app.post("/v1/preferences/<token>")
@signed
def save(token: str, customer_id: str, topic: str) -> Response:
    form = _form()
    if form.get("List-Unsubscribe") == ["One-Click"]:
        return _unsubscribe(customer_id, topic)
    current = preferences.save_choices(
        customer_id,
        set(form.get("channel", [])),
        set(form.get("topic", [])),
        {*TOPICS(), topic},
        CUSTOMERS,
        timeutil.now(),
        SETTINGS.retention,
        SETTINGS.clock_skew,
    )
    if current is None:
        return _gone()
    return _page(200, preferences.page("Your preferences", "Saved.", _action(token), current))


@app.post("/v1/inbound/telegram")
def telegram_update() -> Response:
    """A Telegram bot update (the webhook), checked by its secret token; Telegram retries anything but a 2xx."""
    headers = dict(app.current_event.headers or {})
    if not telegram_inbound.authentic(headers, KEY()):
        metrics.add_metric(name="TelegramUpdatesRefused", unit=MetricUnit.Count, value=1)
        return Response(status_code=401, content_type="application/json", body='{"message":"bad secret token"}')
    try:
        update = app.current_event.json_body
    except ValueError:
        update = None
    if not isinstance(update, dict):
        return Response(status_code=400, content_type="application/json", body='{"message":"not a JSON update"}')
    now = timeutil.now()
    outcome = telegram_inbound.handle_update(update, LINKS, _link_profile, _ingest_inbound, now)
    logger.info("telegram update", extra={"outcome": outcome, "update_id": update.get("update_id")})
    return Response(status_code=200, content_type="application/json", body=json.dumps({"outcome": outcome}))


def _link_profile(customer_id: str, chat_id: str) -> bool:
    record = preferences.live_customer(CUSTOMERS, customer_id)
    if record is None:
        return False
    profile = dict(record.profile or {})
    profile["contact"] = {**(profile.get("contact") or {}), "messenger_chat_id": chat_id}
    profile["consent"] = {**(profile.get("consent") or {}), "messenger": True}
    profiles.put_profile(customer_id, CustomerProfileIn.model_validate(profile), CUSTOMERS, timeutil.now())
    return True


def _ingest_inbound(event: dict) -> None:
    tagged = intents.enrich(event, INTENTS())
    ingest.ingest_events([tagged], CUSTOMERS, timeutil.now(), SETTINGS.retention, SETTINGS.clock_skew)


def _action(token: str) -> str:
    # Relative to /v1/unsubscribe/{token} and /v1/preferences/{token} alike: the form posts back to the
    # preference route on whatever host and stage served the page.
    return f"../preferences/{token}"


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records") or []
    if records and records[0].get("EventSource") == "aws:sns":
        return _sms_replies(records)
    return app.resolve(event, context)


def _sms_replies(records: list[dict]) -> dict:
    """Replies to the two-way SMS number, from its SNS topic (a failure makes SNS deliver the record again)."""
    now = timeutil.now()
    outcomes = [sms_inbound.handle_record(r, LINKS, _ingest_inbound, now) for r in records]
    logger.info("sms replies", extra={o: outcomes.count(o) for o in set(outcomes)})
    return {"outcomes": outcomes}
