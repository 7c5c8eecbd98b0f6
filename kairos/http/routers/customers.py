"""Events, customer profiles, their messages and recommendation, and erasure."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from kairos.core import timeutil
from kairos.core.constants import EVENT_TYPES
from kairos.core.observability import logger, metrics
from kairos.customers import ingest, listing, timeline
from kairos.customers import profiles as customers
from kairos.customers.ledger_domain import MessengerLinkView, TelegramWebhookView
from kairos.customers.schemas import (
    _ID_PATTERN,
    CustomerProfileIn,
    CustomerView,
    ErasureReport,
    EventBatch,
    EventTypeList,
    EventTypeView,
    IngestResult,
    MessageList,
    MessageView,
    RecommendationView,
)
from kairos.http.api import KairosRouter, caller
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.insights.analytics import note_archive_change
from kairos.journeys import intents
from kairos.messaging import telegram_inbound
from kairos.models import recommendations

router = KairosRouter()


@router.endpoint(
    "GET",
    "/v1/event-types",
    scope="read",
    summary="The event types seen, built-in and your own, with how many were stored and their property names",
    description="Your own types (lower-case letters, digits and underscores: `order_shipped`) are stored, archived, "
    "counted on the customer (`event_counts`) and usable in journey entries, waits, exits and splits and in "
    "segment filters (`events.<type>`); the models read the built-in ones.",
    tags=["events"],
)
def get_event_types(deps: Deps) -> EventTypeList:
    seen = deps.event_types().event_types()
    return EventTypeList(event_types=[EventTypeView(**t, builtin=t["type"] in EVENT_TYPES) for t in seen])


CustomerId = Annotated[str, Path(pattern=_ID_PATTERN, description="The customer's id in your systems")]


@router.endpoint(
    "POST",
    "/v1/events",
    scope="ingest",
    summary="Ingest a batch of 1 to 500 events",
    description="A `message_inbound` event's `text` is tagged with the intents it expresses: "
    "`properties.intents` (and `properties.stage`) are added to the stored event.",
    tags=["events"],
)
def post_events(batch: Annotated[EventBatch, Body()], deps: Deps) -> IngestResult:
    tagged = [
        intents.enrich(e, deps.intents()) if isinstance(e, dict) and e.get("type") == "message_inbound" else e
        for e in batch.events
    ]
    now = timeutil.now()
    # The catalogue of event types is counted from the events table's stream, a batch of events at a time.
    result = ingest.ingest_events(
        tagged,
        deps.customers(),
        now,
        deps.retention,
        deps.clock_skew,
        message_known=lambda message_id: deps.messages().get(message_id) is not None,
    )
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(result.rejected))
    logger.info(
        "events ingested",
        extra={"accepted": result.accepted, "duplicates": result.duplicates, "rejected": len(result.rejected)},
    )
    return result


@router.endpoint(
    "PUT",
    "/v1/customers/<customer_id>",
    scope="profiles",
    summary="Create or replace a customer profile",
    links={"/v1/customers/{customer_id}": {"customer_id": "$request.path.customer_id"}},
    tags=["customers"],
)
def put_customer(customer_id: CustomerId, profile: Annotated[CustomerProfileIn, Body()], deps: Deps) -> CustomerView:
    links = deps.contact_links() if deps.contact_links is not None else None
    return customers.put_profile(customer_id, profile, deps.customers(), timeutil.now(), links)


@router.endpoint(
    "GET",
    "/v1/customers",
    scope="read",
    errors=(400,),
    summary="A page of customers, to browse them",
    description="Paged: each request reads at most `limit` customers of the store, in the store's order (neither by "
    "id nor by age), and answers their figures without the profile. A page may hold fewer than `limit` (erased "
    "customers are left out); pass `next_cursor` as `cursor` for the next page, until it is `null`.",
    tags=["customers"],
)
def list_customers(
    deps: Deps,
    limit: Annotated[int, Query(ge=1, le=listing.MAX_PAGE)] = listing.DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(pattern=listing.CURSOR_PATTERN, description="The next_cursor of the previous page, as returned"),
    ] = None,
) -> listing.CustomerPage:
    return listing.list_customers(deps.customers(), cursor, limit)


@router.endpoint(
    "GET",
    "/v1/customers/<customer_id>",
    scope="read",
    errors=(400, 404),
    summary="A profile with its aggregates",
    tags=["customers"],
)
def get_customer(customer_id: CustomerId, deps: Deps) -> CustomerView:
    return customers.get_customer(customer_id, deps.customers(), timeutil.now())


@router.endpoint(
    "DELETE",
    "/v1/customers/<customer_id>",
    scope="erase",
    errors=(400, 404),
    summary="Erase a customer (right to be forgotten)",
    tags=["customers"],
)
def delete_customer(customer_id: CustomerId, deps: Deps) -> ErasureReport:
    # An erasure is audited with the key that asked for it, whether or not there was anything to erase.
    who = caller(router.current_event.raw_event)
    logger.info("customer erasure requested", extra={"customer_id": customer_id, **who})
    report = customers.erase_customer(
        customer_id,
        deps.customers(),
        deps.archive(),
        deps.messages(),
        deps.decisions(),
        timeutil.now(),
        journeys=deps.journeys(),
        contact_links=deps.contact_links() if deps.contact_links is not None else None,
    )
    logger.info("customer erased", extra={**report.model_dump(), **who})
    if report.archive_lines_removed:
        # Answers computed over the archive before the purge counted the customer: they must not be served again.
        note_archive_change(deps.insights(), timeutil.now())
    return report


@router.endpoint(
    "POST",
    "/v1/customers/<customer_id>/messenger-link",
    scope="profiles",
    errors=(400, 404),
    status_code=201,
    summary="A start link that links the customer's Telegram chat to them when they open it",
    description="Give the customer `https://t.me/<your bot>?start=<start_parameter>`; opening it sends `/start …` to "
    "the bot, whose webhook links the chat: the profile gets `contact.messenger_chat_id` and consent for "
    "messenger, and the chat's messages become `message_inbound` events. A link works for 30 days.",
    tags=["customers"],
)
def post_messenger_link(customer_id: CustomerId, deps: Deps) -> MessengerLinkView:
    customers.get_customer(customer_id, deps.customers(), timeutil.now())  # 404 for nobody
    assert deps.contact_links is not None
    link = telegram_inbound.start_link(customer_id, deps.contact_links(), timeutil.now(), None)
    return MessengerLinkView(customer_id=customer_id, start_parameter=link["token"], expires_at=link["expires_at"])


@router.endpoint(
    "GET",
    "/v1/channels/telegram",
    scope="manage",
    summary="The Telegram webhook to set: its path on this API and the secret token Telegram must send",
    tags=["customers"],
)
def get_telegram_webhook(deps: Deps) -> TelegramWebhookView:
    assert deps.link_key is not None
    return TelegramWebhookView(
        webhook_path="/v1/inbound/telegram", secret_token=telegram_inbound.webhook_secret(deps.link_key()())
    )


@router.endpoint(
    "GET",
    "/v1/customers/<customer_id>/recommendation",
    scope="read",
    errors=(400, 404),
    summary="Best hour to message the customer and the products to offer",
    tags=["customers"],
)
def get_recommendation(customer_id: CustomerId, deps: Deps) -> RecommendationView:
    return RecommendationView.model_validate(recommendations.get_recommendation(customer_id, deps.customers()))


@router.endpoint(
    "GET",
    "/v1/customers/<customer_id>/messages",
    scope="read",
    errors=(400,),
    summary="The customer's messages with their status (the message log), newest first",
    tags=["customers"],
)
def get_customer_messages(customer_id: CustomerId, deps: Deps) -> MessageList:
    rows = sorted(deps.messages().for_customer(customer_id), key=lambda r: r.get("claimed_at") or "", reverse=True)
    return MessageList(customer_id=customer_id, messages=[MessageView.model_validate(r) for r in rows])


@router.endpoint(
    "GET",
    "/v1/customers/<customer_id>/events",
    scope="read",
    errors=(400,),
    summary="The customer's stored events, newest first",
    description="The `limit` newest of the customer's events kept within the retention period (none for a customer "
    "never seen or erased), with how many are kept. Reads that customer's events only: its cost grows with their "
    "history, not with the number of customers.",
    tags=["customers"],
)
def get_customer_events(
    customer_id: CustomerId,
    deps: Deps,
    limit: Annotated[int, Query(ge=1, le=timeline.MAX_EVENTS)] = timeline.DEFAULT_EVENTS,
) -> timeline.EventList:
    return timeline.recent_events(deps.customers(), customer_id, limit)
