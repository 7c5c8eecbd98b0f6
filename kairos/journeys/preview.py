"""Show a message as a customer would get it: rendered by the send's own code, for a given customer and event.

The content is given inline, or named by a journey (or campaign) node, its variant and the journey's topic;
nothing is sent, claimed or logged, and no promo code is taken from a pool (a placeholder stands in for it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.journeys.domain import Cycle, JourneyIn, Message
from kairos.messaging.consent import may_send
from kairos.messaging.send import Content, render

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.customers.ports import CustomerStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.content import Messages

PREVIEW_CODE = "PREVIEW-CODE"


def node_content(
    journeys: JourneyStore, journey_id: str, node_id: str, variant: str | None
) -> tuple[Messages, JourneyIn, str | None]:
    """The content a journey's node sends (its ``variant`` when it has variants), the definition and the pool."""
    doc = journeys.get_journey(journey_id)
    definition = JourneyIn.model_validate(doc["definition"])
    node = definition.nodes.get(node_id)
    if not isinstance(node, Message | Cycle):
        raise InvalidInputError("node", f"'{node_id}' is not a message or cycle node of journey '{journey_id}'")
    variants = getattr(node, "variants", None) or []
    if variant is not None:
        found = next((v for v in variants if v.name == variant), None)
        if found is None:
            raise InvalidInputError("variant", f"node '{node_id}' has no variant '{variant}'")
        return found.content, definition, node.promo_pool
    if node.content is None and variants:
        return variants[0].content, definition, node.promo_pool
    return node.content, definition, node.promo_pool


def preview(
    customer_id: str,
    channel: str,
    messages: Messages,
    customers: CustomerStore,
    now: datetime,
    *,
    topic: str | None = None,
    transactional: bool = False,
    event: dict[str, Any] | None = None,
    promo_pool: str | None = None,
    links: Callable[[str, str], dict[str, str]] | None = None,
    population: dict[str, Any] | None = None,
    products: Callable[[list[str]], dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The rendered message (``subject``, ``title``, ``text``, ``html``, ``headers``, ``mime`` for email) and
    whether it would be sent now (``would_send``, ``reason``)."""
    record = customers.get_customer(customer_id)
    if record is None or not record.exists or record.erased:
        raise NotFoundError(f"customer '{customer_id}' not found")
    if getattr(messages, channel) is None:
        raise InvalidInputError("channel", f"the content has nothing for {channel}")
    content = Content(
        messages,
        topic=topic,
        transactional=transactional,
        trigger=event,
        latest=event,
        promo=(lambda: {"code": PREVIEW_CODE, "pool": promo_pool}) if promo_pool else None,
        links=links,
    )
    out = render(content, channel, record, now, None if record.recommendation else population, products)
    allowed, reason = may_send(record, channel, topic, transactional)
    if isinstance(out, str):
        return {"channel": channel, "would_send": False, "reason": out}
    result: dict[str, Any] = {
        "channel": channel,
        "to": out.to,
        "subject": out.subject,
        "title": out.title,
        "text": out.body,
        "html": out.html,
        "headers": dict(out.headers),
        "would_send": allowed,
        "reason": reason,
    }
    if channel == "email":
        result["mime"] = out.mime("sender@preview.invalid").decode("utf-8", "replace")
    return result
