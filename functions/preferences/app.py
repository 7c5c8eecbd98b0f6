"""Public one-click unsubscribe (RFC 8058) and the preference page, answered from signed links, no API key.

- ``POST /v1/unsubscribe/{token}``: what a mailbox provider sends for one click (``List-Unsubscribe=One-Click``)
  and what the page's button sends: unsubscribes from the link's topic at once, answers 200;
- ``GET /v1/unsubscribe/{token}`` and ``GET /v1/preferences/{token}``: the preference page (a GET never changes
  anything: link scanners follow links);
- ``POST /v1/preferences/{token}``: the page's form (``channel=…&topic=…``, the switches left on).

A link that was cut or altered answers 400; a link of a customer who was erased answers 200 and writes nothing.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit

from kairos import wiring
from kairos.core import timeutil
from kairos.core.cache import ReadEvery
from kairos.core.config import require
from kairos.core.errors import InvalidInputError
from kairos.core.observability import logger, metrics, tracer
from kairos.messaging import preferences
from kairos.messaging.unsubscribe import verify

if TYPE_CHECKING:
    from datetime import datetime

    from aws_lambda_powertools.utilities.typing import LambdaContext

SETTINGS = require("events_table", "customers_table", "journeys_table", "unsubscribe_key_parameter")
KEY = wiring.unsubscribe_key(SETTINGS)
CUSTOMERS = wiring.customer_store(SETTINGS)
JOURNEYS = wiring.journey_store(SETTINGS)
TOPICS_TTL_S = 300.0
# The topics the page offers: those of the live marketing journeys and campaigns, read every five minutes.
TOPICS = ReadEvery(
    TOPICS_TTL_S,
    lambda: sorted(
        {
            str((j.get("definition") or {}).get("topic") or "general")
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


def _link(token: str) -> tuple[str, str] | Response:
    try:
        return verify(KEY(), token)
    except InvalidInputError:
        metrics.add_metric(name="UnsubscribeLinkInvalid", unit=MetricUnit.Count, value=1)
        return _page(
            400,
            preferences.page(
                "This link does not work", "It may have been cut or altered; use the link in your latest message."
            ),
        )


def _now() -> datetime:
    return timeutil.now()


@app.post("/v1/unsubscribe/<token>")
def one_click(token: str) -> Response:
    link = _link(token)
    if isinstance(link, Response):
        return link
    customer_id, topic = link
    done = preferences.unsubscribe_topic(customer_id, topic, CUSTOMERS, _now(), SETTINGS.retention, SETTINGS.clock_skew)
    metrics.add_metric(name="OneClickUnsubscribes", unit=MetricUnit.Count, value=1)
    logger.info("one-click unsubscribe", extra={"topic": topic, "recorded": done})
    return _page(200, preferences.page("You are unsubscribed", f"You will get no more messages about {topic}."))


@app.get("/v1/unsubscribe/<token>")
@app.get("/v1/preferences/<token>")
def show(token: str) -> Response:
    link = _link(token)
    if isinstance(link, Response):
        return link
    customer_id, topic = link
    record = CUSTOMERS.get_customer(customer_id)
    if record is None or record.erased or not record.exists:
        return _page(200, preferences.page("Your preferences", "We hold nothing about you any more."))
    current = preferences.choices(record, {*TOPICS(), topic})
    note = f"This message was about {topic}. Untick what you no longer want and save."
    return _page(200, preferences.page("Your preferences", note, _action(token), current))


@app.post("/v1/preferences/<token>")
def save(token: str) -> Response:
    link = _link(token)
    if isinstance(link, Response):
        return link
    customer_id, topic = link
    form = _form()
    if form.get("List-Unsubscribe") == ["One-Click"]:
        return one_click(token)
    current = preferences.save_choices(
        customer_id,
        set(form.get("channel", [])),
        set(form.get("topic", [])),
        {*TOPICS(), topic},
        CUSTOMERS,
        _now(),
        SETTINGS.retention,
        SETTINGS.clock_skew,
    )
    if current is None:
        return _page(200, preferences.page("Your preferences", "We hold nothing about you any more."))
    return _page(200, preferences.page("Your preferences", "Saved.", _action(token), current))


def _action(token: str) -> str:
    # Relative to /v1/unsubscribe/{token} and /v1/preferences/{token} alike: the form posts back to the
    # preference route on whatever host and stage served the page.
    return f"../preferences/{token}"


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
