"""Triggered journeys: create and version them, let customers in when they do something, move each path along.

A customer's *path* through a journey is a record in the journey store, not a long-running execution: it holds
the node the customer is at, and while it waits, ``wake_at``. Each move is one short step (one Step Functions
execution running :func:`advance`), started when the customer enters, when the timer finds ``wake_at`` has
come, or at once when the customer does something the path waits for. A step runs nodes until one waits
(a delay, a wait for an event, the pause between a cycle's messages) or the path ends, then saves the path
under a ``seq`` check, so two steps can never both move it; a message's id is fixed by the path, node and visit,
so a step that is retried after a crash sends nothing twice.

No step holds an open execution while a customer waits days, and the common path costs one state
transition per step (see ``statemachine/journey_step.asl.json``).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.domain.campaigns import Filter
from kairos.domain.journeys import (
    TRANSITIONS,
    Cycle,
    Delay,
    Exit,
    Journey,
    JourneyIn,
    Message,
    RandomSplit,
    SetAttribute,
    Split,
    Task,
    WaitFor,
    graph_errors,
)
from kairos.domain.messages import DELIVERED, SendRequest
from kairos.errors import ConflictError, InvalidInputError, NotFoundError
from kairos.logic import results as outcome
from kairos.logic.consent import may_send
from kairos.logic.segments import compare, field_value, matches, matches_filter
from kairos.logic.send import Content, deliver
from kairos.logic.timing import QuietHours, decide, decision_inputs, in_global_control, stable_unit
from kairos.observability import logger
from kairos.timeutil import parse_ts, utc_iso, zone

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.domain.customers import CustomerRecord
    from kairos.ports import CampaignStore, CustomerStore, JourneyStarter, JourneyStore, MessageLog, Provider, TaskSink

MAX_NODES_PER_STEP = 50  # a step that would run more nodes than this has a loop the validation missed
PATH_RETENTION = timedelta(days=400)
ENGAGEMENT = ("message_open", "message_click")
WAITING_STATUS = "waiting"
OPEN_STATUSES = (WAITING_STATUS,)


# -- definitions -----------------------------------------------------------------------------------------------


def validate(journey: JourneyIn) -> None:
    """Raise :class:`InvalidInputError` naming the node and field of the first problem in the graph."""
    errors = graph_errors(journey)
    if errors:
        field, reason = errors[0]
        raise InvalidInputError(field, reason)


def create_journey(journey: JourneyIn, store: JourneyStore, now: datetime) -> dict[str, Any]:
    """Store a new journey as a ``draft`` (version 1); it lets nobody in until it is activated."""
    validate(journey)
    doc = {
        "journey_id": uuid.uuid4().hex,
        "status": "draft",
        "version": 1,
        "definition": journey.model_dump(mode="json", by_alias=True),
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }
    store.create_journey(doc)
    return doc


def update_journey(journey_id: str, journey: JourneyIn, store: JourneyStore, now: datetime) -> dict[str, Any]:
    """A new version. Customers already on a path finish it on the version they entered; new entries use it."""
    validate(journey)
    for _ in range(5):
        current = store.get_journey(journey_id)
        if current["status"] == "archived":
            raise InvalidInputError("status", "an archived journey cannot change")
        doc = {**current, "definition": journey.model_dump(mode="json", by_alias=True), "updated_at": now.isoformat()}
        try:
            store.put_version(doc, current["version"])
        except ConflictError:
            continue
        return store.get_journey(journey_id)
    raise ConflictError("the journey kept changing while it was updated")


def set_status(journey_id: str, status: str, store: JourneyStore, now: datetime) -> dict[str, Any]:
    """Move through draft -> active <-> paused -> archived; a move the lifecycle does not allow is a 400."""
    current = store.get_journey(journey_id)
    allowed_from = tuple(s for s, moves in TRANSITIONS.items() if status in moves)
    if current["status"] == status:
        return current
    if current["status"] not in allowed_from:
        raise InvalidInputError("status", f"a {current['status']} journey cannot become {status}")
    store.set_journey_status(journey_id, status, allowed_from, now.isoformat())
    return store.get_journey(journey_id)


# -- entry -------------------------------------------------------------------------------------------------------

MEMBER = "member"  # the entry id of a segment journey's membership marker (not a path)


def segment_filters(campaigns: CampaignStore) -> Callable[[str], list[Filter] | None]:
    """A reader of saved segments' filters (``None`` for a segment that is gone)."""

    def read(name: str) -> list[Filter] | None:
        try:
            return [Filter.model_validate(f) for f in campaigns.get_segment(name).get("filters") or []]
        except NotFoundError:
            return None

    return read


def path_key(journey_id: str, entry_id: str) -> str:
    return f"{journey_id}#{entry_id}"


def step_name(path: dict[str, Any]) -> str:
    """The execution name of a path's next step: fixed by path and ``seq``, so a step starts at most once."""
    digest = hashlib.sha256(f"{path['customer_id']}\x1f{path['key']}".encode()).hexdigest()[:32]
    return f"{path['journey_id'][:32]}-{digest}-{path['seq']}"


def step_payload(path: dict[str, Any]) -> dict[str, Any]:
    """The step's input: ids only (Step Functions keeps execution input for 90 days)."""
    return {"customer_id": path["customer_id"], "key": path["key"], "seq": path["seq"]}


def _event_value(event: dict[str, Any], name: str) -> Any:
    if name.startswith("properties."):
        value: Any = event.get("properties") or {}
        for part in name.split(".")[1:]:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value
    return event.get(name)


def event_matches(event: dict[str, Any], event_type: str, where: list[Any]) -> bool:
    """Whether an event is of ``event_type`` and its own fields meet every condition of ``where``."""
    if event.get("type") != event_type:
        return False
    return all(compare(_event_value(event, c.field), c.op, c.value) for c in where)


def _trigger(event: dict[str, Any]) -> dict[str, Any]:
    """What a path keeps of the event that started it (for splits and expiries), never contact data."""
    keep = ("event_id", "type", "timestamp", "channel", "product_id", "quantity", "amount", "currency", "properties")
    return {k: event[k] for k in keep if event.get(k) is not None}


@dataclass
class Entry:
    journey_id: str
    outcome: str  # entered | control | skipped | already_entered
    path: dict[str, Any] | None


def enter(
    journey: Journey,
    customer_id: str,
    occasion: str,
    trigger: dict[str, Any],
    record: CustomerRecord | None,
    store: JourneyStore,
    starter: JourneyStarter,
    now: datetime,
) -> Entry:
    """Let a customer into the journey, if its re-entry rule, consent and control group allow.

    ``occasion`` names what let them in (``e-<event id>``, ``s-<event id>`` for a segment change,
    ``d-<date>``, ``r-<run>``): the entry id is ``once`` for a journey entered once per customer, else the
    occasion, so one occasion is one entry however often it is seen; ``once_per`` also refuses an entry
    within ``days`` of the previous one.
    """
    definition = journey.definition
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
    if in_global_control(cid):
        outcome = "control"
        path.update(status="control", exit_reason="global control group", global_control=True)
    elif stable_unit("journey-control", journey.journey_id, cid, entry_id) < definition.control_share:
        outcome = "control"
        path.update(status="control", exit_reason="control group")
    elif channels and not any(may_send(record, ch)[0] for ch in channels):
        outcome = "skipped"
        path.update(status="skipped", exit_reason="no consent for any channel of the journey")
    else:
        outcome = "entered"
        path.update(status=WAITING_STATUS, wake_at=utc_iso(now))
    if not store.create_path(path):
        return Entry(journey.journey_id, "already_entered", None)
    if outcome == "entered":
        starter.start(step_name(path), step_payload(path))
    return Entry(journey.journey_id, outcome, path)


def _segment_move(
    journey: Journey, record: CustomerRecord, inside: bool, store: JourneyStore, now: datetime
) -> str | None:
    """Record whether the customer is in the journey's segment; ``"enter"``/``"leave"`` when that changed."""
    key = path_key(journey.journey_id, MEMBER)
    marker = store.get_path(record.customer_id, key)
    was = marker is not None and marker.get("status") == MEMBER
    if was == inside:
        return None
    if marker is None:
        marker = {
            "customer_id": record.customer_id,
            "key": key,
            "journey_id": journey.journey_id,
            "version": journey.version,
            "entry_id": MEMBER,
            "entered_at": utc_iso(now),
            "seq": 0,
            "status": MEMBER,
            "expires_at": int((now + PATH_RETENTION).timestamp()),
        }
        if not store.create_path(marker):
            return None  # another delivery of the same change got there first
    else:
        marker["status"] = MEMBER if inside else "left"
        try:
            save_path(marker, store, now)
        except ConflictError:
            return None
    return "enter" if inside else "leave"


def on_events(
    events: list[dict[str, Any]],
    journeys: list[Journey],
    customers: CustomerStore,
    store: JourneyStore,
    starter: JourneyStarter,
    now: datetime,
    segment_filters: Callable[[str], list[Filter] | None] | None = None,
) -> dict[str, int]:
    """Entries and early wake-ups for a batch of accepted events (the events table's stream, in order).

    Each event may start paths (journeys whose entry it matches, or whose segment it moved the customer into or
    out of) and wakes the customer's waiting paths at once when the event is one they wait for or one that
    ends them, instead of at their timeout. ``segment_filters`` reads a saved segment (``None``: gone).
    """
    counts = {"entered": 0, "control": 0, "skipped": 0, "already_entered": 0, "woken": 0}
    active = [j for j in journeys if j.is_active]
    by_event = [j for j in active if j.definition.entry.kind == "event"]
    by_segment = [j for j in active if j.definition.entry.kind == "segment"]
    waking = waking_types(active)
    for event in events:
        cid = event["customer_id"]
        matching = [
            j for j in by_event if event_matches(event, j.definition.entry.event or "", j.definition.entry.where)
        ]
        if matching or by_segment:
            record = customers.get_customer(cid)
            if record is None or record.erased:
                continue
            for journey in matching:
                out = enter(journey, cid, f"e-{event['event_id']}", _trigger(event), record, store, starter, now)
                counts[out.outcome] += 1
            for journey in by_segment:
                entry = journey.definition.entry
                filters = segment_filters(entry.segment or "") if segment_filters else None
                if filters is None:
                    continue
                move = _segment_move(journey, record, matches(record, filters, now), store, now)
                if move == entry.on:
                    trigger = {**_trigger(event), "segment": entry.segment, "segment_change": move}
                    out = enter(journey, cid, f"s-{event['event_id']}", trigger, record, store, starter, now)
                    counts[out.outcome] += 1
        if event.get("type") in waking:
            counts["woken"] += wake_paths(cid, event, store, starter, now)
    return counts


def _occurrences(raw: Any, yearly: bool, now: datetime) -> list[datetime]:
    """The dates an attribute names (midnight UTC for a bare date); with ``yearly`` its anniversaries around now."""
    if not isinstance(raw, str):
        return []
    try:
        value = parse_ts(raw if "T" in raw else f"{raw[:10]}T00:00:00+00:00")
    except ValueError:
        return []
    if value is None:
        return []
    if value.utcoffset() is None:
        value = value.replace(tzinfo=now.tzinfo)
    if not yearly:
        return [value]
    out = []
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            out.append(value.replace(year=year))
        except ValueError:  # 29 February in a year without it
            out.append(value.replace(year=year, day=28))
    return out


def _run_of(entry: Any, now: datetime) -> datetime | None:
    """The scheduled run due at ``now`` (the latest at or before it), or ``None`` before the first."""
    sched = entry.schedule
    if now < sched.at:
        return None
    if not sched.every_hours:
        return sched.at
    period = timedelta(hours=sched.every_hours)
    return sched.at + period * int((now - sched.at) / period)


def scan_entries(
    journeys: list[Journey],
    customers: CustomerStore,
    store: JourneyStore,
    starter: JourneyStarter,
    now: datetime,
    segment_filters: Callable[[str], list[Filter] | None] | None = None,
    time_left_ms: Callable[[], int] = lambda: 10**9,
    page_size: int = 500,
) -> dict[str, int]:
    """Date-attribute and scheduled entries: scan the customers for each journey whose run is due.

    A date journey runs every hour (a customer enters once per date: its entry id is the date), a scheduled
    one at each of its runs. A scan resumes from its saved cursor when one invocation's time runs out.
    """
    counts = {"entered": 0, "control": 0, "skipped": 0, "already_entered": 0, "scanned": 0}
    for journey in journeys:
        entry = journey.definition.entry
        if not journey.is_active or entry.kind not in ("date", "schedule"):
            continue
        run = now.replace(minute=0, second=0, microsecond=0) if entry.kind == "date" else _run_of(entry, now)
        if run is None:
            continue
        state = store.get_scan(journey.journey_id) or {}
        if state.get("run") == utc_iso(run) and state.get("done"):
            continue
        cursor = state.get("cursor") if state.get("run") == utc_iso(run) else None
        filters: list[Filter] | None = []
        if entry.segment:
            filters = segment_filters(entry.segment) if segment_filters else None
            if filters is None:
                continue
        while True:
            records, cursor = customers.scan_customers(0, 1, cursor, page_size)
            for rec in records:
                counts["scanned"] += 1
                if entry.kind == "schedule":
                    if not matches(rec, filters or [], now):
                        continue
                    occasion, trigger = f"r-{run:%Y%m%dT%H%M}", {"type": "schedule", "run": utc_iso(run)}
                else:
                    attrs = (rec.profile or {}).get("attributes") or {}
                    due = [
                        d
                        for d in _occurrences(attrs.get(entry.date_attribute or ""), entry.yearly, now)
                        if d - timedelta(days=entry.days_before) <= now < d - timedelta(days=entry.days_before - 1)
                    ]
                    if not due:
                        continue
                    when = due[0]
                    occasion = f"d-{when:%Y%m%d}"
                    trigger = {"type": "date", "attribute": entry.date_attribute, "date": utc_iso(when)}
                out = enter(journey, rec.customer_id, occasion, trigger, rec, store, starter, now)
                counts[out.outcome] += 1
            done = cursor is None
            store.put_scan(journey.journey_id, {"run": utc_iso(run), "cursor": cursor, "done": done})
            if done or time_left_ms() < 10_000:
                break
    return counts


def waking_types(journeys: list[Journey]) -> set[str]:
    """Event types that may move a waiting path: engagement, exit criteria, what wait nodes wait for."""
    types: set[str] = set(ENGAGEMENT)
    for j in journeys:
        types |= set(j.definition.exit_on)
        types |= {n.event for n in j.definition.nodes.values() if isinstance(n, WaitFor)}
    return types


def wake_paths(
    customer_id: str, event: dict[str, Any], store: JourneyStore, starter: JourneyStarter, now: datetime
) -> int:
    """Make the customer's waiting paths due now (their step decides whether the event matters)."""
    woken = 0
    for path in store.customer_paths(customer_id):
        if path.get("status") != WAITING_STATUS or not path.get("wake_at"):
            continue
        if parse_ts(path["wake_at"]) <= now:
            starter.start(step_name(path), step_payload(path))  # due already: make sure its step runs
            continue
        path["wake_at"] = utc_iso(now)
        try:
            save_path(path, store, now)
        except ConflictError:
            continue  # a step is moving it right now and will see the event
        starter.start(step_name(path), step_payload(path))
        woken += 1
    return woken


def start_due(store: JourneyStore, starter: JourneyStarter, now: datetime, limit: int = 1000) -> int:
    """The timer: start the step of every waiting path whose time has come (a start made before is refused)."""
    started = 0
    for path in store.due_paths(utc_iso(now), limit):
        if path.get("status") == WAITING_STATUS and starter.start(step_name(path), step_payload(path)):
            started += 1
    return started


# -- moving a path ------------------------------------------------------------------------------------------------


@dataclass
class StepDeps:
    """What a step reads and writes."""

    customers: CustomerStore
    journeys: JourneyStore
    campaigns: CampaignStore
    messages: MessageLog
    providers: dict[str, Provider]
    tasks: TaskSink
    population: Callable[[], dict[str, Any] | None] | None = None
    products: Callable[[list[str]], dict[str, dict[str, Any]]] | None = None


class _Wait(Exception):  # noqa: N818 - control flow inside a step, never leaves this module
    def __init__(self, until: datetime) -> None:
        self.until = until


class _End(Exception):  # noqa: N818
    def __init__(self, reason: str) -> None:
        self.reason = reason


def advance(customer_id: str, key: str, seq: int, deps: StepDeps, now: datetime) -> dict[str, Any]:
    """Run one step of a path; returns ``{"status", "node", "wake_at"?, "reason"?}``.

    A step whose ``seq`` is no longer the path's (another step moved it, or it was started twice) changes
    nothing. Raises what the providers and stores raise transiently, for the state machine to retry.
    """
    path = deps.journeys.get_path(customer_id, key)
    if path is None:
        return {"status": "gone", "node": None}
    if path["seq"] != seq or path.get("status") != WAITING_STATUS:
        return {"status": "stale", "node": path.get("node")}
    try:
        doc = deps.journeys.get_journey(path["journey_id"], path["version"])
    except NotFoundError:
        return _finish(path, deps, now, "done", "journey deleted")
    journey = Journey.from_doc(doc)
    current = deps.journeys.get_journey(path["journey_id"])
    if current["status"] == "archived":
        return _finish(path, deps, now, "done", "journey archived")
    if current["status"] == "paused":
        # A paused journey holds its paths where they are and looks again in an hour.
        return _park(path, deps, now, now + timedelta(hours=1))
    record = deps.customers.get_customer(customer_id)
    if record is None or record.erased:
        return _finish(path, deps, now, "done", "customer gone")
    runner = _Runner(journey, path, record, deps, now)
    try:
        runner.run()
    except _Wait as wait:
        return _park(path, deps, now, wait.until)
    except _End as end:
        return _finish(path, deps, now, "done", end.reason)
    raise AssertionError("a step ends by waiting or ending")  # pragma: no cover


def save_path(path: dict[str, Any], store: JourneyStore, now: datetime) -> None:
    """Save a path as its next ``seq``, only if nobody saved it since it was read (else ConflictError)."""
    seq = path["seq"]
    path.update(seq=seq + 1, updated_at=utc_iso(now))
    store.save_path(path, seq)


def _park(path: dict[str, Any], deps: StepDeps, now: datetime, until: datetime) -> dict[str, Any]:
    path["wake_at"] = utc_iso(max(until, now))
    save_path(path, deps.journeys, now)
    return {"status": WAITING_STATUS, "node": path["node"], "wake_at": path["wake_at"]}


def _finish(path: dict[str, Any], deps: StepDeps, now: datetime, status: str, reason: str) -> dict[str, Any]:
    path.pop("wake_at", None)
    path.update(status=status, exit_reason=reason, ended_at=utc_iso(now))
    save_path(path, deps.journeys, now)
    return {"status": status, "node": path["node"], "reason": reason}


def fail_path(customer_id: str, key: str, error: str, store: JourneyStore, now: datetime) -> bool:
    """Mark a path ``failed`` after its step failed every retry (the state machine's Catch); ``False`` if gone."""
    for _ in range(5):
        path = store.get_path(customer_id, key)
        if path is None or path.get("status") != WAITING_STATUS:
            return False
        path.pop("wake_at", None)
        path.update(status="failed", exit_reason=error[:500], ended_at=utc_iso(now))
        try:
            save_path(path, store, now)
        except ConflictError:
            time.sleep(0.05 * random.random())
            continue
        return True
    return False


class _Runner:
    """Runs nodes of one path from where it is until one waits or the path ends."""

    def __init__(
        self, journey: Journey, path: dict[str, Any], record: CustomerRecord, deps: StepDeps, now: datetime
    ) -> None:
        self.journey, self.path, self.record, self.deps, self.now = journey, path, record, deps, now
        self.definition = journey.definition
        self.cid = record.customer_id
        self._events: list[dict[str, Any]] | None = None

    # facts about the customer since a time
    def events_since(self, since: datetime) -> list[dict[str, Any]]:
        if self._events is None:
            self._events = self.deps.customers.customer_events(self.cid)
        return [e for e in self._events if parse_ts(e["timestamp"]) >= since]

    def prefix(self) -> str:
        return f"{self.journey.journey_id}.{self.path['entry_id']}."

    def engaged_since(self, since: datetime, message_ids: set[str] | None = None) -> bool:
        """An open or click of this path's messages (of ``message_ids`` when given) since ``since``."""
        for e in self.events_since(since):
            mid = e.get("message_id") or ""
            if e.get("type") in ENGAGEMENT and mid.startswith(self.prefix()):
                if message_ids is None or mid in message_ids:
                    return True
        return False

    def run(self) -> None:
        entered = parse_ts(self.path["entered_at"])
        if self.now >= entered + timedelta(days=self.definition.max_days):
            raise _End("max_days reached")
        trigger_id = (self.path.get("trigger") or {}).get("event_id")
        for e in self.events_since(entered):
            # The event that let the customer in never ends the path (a purchase journey may exit on the next one).
            if e.get("type") in self.definition.exit_on and e.get("event_id") != trigger_id:
                raise _End(f"exit_on {e['type']}")
        for _ in range(MAX_NODES_PER_STEP):
            node_id = self.path["node"]
            node = self.definition.nodes[node_id]
            nxt = self.visit(node_id, node)
            self.move(nxt)
        raise _End(f"more than {MAX_NODES_PER_STEP} nodes in one step")

    def move(self, node_id: str) -> None:
        visits = self.path.setdefault("visits", {})
        old = self.path["node"]
        visits[old] = int(visits.get(old, 0)) + 1
        self.path.update(node=node_id, node_at=utc_iso(self.now), state={})

    def visit(self, node_id: str, node: Any) -> str:
        state = self.path.setdefault("state", {})
        node_at = parse_ts(self.path["node_at"])
        if isinstance(node, Exit):
            visits = self.path.setdefault("visits", {})
            visits[node_id] = int(visits.get(node_id, 0)) + 1
            raise _End(f"exit at {node_id}")
        if isinstance(node, Delay):
            if "until" not in state:
                state["until"] = utc_iso(self.delay_until(node))
            until = parse_ts(state["until"])
            if self.now < until:
                raise _Wait(until)
            return node.next
        if isinstance(node, WaitFor):
            for e in self.events_since(node_at):
                if not event_matches_wait(e, node, self.prefix()):
                    continue
                return node.on_event
            deadline = node_at + timedelta(hours=node.timeout_hours)
            if self.now >= deadline:
                return node.on_timeout
            raise _Wait(deadline)
        if isinstance(node, Split):
            for branch in node.branches:
                if all(self.holds(c) for c in branch.when):
                    return branch.next
            return node.else_
        if isinstance(node, RandomSplit):
            draw = stable_unit("journey-variant", self.journey.journey_id, self.cid, self.path["entry_id"], node_id)
            acc = 0.0
            chosen = node.variants[-1]
            for v in node.variants:
                acc += v.share
                if draw < acc:
                    chosen = v
                    break
            self.path.setdefault("variants", {})[node_id] = chosen.name
            return chosen.next
        if isinstance(node, Message):
            channel = self.best_channel(node)
            if channel is None:
                self.note_message(node_id, node.channel, "skipped", "no channel allowed")
                return node.next
            self.hold_for_quiet_hours(channel)
            self.send(node_id, channel, node.content, visit=self.visit_count(node_id))
            return node.next
        if isinstance(node, Cycle):
            return self.cycle(node_id, node, node_at)
        if isinstance(node, Task):
            detail = {
                **node.detail,
                "task_id": f"{self.journey.journey_id}.{self.path['entry_id']}.{node_id}.{self.visit_count(node_id)}",
                "journey_id": self.journey.journey_id,
                "journey_name": self.definition.name,
                "customer_id": self.cid,
                "node": node_id,
                "trigger": self.path.get("trigger") or {},
            }
            self.deps.tasks.emit(node.detail_type, detail)
            return node.next
        if isinstance(node, SetAttribute):
            self.set_attribute(node.attribute, node.value)
            return node.next
        raise AssertionError(f"unknown node {node_id}")  # pragma: no cover

    def visit_count(self, node_id: str) -> int:
        return int(self.path.get("visits", {}).get(node_id, 0))

    def tz(self) -> str:
        return self.record.timezone

    def quiet(self) -> QuietHours | None:
        q = self.definition.quiet_hours
        return QuietHours(q.start, q.end) if q else None

    def delay_until(self, node: Delay) -> datetime:
        if node.hours is not None:
            return self.now + timedelta(hours=node.hours)
        tz = self.tz()
        if node.local_time is not None:
            local = self.now.astimezone(zone(tz))
            target = local.replace(hour=node.local_time.hour, minute=node.local_time.minute, second=0, microsecond=0)
            if target <= local:
                target += timedelta(days=1)
            return target.astimezone(self.now.tzinfo)
        rec = self.record.recommendation or (self.deps.population() if self.deps.population else None) or {}
        scores, window = decision_inputs(rec)
        d = decide(
            mode="optimized" if scores else "immediate",
            now=self.now,
            tz=tz,
            window_end=self.now + timedelta(hours=node.best_hour_within_hours or 24),
            hour_scores=scores,
            window=window,
            quiet=self.quiet(),
            seed=(self.journey.journey_id, self.cid, self.path["entry_id"]),
        )
        if d is None:
            return self.now
        self.path.setdefault("decisions", {})[self.path["node"]] = {
            "send_at": utc_iso(d.send_at),
            "hour_of_week": d.hour_of_week,
            "probability": d.probability,
            "policy": d.policy,
            "model_version": rec.get("model_version"),
            "timezone": tz,
        }
        return d.send_at

    def hold_for_quiet_hours(self, channel: str) -> None:
        quiet = self.quiet()
        if quiet is None:
            return
        if self.definition.quiet_channels is not None and channel not in self.definition.quiet_channels:
            return
        local = self.now.astimezone(zone(self.tz()))
        if not quiet.contains(local):
            return
        end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        raise _Wait(end.astimezone(self.now.tzinfo))

    def best_channel(self, node: Message) -> str | None:
        if node.channel != "best":
            return node.channel
        rec = self.record.recommendation or {}
        ranked = rec.get("channel_ranking") or []
        order = sorted(node.channels, key=lambda c: ranked.index(c) if c in ranked else len(ranked))
        for ch in order:
            if may_send(self.record, ch)[0]:
                return ch
        return None

    def holds(self, cond: Any) -> bool:
        f = cond.field
        if f.startswith("event."):
            return compare(_event_value(self.path.get("trigger") or {}, f[len("event.") :]), cond.op, cond.value)
        if f == "segment":
            filters = segment_filters(self.deps.campaigns)(str(cond.value))
            if filters is None:
                return cond.op == "ne"
            inside = matches(self.record, filters, self.now)
            return inside if cond.op == "eq" else not inside
        if cond.op == "contains":
            return compare(field_value(self.record, f, self.now), "contains", cond.value)
        return matches_filter(self.record, Filter(field=f, op=cond.op, value=cond.value), self.now)

    def send(
        self, node_id: str, channel: str, content: Any, visit: int, part: str = "", expires: datetime | None = None
    ) -> dict[str, Any]:
        message_id = f"{self.prefix()}{node_id}{part}.{visit}"
        last_delay = None  # the send-time decision of the latest best-hour delay, logged with the message
        for d in (self.path.get("decisions") or {}).values():
            last_delay = d
        req = SendRequest(
            message_id=message_id,
            campaign_id=self.journey.journey_id,
            customer_id=self.cid,
            channel=channel,
            step=len(self.path.get("messages") or []),
            decision=last_delay,
        )

        def prepare() -> Content | str:
            return Content(content, self.definition.frequency_cap, expires)

        result = deliver(
            req,
            self.deps.customers,
            prepare,
            self.deps.providers,
            self.deps.messages,
            self.now,
            self.deps.population,
            extra={"journey_id": self.journey.journey_id, "node": node_id},
            products=self.deps.products,
        )
        self.note_message(node_id, channel, result["status"], result.get("reason") or "", message_id)
        return result

    def note_message(self, node_id: str, channel: str, status: str, reason: str, message_id: str = "") -> None:
        msgs = self.path.setdefault("messages", [])
        if message_id and any(m.get("message_id") == message_id for m in msgs):
            return
        msgs.append(
            {
                "node": node_id,
                "channel": channel,
                "status": status,
                "reason": reason,
                "message_id": message_id,
                "at": utc_iso(self.now),
            }
        )

    def expiry_of_trigger(self, field: str | None = None) -> datetime | None:
        if field is None:
            return None
        raw = _event_value(self.path.get("trigger") or {}, field)
        try:
            value = parse_ts(raw) if isinstance(raw, str) else None
        except ValueError:
            return None
        return value if value is not None and value.utcoffset() is not None else None

    def cycle(self, node_id: str, node: Cycle, node_at: datetime) -> str:
        state = self.path.setdefault("state", {})
        expiry_candidates = []
        if node.expires_after_hours is not None:
            expiry_candidates.append(node_at + timedelta(hours=node.expires_after_hours))
        from_event = self.expiry_of_trigger(node.expires_at_field)
        if from_event is not None:
            expiry_candidates.append(from_event)
        expiry = min(expiry_candidates) if expiry_candidates else None
        sent_ids = set(state.get("sent") or [])
        if sent_ids and self.engaged_since(node_at, sent_ids):
            return node.next
        if expiry is not None and self.now >= expiry:
            return node.on_expiry
        position = int(state.get("position", 0))
        total = len(node.channels) * node.rounds
        next_at = parse_ts(state["next_at"]) if state.get("next_at") else self.now
        if self.now < next_at:
            raise _Wait(min(next_at, expiry) if expiry else next_at)
        while position < total:
            channel = node.channels[position % len(node.channels)]
            rnd = position // len(node.channels)
            position += 1
            state["position"] = position
            if not may_send(self.record, channel)[0]:
                continue  # not reachable there: on to the next channel at once
            self.hold_for_quiet_hours(channel)
            result = self.send(
                node_id, channel, node.content, self.visit_count(node_id), part=f"-{rnd}-{channel}", expires=expiry
            )
            if result["status"] in DELIVERED:
                sent_ids.add(result["message_id"])
                state["sent"] = sorted(sent_ids)
                until = self.now + timedelta(hours=node.wait_hours)
                state["next_at"] = utc_iso(until)
                raise _Wait(min(until, expiry) if expiry else until)
        return node.on_expiry

    def set_attribute(self, name: str, value: Any) -> None:
        from kairos.logic.customers import MAX_ATTEMPTS

        for _ in range(MAX_ATTEMPTS):
            record = self.deps.customers.get_customer(self.cid)
            if record is None or not record.profile:
                return  # no profile to hold attributes
            profile = dict(record.profile)
            attributes = dict(profile.get("attributes") or {})
            if value is None:
                attributes.pop(name, None)
            else:
                attributes[name] = value
            profile["attributes"] = attributes
            try:
                self.deps.customers.put_profile(record, profile, None, self.now)
            except ConflictError:
                continue
            self.record = record
            return


def event_matches_wait(event: dict[str, Any], node: WaitFor, prefix: str) -> bool:
    """Whether an event is what a wait node waits for; opens and clicks count for this path's messages only."""
    if not event_matches(event, node.event, node.where):
        return False
    if node.event in ENGAGEMENT:
        return str(event.get("message_id") or "").startswith(prefix)
    return True


# -- results -------------------------------------------------------------------------------------------------------


def results(
    journey_id: str, store: JourneyStore, customers: CustomerStore | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Where the journey's customers are, how their paths ended, what was sent, and (with ``customers``) what it
    brought: conversions within ``attribution_days`` of entering, against the journey's control group
    (``kairos.logic.results``)."""
    doc = store.get_journey(journey_id)
    definition = JourneyIn.model_validate(doc["definition"])
    out: dict[str, Any] = {
        "journey_id": journey_id,
        "entries": 0,
        "control": 0,
        "active": 0,
        "completed": 0,
        "exited": {},
        "at_node": {},
        "visits": {},
        "messages": {},
        "variants": {},
    }
    treated: list[tuple[str, datetime]] = []
    held_out: list[tuple[str, datetime]] = []
    delivered: dict[tuple[str, datetime], list[tuple[datetime, tuple[str, str]]]] = {}
    steps: dict[tuple[str, str], dict[str, Any]] = {}
    by_day: dict[str, dict[str, Any]] = {}

    def day_row(day: str) -> dict[str, Any]:
        return by_day.setdefault(day, {"day": day, "entries": 0, "sent": 0, "converted": 0, "revenue": 0.0})

    for p in store.journey_paths(journey_id):
        if p.get("entry_id") == MEMBER:
            continue  # a segment journey's record of who is in the segment, not a path
        out["entries"] += 1
        status = p.get("status")
        entered = parse_ts(p.get("entered_at"))
        member = (p["customer_id"], entered) if entered is not None else None
        if entered is not None:
            day_row(entered.date().isoformat())["entries"] += 1
        if status == "control":
            out["control"] += 1
            if member and not p.get("global_control"):
                held_out.append(member)
        else:
            if member:
                treated.append(member)
            if status == WAITING_STATUS:
                out["active"] += 1
                out["at_node"][p["node"]] = out["at_node"].get(p["node"], 0) + 1
            else:
                out["completed"] += 1
                reason = p.get("exit_reason") or status
                out["exited"][reason] = out["exited"].get(reason, 0) + 1
        for node, n in (p.get("visits") or {}).items():
            out["visits"][node] = out["visits"].get(node, 0) + int(n)
        for m in p.get("messages") or []:
            by = out["messages"].setdefault(m["channel"], {})
            by[m["status"]] = by.get(m["status"], 0) + 1
            key = (str(m.get("node")), str(m["channel"]))
            row = steps.setdefault(
                key, {"node": key[0], "channel": key[1], "messages": 0, "converted": 0, "revenue": 0.0}
            )
            row["messages"] += 1
            row[m["status"]] = row.get(m["status"], 0) + 1
            at = parse_ts(m.get("at"))
            if m["status"] in DELIVERED and at is not None and member:
                delivered.setdefault(member, []).append((at, key))
                day_row(at.date().isoformat())["sent"] += 1
        for name in (p.get("variants") or {}).values():
            out["variants"][name] = out["variants"].get(name, 0) + 1
    out["status"] = "completed" if doc.get("status") == "archived" and out["active"] == 0 else str(doc.get("status"))
    if customers is None:
        return out
    window = timedelta(days=definition.attribution_days)
    records = customers.get_customers(sorted({c for c, _ in treated + held_out}))
    for (cid, entered), sends in delivered.items():
        outcome.credit_last_touch(steps, sends, outcome.orders_between(records.get(cid), entered, entered + window))
    for cid, entered in treated:
        orders = outcome.orders_between(records.get(cid), entered, entered + window)
        if orders:
            day = day_row(orders[0][0].date().isoformat())
            day["converted"] += 1
            day["revenue"] = round(day["revenue"] + sum(a for _, a in orders), 2)
    measured = outcome.with_uplift(
        outcome.group_outcome(treated, records, window), outcome.group_outcome(held_out, records, window)
    )
    return (
        out
        | measured
        | {
            "attribution_days": definition.attribution_days,
            "steps": [steps[k] for k in sorted(steps)],
            "by_day": [by_day[d] for d in sorted(by_day)],
        }
    )


def on_stream(
    records: list[dict[str, Any]],
    journeys: list[Journey],
    customers: CustomerStore,
    store: JourneyStore,
    starter: JourneyStarter,
    now: datetime,
    segment_filters: Callable[[str], list[Filter] | None] | None = None,
) -> dict[str, Any]:
    """The trigger path: the events table's stream records (inserted events, in order) -> entries and wake-ups.

    Returns the counts and ``batchItemFailures``: on the first record that fails, the stream is told to resume
    from it (what came before is done, and doing it again changes nothing: entries and starts are idempotent).
    """
    counts: dict[str, Any] = {"events": 0}
    for rec in records:
        ddb = rec.get("dynamodb", {})
        sk = ddb.get("Keys", {}).get("sk", {}).get("S", "")
        if rec.get("eventName") != "INSERT" or not sk.startswith("e#"):
            continue
        event = json.loads(ddb["NewImage"]["record"]["S"])
        try:
            out = on_events([event], journeys, customers, store, starter, now, segment_filters)
        except Exception:  # noqa: BLE001 - reported to the stream, which retries from this record
            logger.exception("journey trigger failed", extra={"customer_id": event.get("customer_id")})
            counts["batchItemFailures"] = [{"itemIdentifier": ddb.get("SequenceNumber", "")}]
            return counts
        counts["events"] += 1
        for k, v in out.items():
            counts[k] = counts.get(k, 0) + v
    counts["batchItemFailures"] = []
    return counts
