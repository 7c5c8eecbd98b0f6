"""Segment journeys: who is in a journey's segment, kept on a membership marker per customer, and the moves in
and out that let customers in, whether an event, a profile change or time alone made them.

A marker records whether the customer is in the segment and, when time alone may change that (``days_since_*``,
counts over a window), when to look again (``wake_at``, in the paths' wake index, so the timer finds it with the
paths that are due). Only customers whose state could have changed are evaluated: those with an event, a profile
change, or a marker that is due.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.audiences.matching import matches, next_change
from kairos.core.errors import ConflictError
from kairos.core.timeutil import parse_ts, utc_iso
from kairos.journeys.entrance import enter
from kairos.journeys.paths import MEMBER, PATH_RETENTION, path_key, save_path

if TYPE_CHECKING:
    from datetime import datetime

    from kairos.audiences.matching import CustomerHistory
    from kairos.customers.domain import CustomerRecord
    from kairos.journeys.domain import Journey
    from kairos.journeys.entrance import Entrance, Entry
    from kairos.journeys.ports import JourneyStore


# The customer store's item of a customer's profile in the events table (its stream tells a profile changed).
PROFILE_ITEM = "a#profile"
OUTSIDE = "outside"  # a membership marker of a customer not in the segment, kept for its next time to look again


def _segment_move(
    journey: Journey,
    record: CustomerRecord,
    inside: bool,
    wake: datetime | None,
    store: JourneyStore,
    now: datetime,
) -> str | None:
    """Record whether the customer is in the journey's segment, and when time alone may change that (``wake``);
    ``"enter"``/``"leave"`` when membership changed.

    The marker is written conditionally, so of two evaluations of one change only one reports it. A marker
    with ``wake_at`` sits in the paths' wake index: the timer looks at the customer again then (see
    :func:`recheck_members`), so a segment that depends on time moves without a new event.
    """
    key = path_key(journey.journey_id, MEMBER)
    marker = store.get_path(record.customer_id, key)
    was = marker is not None and marker.get("status") == MEMBER
    wake_at = utc_iso(wake) if wake is not None else None
    keep_until = int((max(now, wake or now) + PATH_RETENTION).timestamp())
    if marker is None:
        if not inside and wake_at is None:
            return None  # nothing to remember: outside, and time alone will not change it
        marker = {
            "customer_id": record.customer_id,
            "key": key,
            "journey_id": journey.journey_id,
            "version": journey.version,
            "entry_id": MEMBER,
            "entered_at": utc_iso(now),
            "seq": 0,
            "status": MEMBER if inside else OUTSIDE,
            "expires_at": keep_until,
        }
        if wake_at is not None:
            marker["wake_at"] = wake_at
        if not store.create_path(marker):
            return None  # another delivery of the same change got there first
        return "enter" if inside else None
    if was == inside and marker.get("wake_at") == wake_at:
        return None
    if was != inside:
        marker["status"] = MEMBER if inside else "left"
    if wake_at is None:
        marker.pop("wake_at", None)
    else:
        marker["wake_at"] = wake_at
    marker["expires_at"] = keep_until
    try:
        save_path(marker, store, now)
    except ConflictError:
        return None
    if was == inside:
        return None
    return "enter" if inside else "leave"


def segment_check(
    journey: Journey,
    record: CustomerRecord,
    entrance: Entrance,
    now: datetime,
    occasion: str,
    trigger: dict[str, Any],
    reader: CustomerHistory | None = None,
) -> Entry | None:
    """Evaluate a segment journey's segment for the customer now; let them in when they made the move the journey
    enters on (``occasion`` names what made the evaluation: an event, a profile change, the time, a scan).

    ``None`` when nothing entered (no move, the other move, or the segment is gone).
    """
    entry = journey.definition.entry
    filters = entrance.segment_filters(entry.segment or "") if entrance.segment_filters else None
    if filters is None:
        return None
    if reader is None and entrance.history is not None:
        reader = entrance.history(filters)
    inside = matches(record, filters, now, reader)
    wake = next_change(record, filters, now, reader)
    move = _segment_move(journey, record, inside, wake, entrance.store, now)
    if move != entry.on:
        return None
    trigger = {**trigger, "segment": entry.segment, "segment_change": move}
    return enter(journey, record.customer_id, occasion, trigger, record, entrance, now)


def on_profile_change(
    customer_id: str, change_id: str, journeys: list[Journey], entrance: Entrance, now: datetime
) -> dict[str, int]:
    """Segment entries after a customer's profile changed (an attribute, consent, a time zone), with no event.

    ``change_id`` names the change (the stream record's sequence number), so a change delivered twice is one entry.
    """
    counts = {"entered": 0, "control": 0, "skipped": 0, "already_entered": 0}
    by_segment = [j for j in journeys if j.is_active and j.definition.entry.kind == "segment"]
    if not by_segment:
        return counts
    record = entrance.customers.get_customer(customer_id)
    if record is None or record.erased:
        return counts
    for journey in by_segment:
        out = segment_check(journey, record, entrance, now, f"p-{change_id}", {"type": "profile_change"})
        if out is not None:
            counts[out.outcome] += 1
    return counts


def recheck_members(
    markers: list[dict[str, Any]], journeys: list[Journey], entrance: Entrance, now: datetime
) -> dict[str, int]:
    """The timer's side of segments in time: look again at each customer whose membership marker is due.

    A marker is due when time alone may have moved the customer in or out (``wake_at``, from
    :func:`~kairos.audiences.matching.next_change`). The occasion is the due time, so a marker seen by two ticks
    is one entry; a marker of a journey no longer active, or of a customer erased since, stops waking.
    """
    counts = {"rechecked": 0, "entered": 0, "control": 0, "skipped": 0, "already_entered": 0}
    by_id = {j.journey_id: j for j in journeys if j.is_active and j.definition.entry.kind == "segment"}
    for marker in markers:
        journey = by_id.get(marker["journey_id"])
        record = entrance.customers.get_customer(marker["customer_id"]) if journey is not None else None
        if journey is None or record is None or record.erased:
            marker.pop("wake_at", None)
            try:
                save_path(marker, entrance.store, now)
            except ConflictError:
                pass  # moved meanwhile: whoever moved it decided its next time
            continue
        counts["rechecked"] += 1
        occasion = f"t-{parse_ts(marker['wake_at']):%Y%m%dT%H%M%S}"
        out = segment_check(journey, record, entrance, now, occasion, {"type": "time", "at": marker["wake_at"]})
        if out is not None:
            counts[out.outcome] += 1
    return counts
