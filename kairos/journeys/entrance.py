"""Letting one customer into one journey: the entrance every kind of entry goes through (an event, a segment
change, a date, a schedule), with its re-entry rule, control groups and consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import parse_ts, utc_iso
from kairos.journeys.paths import MEMBER, PATH_RETENTION, WAITING_STATUS, path_key, step_name, step_payload
from kairos.messaging.consent import may_send
from kairos.models.timing import in_global_control, stable_unit

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.audiences.domain import Filter
    from kairos.audiences.matching import CustomerHistory
    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore
    from kairos.journeys.domain import Journey
    from kairos.journeys.ports import JourneyStarter, JourneyStore


def trigger_of(event: dict[str, Any]) -> dict[str, Any]:
    """What a path keeps of the event that started it (for splits and expiries), never contact data."""
    keep = ("event_id", "type", "timestamp", "channel", "product_id", "quantity", "amount", "currency", "properties")
    return {k: event[k] for k in keep if event.get(k) is not None}


@dataclass
class Entry:
    journey_id: str
    outcome: str  # entered | control | skipped | already_entered
    path: dict[str, Any] | None


@dataclass
class Entrance:
    """What letting customers in reads and writes.

    Parameters
    ----------
    customers, store
        The customers, and the journeys with their paths and entry scans.
    starter
        Starts a path's step (the journey step state machine) when it is due at entry.
    segment_filters
        Reads a saved segment's filters (``None``: the segment is gone).
    first_run
        Runs a new path's first nodes in place, without side effects (:func:`kairos.journeys.runner.first_nodes`).
    global_control_share
        The deployment's share of customers held out of everything.
    history
        What ``events.<type>`` and ``messages.<status>`` filters count, for a list of filters (one reader per
        scan shard: a reader keeps the customer it evaluates).
    """

    customers: CustomerStore
    store: JourneyStore
    starter: JourneyStarter
    segment_filters: Callable[[str], list[Filter] | None] | None = None
    first_run: Callable[[Journey, dict[str, Any], CustomerRecord, datetime], None] | None = None
    global_control_share: float = 0.0
    history: Callable[[list[Filter]], CustomerHistory | None] | None = None


def enter(
    journey: Journey,
    customer_id: str,
    occasion: str,
    trigger: dict[str, Any],
    record: CustomerRecord | None,
    entrance: Entrance,
    now: datetime,
) -> Entry:
    """Let a customer into the journey, if its re-entry rule, consent and control group allow.

    The path's first nodes run before it is stored (``entrance.first_run``): a path that then waits starts
    no step until it is due.

    ``occasion`` names what let them in (``e-<event id>``, ``s-<event id>`` for a segment change,
    ``d-<date>``, ``r-<run>``): the entry id is ``once`` for a journey entered once per customer, else the
    occasion, so one occasion is one entry however often it is seen; ``once_per`` also refuses an entry
    within ``days`` of the previous one.
    """
    definition = journey.definition
    store, starter = entrance.store, entrance.starter
    cid = customer_id  # the path's key and every message id name the customer by this
    rule = definition.reentry
    if rule.mode == "once":
        entry_id = "once"
    else:
        entry_id = occasion
        if rule.mode == "once_per":
            since = now - timedelta(days=rule.days)
            for p in store.customer_paths(cid, journey.journey_id):
                if p["entry_id"] not in (entry_id, MEMBER) and parse_ts(p["entered_at"]) > since:
                    return Entry(journey.journey_id, "already_entered", None)
    path: dict[str, Any] = {
        "customer_id": cid,
        "key": path_key(journey.journey_id, entry_id),
        "journey_id": journey.journey_id,
        "version": journey.version,
        "entry_id": entry_id,
        "entered_at": utc_iso(now),
        "trigger": trigger,
        "node": definition.start,
        "node_at": utc_iso(now),
        "seq": 0,
        "state": {},
        "visits": {},
        "messages": [],
        "updated_at": utc_iso(now),
        "expires_at": int((now + timedelta(days=definition.max_days) + PATH_RETENTION).timestamp()),
    }
    channels = sorted(definition.channels())
    if in_global_control(cid, entrance.global_control_share):
        outcome = "control"
        path.update(status="control", exit_reason="global control group", global_control=True)
    elif stable_unit("journey-control", journey.journey_id, cid, entry_id) < definition.control_share:
        outcome = "control"
        path.update(status="control", exit_reason="control group")
    elif channels and not any(may_send(record, ch, definition.topic, definition.transactional)[0] for ch in channels):
        outcome = "skipped"
        path.update(status="skipped", exit_reason="no channel of the journey may reach the customer")
    else:
        outcome = "entered"
        path.update(status=WAITING_STATUS, wake_at=utc_iso(now))
    if outcome == "entered" and entrance.first_run is not None and record is not None:
        entrance.first_run(journey, path, record, now)
    if not store.create_path(path):
        return Entry(journey.journey_id, "already_entered", None)
    if path.get("status") == WAITING_STATUS and parse_ts(path["wake_at"]) <= now:
        starter.start(step_name(path), step_payload(path))
    return Entry(journey.journey_id, outcome, path)
