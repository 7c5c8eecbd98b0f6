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
import functools
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
from kairos.messaging import preferences
from kairos.messaging.unsubscribe import verify

if TYPE_CHECKING:
    from collections.abc import Callable

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


def _action(token: str) -> str:
    # Relative to /v1/unsubscribe/{token} and /v1/preferences/{token} alike: the form posts back to the
    # preference route on whatever host and stage served the page.
    return f"../preferences/{token}"


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
