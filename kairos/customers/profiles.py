"""Customer profiles: replace, read with aggregates, erase."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from kairos.core.errors import ConflictError, NotFoundError, StoreError
from kairos.customers.aggregates import CustomerAggregates, rebucket, unix_to_dt
from kairos.customers.ledger_domain import PointsView, StageView
from kairos.customers.loyalty_domain import summary as points_summary
from kairos.customers.schemas import Aggregates, CustomerProfileIn, CustomerView, ErasureReport

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore, DecisionLog, EventArchive
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import ContactLinks, MessageLog

MAX_ATTEMPTS = 8


def put_profile(
    customer_id: str,
    profile: CustomerProfileIn,
    store: CustomerStore,
    now: datetime,
    contact_links: ContactLinks | None = None,
) -> CustomerView:
    """Replace a customer's profile; when its time zone changes, re-bucket the hour-of-week counts.

    Events that arrived before the zone was known were counted in UTC. The moments behind the counts are
    stored, so the histogram is recounted exactly in the new zone, in the same conditional write as the
    profile: ingestion running at the same time either sees the new zone or retries.
    """
    doc = profile.model_dump(mode="json")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        record = store.get_customer(customer_id) or store.absent_customer(customer_id)
        zone = profile.timezone
        new_agg = None
        agg = record.aggregates
        if zone is not None and (zone != agg.timezone or (agg.has_data and agg.timezone_source != "profile")):
            new_agg = rebucket(agg, store.engagement_moments(customer_id), zone)
        try:
            store.put_profile(record, doc, new_agg, now)
        except ConflictError:
            time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
            continue
        if contact_links is not None:  # an SMS reply from the number finds the customer
            _relink_phone(((record.profile or {}).get("contact") or {}).get("phone"), doc, customer_id, contact_links)
        return get_customer(customer_id, store, now)
    raise StoreError("profile kept changing while it was written")


def _relink_phone(old: str | None, doc: dict[str, Any], customer_id: str, links: ContactLinks) -> None:
    new = (doc.get("contact") or {}).get("phone")
    if new:
        links.link_phone(new, customer_id)
    if old and old != new:
        links.forget_phone(old, customer_id)


def aggregates_view(agg: CustomerAggregates, now: datetime) -> Aggregates:
    """The API view of a customer's aggregates at ``now`` (times as datetimes, most recent products first)."""
    return Aggregates(
        timezone=agg.effective_timezone,
        timezone_inferred=agg.timezone_source != "profile",
        hour_of_week_counts=agg.how_counts,
        engagement_moments=agg.engagement_moments,
        last_engagement_at=unix_to_dt(agg.last_engaged_s),
        purchase_count=agg.purchase_count,
        monetary_total=agg.monetary_total,
        first_purchase_at=unix_to_dt(agg.first_purchase_s),
        last_purchase_at=unix_to_dt(agg.last_purchase_s),
        event_counts=agg.event_counts,
        channel_engagements=agg.channel_engagements,
        recent_products=[
            {"product_id": p, "type": t, "at": unix_to_dt(s), "quantity": q} for p, t, s, q in agg.recent_products
        ][::-1],
        last_cart_abandon_amount=agg.last_cart_abandon_amount,
        last_cart_abandon_at=unix_to_dt(agg.last_cart_abandon_s),
        unsubscribed={k: unix_to_dt(v) for k, v in agg.unsubscribed.items()},
        subscribed={k: unix_to_dt(v) for k, v in agg.subscribed.items()},
        stage=StageView(name=agg.stage, since=unix_to_dt(agg.stage_at), previous=agg.previous_stage)
        if agg.stage and agg.stage_at is not None
        else None,
        points=PointsView(**points_summary(agg, int(now.timestamp())))
        if agg.points_earned or agg.points_lots or agg.points_spent or agg.points_expired
        else None,
    )


def view_of(record: CustomerRecord, now: datetime) -> CustomerView:
    """The API view of a stored customer: profile, aggregates (once there are any) and last update."""
    has_agg = record.aggregates.has_data
    return CustomerView(
        customer_id=record.customer_id,
        profile=CustomerProfileIn.model_validate(record.profile) if record.profile else None,
        aggregates=aggregates_view(record.aggregates, now) if has_agg else None,
        updated_at=record.updated_at,
    )


def get_customer(customer_id: str, store: CustomerStore, now: datetime) -> CustomerView:
    """A customer's profile and aggregates.

    Raises
    ------
    NotFoundError
        No such customer (never created, or erased).
    """
    record = store.get_customer(customer_id)
    if record is None or record.erased:
        raise NotFoundError(f"customer '{customer_id}' not found")
    return view_of(record, now)


def erase_customer(
    customer_id: str,
    store: CustomerStore,
    archive: EventArchive,
    messages: MessageLog,
    decisions: DecisionLog,
    now: datetime,
    journeys: JourneyStore | None = None,
    contact_links: ContactLinks | None = None,
) -> ErasureReport:
    """Right to be forgotten: the customer is gone from every store and stays gone.

    Order matters, and every step is safe to run again (a retried ``DELETE`` finishes what a failed one began):

    1. a tombstone replaces the customer, so ingestion, late provider feedback, a launch page or a stream
       batch in flight can no longer add to it (each checks for it after it writes);
    2. the inventory of the events table says where copies live (archive dates, decision objects);
    3. the copies go: journey paths, message log (each record after its archived attempts), archived events,
       decisions;
    4. the events-table items go last, since they are the inventory a retry needs.

    Raises
    ------
    NotFoundError
        Nothing was ever stored for the id (and it was never erased before).
    """
    before = store.get_customer(customer_id)
    contact = ((before.profile or {}).get("contact") or {}) if before else {}
    if contact_links is not None:
        # First, while the profile still names the chat and the number (a retried erasure does it again)
        chat, phone = contact.get("messenger_chat_id"), contact.get("phone")
        contact_links.forget_customer(customer_id, str(chat) if chat else None, str(phone) if phone else None)
    old = store.tombstone(customer_id, now)
    found = store.erasure_inventory(customer_id)
    sent, sent_objects = messages.erase_customer(customer_id)
    paths = journeys.erase_customer(customer_id) if journeys is not None else 0
    if not (
        old["existed"] or found["events"] or found["engagement_moments"] or found["decision_objects"] or sent or paths
    ):
        store.forget_tombstone(customer_id, now)
        raise NotFoundError(f"customer '{customer_id}' not found")
    objects, lines = archive.purge_customer(customer_id, found["event_dates"])
    decision_objects, decision_lines = decisions.purge_customer(customer_id, found["decision_objects"])
    store.delete_customer_items(customer_id)
    return ErasureReport(
        customer_id=customer_id,
        profile=old["profile"],
        events=found["events"],
        engagement_moments=found["engagement_moments"],
        aggregates=old["aggregates"],
        archive_objects_rewritten=objects,
        archive_lines_removed=lines,
        messages=sent,
        message_archive_objects=sent_objects,
        decision_objects_rewritten=decision_objects,
        decision_lines_removed=decision_lines,
        journey_paths=paths,
        erased_before=old["erased_before"],
    )


def all_customers(store: CustomerStore, page_size: int = 1000) -> Iterator[CustomerRecord]:
    """Every stored customer that is not only a tombstone, page by page (one scan)."""
    cursor: str | None = None
    while True:
        records, cursor = store.scan_customers(0, 1, cursor, page_size)
        yield from (r for r in records if not r.erased)
        if cursor is None:
            return
